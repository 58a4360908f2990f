"""``sum``: add numeric results."""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Number

from assemblers.output import JSON_NAME, wants_output, write_json
from runner.registry import assembler


_PLAIN = (int, float)


def add(a: Number, b: Number) -> Number:
    """``sum``'s combine: each batch adds its pieces' results, the store keeps the partial sums."""
    if type(a) in _PLAIN and type(b) in _PLAIN:  # the common case, without the ABC checks
        return a + b  # type: ignore[operator]
    for value in (a, b):
        if isinstance(value, bool) or not isinstance(value, Number):
            raise TypeError(f"sum adds numbers, but a result is {type(value).__name__}: {value!r}"[:200])
    return a + b  # type: ignore[operator]


@assembler("sum", writes=JSON_NAME, combine=add)
def total(results: Iterable[Number], ctx) -> Number:
    """The sum of every piece's result (0 for no pieces); a non-number names its piece.
    With a destination, also written there as JSON."""
    acc: Number = 0
    for index, value in enumerate(results):
        if isinstance(value, bool) or not isinstance(value, Number):
            raise TypeError(f"sum adds numbers, but piece {index}'s result is {type(value).__name__}: {value!r}"[:200])
        acc += value  # type: ignore[operator]
    if wants_output(ctx):
        write_json(ctx, acc)
    return acc
