"""What a batch keeps of its pieces' results between two flushes to the store.

Two kinds, one interface (``add`` a piece's value, ``record`` what was added):

- :class:`Encoded`: for an assembler that needs every result (``json_list``, ``concat``):
  each result JSON-encoded as it comes (a value that is not JSON fails its own piece), the
  results of each contiguous run of pieces recorded as one JSON array (``record_runs``) —
  a few Redis commands per flush, however many pieces it holds.
- :class:`Folded`: for an assembler that declares ``combine`` (``sum``, ``merge_counts``):
  the results of each *contiguous run* of pieces folded into one partial, recorded as one
  range (``record_ranges``), so the store holds a few partials per batch instead of one
  result per piece. The fold keeps piece order (``combine(earlier, later)``): it assumes
  associativity only, not commutativity.

Either way a run breaks where the batch skips pieces done before (a re-run), so every
recorded run covers exactly the pieces it holds, and one overlapping a run recorded by
another run of the batch is refused whole: no piece is counted twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from runner.store import Progress, StatusStore

__all__ = ["Encoded", "Folded", "CombineFailed", "kept_results", "RUN_BYTES"]

RUN_BYTES = 8 << 20  # the most results (JSON) one recorded run holds, about


def _encode(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class CombineFailed(Exception):
    """The assembler's combine refused a piece's result: deterministic, never retried."""


class Encoded:
    """Results kept per contiguous run of pieces, each JSON-encoded as it comes. A run
    also breaks past ``run_bytes`` of results, so no stored value nears Redis's bulk
    limit (512 MB) however big the results and however fast they come."""

    def __init__(self, run_bytes: int = RUN_BYTES) -> None:
        self.run_bytes = run_bytes
        self.runs: list[list[Any]] = []  # [start, stop, [encoded result, ...], bytes]

    def add(self, index: int, value: Any) -> None:
        """Keep piece ``index``'s ``value``; raises ``TypeError`` if it is not JSON."""
        encoded = _encode(value)
        run = self.runs[-1] if self.runs else None
        if run is None or run[1] != index or run[3] + len(encoded) > self.run_bytes:
            self.runs.append([index, index + 1, [encoded], len(encoded)])
            return
        run[1] = index + 1
        run[2].append(encoded)
        run[3] += len(encoded) + 1

    def __bool__(self) -> bool:
        return bool(self.runs)

    def record(self, store: StatusStore, job_id: str) -> Progress:
        runs, self.runs = self.runs, []
        return store.record_runs(job_id, [(start, stop, "[" + ",".join(items) + "]") for start, stop, items, _ in runs])


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
