"""``single``: the one piece's result, as is (``SimpleJob``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from assemblers.output import JSON_NAME, wants_output, write_json
from runner.registry import assembler


@assembler("single", writes=JSON_NAME)
def single(results: Iterable[Any], ctx) -> Any:
    """The first (only) result; ``None`` for no pieces. With a destination, also
    written there as JSON."""
    output = next(iter(results), None)
    if wants_output(ctx):
        write_json(ctx, output)
    return output
