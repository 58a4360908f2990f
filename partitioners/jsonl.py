"""``jsonl``: N JSON records (one per line) per piece, streamed."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, Field

from runner.errors import SourceError
from runner.registry import partitioner


class JsonlParams(BaseModel):
    records_per_piece: int = Field(1000, ge=1, description="Records in each piece (the last may have fewer).")


@partitioner("jsonl", params=JsonlParams, needs_source=True)
def jsonl(source, ctx) -> Iterator[list[Any]]:
    """Pieces are lists of parsed records; blank lines are skipped; a bad line fails the
    job naming its line number."""
    chunk: list[Any] = []
    with source.open() as raw:
        lines = enumerate(io.TextIOWrapper(raw, encoding="utf-8"), 1)
        while True:
            try:
                number, line = next(lines)
            except StopIteration:
                break
            except UnicodeDecodeError as exc:
                raise SourceError(f"source {source.uri} is not valid utf-8 text: {exc}") from None
            if not line.strip():
                continue
            try:
                chunk.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise SourceError(f"source {source.uri} line {number} is not valid JSON: {exc.msg}") from None
            if len(chunk) >= ctx.params.records_per_piece:
                yield chunk
                chunk = []
    if chunk:
        yield chunk
