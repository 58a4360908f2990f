"""``sum``: add numeric results."""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Number

from runner.registry import assembler


@assembler("sum")
def total(results: Iterable[Number], ctx) -> Number:
    """The sum of every piece's result (0 for no pieces); a non-number names its piece."""
    acc: Number = 0
    for index, value in enumerate(results):
        if isinstance(value, bool) or not isinstance(value, Number):
            raise TypeError(f"sum adds numbers, but piece {index}'s result is {type(value).__name__}: {value!r}"[:200])
        acc += value  # type: ignore[operator]
    return acc
