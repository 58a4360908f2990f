"""``lines``: N lines of text per piece, streamed (the source is never read whole).

Small sources ride inline: each piece is the text itself. Sources over
``reference_threshold`` bytes become *text references* — :class:`~runner.pieces.PieceRef`
byte ranges of whole lines, ``as_="text"`` — which the worker reads and decodes just
before calling the app, so the app still gets a ``str`` while gigabytes of text never
pass through the partitioner's memory, the store or the broker.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterator

from pydantic import BaseModel, Field, field_validator

from runner.errors import SourceError
from runner.pieces import PieceRef
from runner.registry import partitioner

__all__ = ["LinesParams", "lines"]

_BLOCK = 1024 * 1024


class LinesParams(BaseModel):
    lines_per_piece: int = Field(1000, ge=1, description="Lines in each piece (the last may have fewer).")
    encoding: str = Field("utf-8", description="Text encoding of the source.")
    by_reference: bool | None = Field(
        None, description="Pass pieces as byte ranges the app task reads; default: when the source is large."
    )
    reference_threshold: int = Field(64 * 1024 * 1024, ge=0, description="Size in bytes above which pieces go by reference.")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        return value


@partitioner("lines", params=LinesParams, needs_source=True)
def lines(source, ctx) -> Iterator[str | PieceRef]:
    """Pieces of ``lines_per_piece`` whole lines, newlines kept, so joining the pieces'
    text gives back the source exactly."""
    params: LinesParams = ctx.params
    by_reference = params.by_reference
    if by_reference is None:
        try:
            by_reference = source.size() > params.reference_threshold
        except SourceError:
            by_reference = False  # no size known (e.g. no Content-Length): go inline
    yield from (_references(source, params) if by_reference else _inline(source, params))


def _inline(source, params: LinesParams) -> Iterator[str]:
    with source.open() as raw:
        text = io.TextIOWrapper(raw, encoding=params.encoding, newline="")
        chunk: list[str] = []
        try:
            for line in text:
                chunk.append(line)
                if len(chunk) >= params.lines_per_piece:
                    yield "".join(chunk)
                    chunk = []
        except UnicodeDecodeError as exc:
            raise SourceError(f"source {source.uri} is not valid {params.encoding} text: {exc}") from None
        if chunk:
            yield "".join(chunk)


def _references(source, params: LinesParams) -> Iterator[PieceRef]:
    """Byte ranges of whole lines, found by scanning the source in fixed-size blocks (a
    newline is the byte ``\\n`` in every encoding this supports: UTF-8, Latin-1, ASCII …).
    Memory stays at one block whatever the line lengths — a 2 GB file without a single
    newline is one piece, never 2 GB in memory."""
    start = position = count = 0

    def piece(end: int) -> PieceRef:
        return PieceRef(source.uri, start, end, as_="text", encoding=params.encoding)

    with source.open() as raw:
        while block := raw.read(_BLOCK):
            offset = 0
            while (found := block.count(b"\n", offset)) >= params.lines_per_piece - count:
                offset = _after_newline(block, offset, params.lines_per_piece - count)
                yield piece(position + offset)
                start, count = position + offset, 0
            count += found
            position += len(block)
    if position > start:
        yield piece(position)


def _after_newline(block: bytes, offset: int, k: int) -> int:
    """The index just after the ``k``-th newline at or after ``offset`` (which exists):
    halve the window by counting (C speed), then step through the last few lines."""
    low, high = offset, len(block)
    while high - low > 4096:
        middle = (low + high) // 2
        below = block.count(b"\n", low, middle)
        if below >= k:
            high = middle
        else:
            k, low = k - below, middle
    index = low
    for _ in range(k):
        index = block.index(b"\n", index) + 1
    return index
