"""How a job's stored pieces are packed into its piece list: small pieces several to a list
element (one JSON array), so Redis pushes and ranges over a few elements per batch, not
one per piece (issue 24, P6). The layout (``pieces_packed`` on the record) is
:class:`runner.store.piece_results.PieceResults`'s to write and read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from runner.pieces import to_stored
from runner.store.part import encode

__all__ = ["PACK_BYTES", "PACK_MOST", "pack_size", "encoded_pieces", "unpacked"]

PACK_BYTES = 4096  # about this much of a job's stored pieces to a list element ...
PACK_MOST = 128  # ... and no more pieces than this


def pack_size(head: list[str]) -> int:
    """How many pieces to pack into one list element, from the first pieces' encoded sizes:
    about ``PACK_BYTES`` an element, at most ``PACK_MOST`` pieces; 1 (each piece its own
    element, as before packing) for pieces that large — a batch of a few loads no more
    than its own."""
    if not head:
        return 1
    mean = sum(len(item) for item in head) / len(head)
    return max(1, min(PACK_MOST, int(PACK_BYTES // max(mean, 1.0))))


def encoded_pieces(pieces: Iterable[Any], limit: int | None) -> Iterator[str]:
    """Each piece as the store keeps it (JSON; a reference in its stored form), the first ``limit``."""
    for count, piece in enumerate(pieces, 1):
        yield encode(to_stored(piece))
        if limit is not None and count >= limit:
            return


def unpacked(elements: list[str], pack: int, start: int, stop: int) -> list[Any]:
    """Pieces ``start``..``stop`` out of the list elements holding them (``LOAD_PIECES``)."""
    if pack == 1:
        return [json.loads(element) for element in elements]
    pieces = [piece for element in elements for piece in json.loads(element)]
    offset = start - start // pack * pack
    return pieces[offset:offset + stop - start]
