"""``objects``: one piece per object under an S3 prefix, or per file under a directory."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, Field

from runner.pieces import PieceRef
from runner.registry import partitioner


class ObjectsParams(BaseModel):
    suffix: str = Field("", description="Only objects whose name ends with this (e.g. '.csv').")


@partitioner("objects", params=ObjectsParams, needs_source=True)
def objects(source, ctx) -> Iterator[PieceRef]:
    """The app receives ``{"uri": ...}`` pieces, sorted by URI; the app opens its own with
    ``ctx.open(piece)`` (streamed) or reads it whole with ``ctx.read(piece)``."""
    for uri in source.list():
        if uri.endswith(ctx.params.suffix):
            yield PieceRef(uri)
