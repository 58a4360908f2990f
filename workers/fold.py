"""What a batch keeps of its pieces' results between two flushes to the store.

Two kinds, one interface (``add`` a piece's value, ``record`` what was added):

- :class:`Encoded`: each result JSON-encoded, recorded per piece (``record_results``) —
  for an assembler that needs every result.
- :class:`Folded`: for an assembler that declares ``combine`` (``sum``, ``merge_counts``):
  the results of each *contiguous run* of pieces folded into one partial, recorded as one
  range (``record_ranges``), so the store holds a few partials per batch instead of one
  result per piece. The fold keeps piece order (``combine(earlier, later)``): it assumes
  associativity only, not commutativity. A run breaks where the batch skips pieces done
  before (a re-run), so every recorded range covers exactly the pieces it folded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from runner.store import Progress, StatusStore

__all__ = ["Encoded", "Folded", "CombineFailed", "kept_results"]


def _encode(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class CombineFailed(Exception):
    """The assembler's combine refused a piece's result: deterministic, never retried."""


class Encoded:
    """Results kept one per piece, JSON-encoded as they come."""

    def __init__(self) -> None:
        self.items: list[tuple[int, str]] = []

    def add(self, index: int, value: Any) -> None:
        self.items.append((index, _encode(value)))

    def __bool__(self) -> bool:
        return bool(self.items)

    def record(self, store: StatusStore, job_id: str) -> Progress:
        items, self.items = self.items, []
        return store.record_results(job_id, items)


class Folded:
    """Results folded per contiguous run of pieces with the assembler's ``combine``."""

    def __init__(self, combine: Callable[[Any, Any], Any], assembler: str) -> None:
        self.combine, self.assembler = combine, assembler
        self.runs: list[list[Any]] = []  # [start, stop, partial]

    def add(self, index: int, value: Any) -> None:
        """Fold piece ``index``'s ``value`` in; raises ``TypeError`` (not JSON) or
        :class:`CombineFailed` naming the piece whose result could not be folded."""
        run = self.runs[-1] if self.runs else None
        if run is None or run[1] != index:
            _encode(value)  # a run's first value is checked here; later ones pass through combine
            self.runs.append([index, index + 1, value])
            return
        try:
            run[2] = self.combine(run[2], value)
        except Exception as exc:
            _encode(value)  # a value that is not JSON is the app's error, named as such
            raise CombineFailed(f"assembler {self.assembler!r} cannot combine piece {index}'s result: "
                                f"{type(exc).__name__}: {exc}") from exc
        run[1] = index + 1

    def __bool__(self) -> bool:
        return bool(self.runs)

    def record(self, store: StatusStore, job_id: str) -> Progress:
        runs, self.runs = self.runs, []
        return store.record_ranges(job_id, [(start, stop, _encode(partial)) for start, stop, partial in runs])


def kept_results(assembler: Any) -> Encoded | Folded:
    """How a batch keeps results for ``assembler`` (a registered :class:`~runner.registry.Function`)."""
    return Folded(assembler.combine, assembler.name) if assembler.combine is not None else Encoded()
