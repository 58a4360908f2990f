"""How a job's pieces are cut into app tasks (batches), and the facts that decide it.

Batching is the main lever on speed: a Celery task costs a few milliseconds of broker
round trips, so tiny pieces ride several to a task. Batch sizes follow *guided
self-scheduling*: each batch takes ``remaining / (2 × workers)`` pieces, so the first
batches are large (few messages) and the last ones single pieces (no worker idles while
another finishes a long tail). It needs no estimate of how long a piece takes; when one
is known, no batch carries less than ``MIN_BATCH_SECONDS`` of work.

The policy's inputs live here too: how many processes serve the job's queue (from the
workers' heartbeats), and how long a piece of this kind took lately. That time is keyed
(``JobSpec.piece_kind``) by the template and the app's params, not the partitioner's: a ``count`` says how many
pieces there are, not what one costs, so the first job of a new size plans as well as
the second. (A partitioner param that does shape pieces, such as ``lines_per_piece``,
shares the key: the first batch of such a job notes the new time for the next job.)
"""

from __future__ import annotations

import math
import time

from workers import runtime
from workers.runtime import JobSpec

__all__ = ["plan_batches", "plan", "plan_missing", "parallelism", "runs", "note_piece_seconds", "MIN_BATCH_SECONDS"]

MIN_BATCH_SECONDS = 0.01  # the least work an app task carries, once a template's piece time is known
NOTE_CHANGE = 0.25  # a piece time is written again when it moved by this fraction …
NOTE_SECONDS = 10.0  # … or was last written this long ago


def plan_batches(total: int, workers: int, max_batch: int, batch_size: int | None = None,
                 piece_seconds: float | None = None) -> list[tuple[int, int]]:
    """``(start, stop)`` piece ranges covering ``range(total)``, in order.

    A fixed ``batch_size`` (from the template) wins; otherwise guided self-scheduling
    over ``workers`` parallel processes, capped at ``max_batch`` pieces per task. When
    ``piece_seconds`` (how long one of the template's pieces took lately) is known, no
    batch is smaller than ``MIN_BATCH_SECONDS`` of work: a task costs about a millisecond
    of broker round trips, so a tail of single tiny pieces would cost more than it
    balances — and a job whose pieces are that cheap runs as one batch.
    """
    floor = 1
    if piece_seconds is not None and piece_seconds > 0:
        floor = max(1, min(max_batch, round(MIN_BATCH_SECONDS / piece_seconds)))
    batches: list[tuple[int, int]] = []
    start = 0
    while start < total:
        remaining = total - start
        size = batch_size or max(floor, math.ceil(remaining / (2 * max(1, workers))))
        size = max(1, min(size, max_batch, remaining))
        batches.append((start, start + size))
        start += size
    return batches


def plan(spec: JobSpec, total: int) -> list[tuple[int, int]]:
    """The batches of a job of ``total`` pieces, sized for the processes serving its queue
    and for how long its kind of piece took lately."""
    store = runtime.store()
    return plan_batches(total, parallelism(spec.queue), runtime.settings().max_batch, spec.template.batch_size,
                        store.fleet.piece_seconds(spec.piece_kind))


def plan_missing(spec: JobSpec, missing: list[int]) -> list[tuple[int, int]]:
    """The batches of a ``retry_failed`` round: each contiguous run of ``missing`` (sorted
    piece indices) planned as a job of its own."""
    batches: list[tuple[int, int]] = []
    for first, last in runs(missing):
        batches += [(first + a, first + b) for a, b in plan(spec, last - first)]
    return batches


def parallelism(queue: str) -> int:
    """Worker processes consuming ``queue`` now, from the workers' heartbeats."""
    live = runtime.store().fleet.live_workers(recent=True).values()
    return sum(worker.concurrency for worker in live if worker.serves(queue)) or 1


def runs(indices: list[int]) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` runs of sorted indices."""
    runs: list[tuple[int, int]] = []
    for index in indices:
        if runs and runs[-1][1] == index:
            runs[-1] = (runs[-1][0], index + 1)
        else:
            runs.append((index, index + 1))
    return runs


_noted: dict[str, tuple[float, float]] = {}  # piece kind -> (piece seconds, when) this process last wrote


def note_piece_seconds(spec: JobSpec, seconds: float) -> None:
    """Tell the fleet how long a piece of this job's kind takes, when that changed by a
    quarter or was last said over 10 s ago (one write per batch would cost a small job a
    round trip)."""
    kind = spec.piece_kind
    last = _noted.get(kind)
    if last and abs(seconds - last[0]) <= NOTE_CHANGE * last[0] and time.monotonic() - last[1] < NOTE_SECONDS:
        return
    _noted[kind] = (seconds, time.monotonic())
    runtime.store().fleet.note_piece_seconds(kind, seconds)
