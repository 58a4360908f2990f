"""``concat``: join string results in piece order and write them to the destination."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from assemblers.output import TEXT_NAME, target, wants_output
from runner.registry import assembler


class ConcatParams(BaseModel):
    separator: str = Field("", description="Written between consecutive pieces' results.")
    encoding: str = Field("utf-8", description="Encoding of the destination file.")


@assembler("concat", params=ConcatParams, writes=TEXT_NAME)
def concat(results: Iterable[Any], ctx) -> Any:
    """Streams to the destination (``result.txt`` under a prefix; never holding the whole
    output) and returns ``{"destination", "bytes", "pieces"}``; with no destination
    returns the joined string."""
    params: ConcatParams = ctx.params
    if not wants_output(ctx):
        return params.separator.join(_text(r, i) for i, r in enumerate(results))
    written = pieces = 0
    destination = target(ctx, TEXT_NAME)
    with destination.open() as out:
        for index, result in enumerate(results):
            data = ((params.separator if index else "") + _text(result, index)).encode(params.encoding)
            out.write(data)
            written += len(data)
            pieces += 1
    return {"destination": destination.uri, "bytes": written, "pieces": pieces}


def _text(result: Any, index: int) -> str:
    if not isinstance(result, str):
        raise TypeError(f"concat joins strings, but piece {index}'s result is {type(result).__name__}")
    return result
