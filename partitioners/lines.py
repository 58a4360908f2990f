"""``lines``: N lines of text per piece, streamed (the source is never read whole)."""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterator

from pydantic import BaseModel, Field, field_validator

from runner.errors import SourceError
from runner.registry import partitioner


class LinesParams(BaseModel):
    lines_per_piece: int = Field(1000, ge=1, description="Lines in each piece (the last may have fewer).")
    encoding: str = Field("utf-8", description="Text encoding of the source.")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        return value


@partitioner("lines", params=LinesParams)
def lines(source, ctx) -> Iterator[str]:
    """Pieces are strings of ``lines_per_piece`` whole lines, newlines kept, so joining
    the pieces gives back the source exactly."""
    params: LinesParams = ctx.params
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
