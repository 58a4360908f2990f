"""``bytes``: fixed-size byte ranges of one object, emitted as ranges, never as bytes.

Each app task reads its own range (``ctx.read_range(piece)``), so the partitioner only
needs the source's size and the bytes never pass through the broker or the store.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, Field

from runner.pieces import PieceRef
from runner.registry import partitioner


class BytesParams(BaseModel):
    piece_size: int = Field(1024 * 1024, ge=1, description="Bytes in each piece (the last may be shorter).")


@partitioner("bytes", params=BytesParams, needs_source=True)
def byte_ranges(source, ctx) -> Iterator[PieceRef]:
    """Pieces are ranges; the app receives ``{"uri", "start", "end"}`` (``end`` exclusive)."""
    size = source.size()
    step = ctx.params.piece_size
    for start in range(0, size, step):
        yield PieceRef(source.uri, start, min(size, start + step))
