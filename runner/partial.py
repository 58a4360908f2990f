"""Partial success: how many of a job's pieces may fail for good before the job fails.

A job (or its template, as a default) may accept lost pieces: ``min_success_ratio`` (the
share of pieces that must succeed) or ``max_failed_pieces`` (how many may fail), never
both. A piece that fails for good (its retries spent) is then recorded as failed and
counts toward the job's end like a result; once every piece has one or the other, the
assembler runs over the results, told which pieces it goes without (``ctx.failed_pieces``),
and the job completes ``partial``. The moment more pieces have failed than the tolerance
allows, the job fails, without running the rest (``workers/failures.py``).

Both forms become one number per job — the failures it allows — once its piece count is
known, so there is one comparison everywhere; this module is that arithmetic, shared by
admission (template defaults), the workers and the views.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Tolerance"]


@dataclass(frozen=True)
class Tolerance:
    """A job's tolerance of failed pieces (both ``None``: none, as by default)."""

    min_success_ratio: float | None = None
    max_failed_pieces: int | None = None

    @classmethod
    def of(cls, record: dict[str, Any]) -> "Tolerance":
        """The tolerance a job record (or a template, or a request's options) states."""
        ratio, most = record.get("min_success_ratio"), record.get("max_failed_pieces")
        return cls(None if ratio is None else float(ratio), None if most is None else int(most))

    def __bool__(self) -> bool:
        return self.min_success_ratio is not None or self.max_failed_pieces is not None

    def fields(self) -> dict[str, float | int]:
        """The record's fields: only the one given (a record without either tolerates nothing)."""
        return {name: value for name, value in (("min_success_ratio", self.min_success_ratio),
                                                ("max_failed_pieces", self.max_failed_pieces)) if value is not None}

    def allowed(self, total: int) -> int:
        """How many of ``total`` pieces may fail for good. The ratio is rounded to 9
        places first, so 0.9 of 100 needs 90 successes (not 91, from 89.99999…)."""
        if self.max_failed_pieces is not None:
            return self.max_failed_pieces
        if self.min_success_ratio is None:
            return 0
        return total - math.ceil(round(self.min_success_ratio * total, 9))

    def describe(self, total: int) -> str:
        """The limit in the job's own terms: ``max_failed_pieces=3`` or
        ``min_success_ratio=0.9 of 100 pieces``."""
        if self.max_failed_pieces is not None:
            return f"max_failed_pieces={self.max_failed_pieces}"
        return f"min_success_ratio={self.min_success_ratio:g} of {total} piece{'s' * (total != 1)}"
