"""``passthrough``: the whole source is one piece (an executable app's ``data.bin``)."""

from __future__ import annotations

from typing import Any

from runner.errors import SourceError
from runner.pieces import PieceRef
from runner.registry import partitioner


@partitioner("passthrough")
def passthrough(source: Any, ctx: Any) -> list[Any]:
    """One piece: the source file by reference (an app reads it, or gets it as
    ``data.bin``); for ``bypass:``, an empty piece. A directory or prefix of several
    objects is refused: use ``objects`` for one piece per object."""
    if source.is_bypass:
        return [""]
    uris = source.list()
    if len(uris) != 1:
        raise SourceError(f"passthrough makes one piece of one file, but {source.uri} holds {len(uris)} objects; "
                          f"use the objects partitioner for one piece per object")
    return [PieceRef(uris[0], as_="location")]
