"""``single``: the one piece's result, as is (``SimpleJob``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from runner.registry import assembler


@assembler("single")
def single(results: Iterable[Any], ctx) -> Any:
    """The first (only) result; ``None`` for no pieces."""
    return next(iter(results), None)
