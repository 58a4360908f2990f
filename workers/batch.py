"""One app task's pieces, run in order, their results flushed to the store as they come.

A batch only runs pieces and records results; what follows — assembling when its results
were the job's last, retrying a failed piece — is the pipeline's next step
(``workers/tasks.py``), decided from the :class:`Outcome` it returns.

Between pieces it stops at once when the deadline has passed (known from the start), and
under fair share, for a newcomer waiting on the control queue, as the worker's main
process last saw it (``workers/lookout.py``: no round trip between pieces). A job that
ended meanwhile (a cancel, a piece failed elsewhere) stops it through the stopper
(``workers/stopper.py``) and its flushes. A long batch flushes every ``FLUSH_SECONDS``:
progress shows, a re-run redoes less, and a cancel is seen.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from runner.models import JobState
from runner.partial import Tolerance
from runner.pieces import Generated, resolve
from workers import lookout, runtime
from workers.canvas import HARD_LIMIT_GRACE
from workers.context import close, flush_records, job_context
from workers.fold import kept_results
from workers.limits import PieceTimeLimitExceeded, piece_timer

__all__ = ["Batch", "Outcome", "FLUSH_SECONDS"]

FLUSH_SECONDS = 0.5  # how often a long batch publishes results (progress, less redo, sees cancel)


@dataclass
class Outcome:
    """What a batch's run found."""

    ran: int = 0  # pieces whose app call returned
    app_seconds: float = 0.0  # time inside those calls: how long this kind of piece takes
    completes_job: bool = False  # every piece of the job has its result now: assemble
    refused: bool = False  # a range it flushed overlapped one already recorded by another run
    failed: tuple[int, BaseException] | None = None  # the piece whose app call raised, and what
    yielded_from: int | None = None  # stopped early for a newcomer: the pieces from here on go back (fair share)


class Batch:
    """Pieces ``start``..``stop`` of a job, but those in ``skip`` (done by an earlier run)."""

    def __init__(self, spec: runtime.JobSpec, start: int, stop: int, deadline: float,
                 skip: set[int] | None = None) -> None:
        self.spec, self.start, self.stop, self.deadline = spec, start, stop, deadline
        self.skip = skip or set()
        self.done = kept_results(spec.template.function("assembler"))
        self.outcome = Outcome()
        self.ctx = job_context(spec, "app")
        now = time.monotonic()
        # when a duty between pieces is next due (monotonic): pieces compare one clock
        # reading with the earliest (``next_check``)
        self.deadline_at = now + (deadline - time.time())  # past it the watchdog ends the job
        self.flush_at = now + FLUSH_SECONDS
        self.newcomer_at = now + lookout.NEWCOMER_SECONDS if runtime.settings().fair_share else math.inf
        self.next_check = min(self.deadline_at, self.flush_at, self.newcomer_at)

    def run(self) -> Outcome:
        try:
            if self._run_pieces():
                close(self.ctx)
                self._flush(finished=True)
        finally:
            flush_records(self.ctx)  # on every ending, the job's own (cancel, timeout) included
        return self.outcome

    def _run_pieces(self) -> bool:
        """Run the pieces; returns whether the batch got to its end (no failure, no stop).
        One clock reading per piece times it, arms its limit and tells whether a duty
        between pieces is due (:meth:`_between`)."""
        app, storages, job_id = self.spec.template.function("app").fn, runtime.storages(), self.spec.job_id
        pieces = runtime.store().pieces.load_pieces(job_id, self.start, self.stop, lambda: _piece_function(job_id))
        outcome, ctx, done, skip = self.outcome, self.ctx, self.done, self.skip
        with piece_timer(self.spec.task_timeout, HARD_LIMIT_GRACE) as timer:
            now = time.monotonic()
            for index, piece in enumerate(pieces, self.start):
                if index in skip:
                    continue
                if now >= self.next_check:
                    stop = self._between(now, index)
                    if stop is not None:
                        return stop
                timer.arm(now)
                try:
                    value = app(resolve(piece, storages), ctx.with_piece(index))
                    timer.disarm()
                    done.add(index, value)
                except (Exception, PieceTimeLimitExceeded) as exc:
                    timer.disarm()
                    close(ctx)
                    self._flush()
                    outcome.failed, outcome.ran = (index, exc), 0
                    return False
                ended = time.monotonic()
                outcome.app_seconds += ended - now
                outcome.ran += 1
                ctx.close_piece()
                now = ended
        return True

    def _between(self, now: float, index: int) -> bool | None:
        """The duties due before piece ``index``: stop at the deadline; flush every
        ``FLUSH_SECONDS``; every ``NEWCOMER_SECONDS``, once a piece ran, stop when a
        newcomer waits: the rest goes back (``workers/tasks.py``). Returns what
        :meth:`_run_pieces` returns, or None to go on."""
        if now >= self.deadline_at:
            return True  # the watchdog is ending the job; start nothing more
        if now >= self.flush_at:
            self.flush_at = now + FLUSH_SECONDS
            flush_records(self.ctx)
            if not self._flush() or self.outcome.completes_job:
                return False
        if now >= self.newcomer_at and self.outcome.ran:
            self.newcomer_at = now + lookout.NEWCOMER_SECONDS
            if lookout.newcomer_waits(now):
                self.outcome.yielded_from = index
                return True
        self.next_check = min(self.deadline_at, self.flush_at, self.newcomer_at)
        return None

    def _flush(self, finished: bool = False) -> bool:
        """Record the results so far, noting whether they were the job's last. Returns
        whether the job goes on."""
        store, job_id = runtime.store(), self.spec.job_id
        if self.done:
            progress = self.done.record(store, job_id)
            self.outcome.refused = self.outcome.refused or bool(progress.refused)
            self.outcome.completes_job = self.outcome.completes_job or progress.completes_job
            return progress.state is not None and not progress.state.is_final
        if finished and self.skip:  # a re-run that found its pieces done: the assembly may be lost too
            fields = store.jobs.fields(job_id, "state", "pieces_done", "pieces_total", "pieces_failed",
                                       "min_success_ratio", "max_failed_pieces")
            failed = fields["pieces_failed"] or 0 if Tolerance.of(fields) else 0  # settled too, in a partial job
            if fields["state"] == JobState.RUNNING.value and fields["pieces_done"] + failed == fields["pieces_total"]:
                self.outcome.completes_job = True
        return True


@lru_cache(maxsize=16)
def _piece_function(job_id: str) -> Callable[[int], Any]:
    """The piece function of a job whose partitioner returned a :class:`Generated` with
    one: the partitioner is called again, once per process and job, to get it."""
    spec = runtime.job_spec(job_id)
    ctx = job_context(spec, "partitioner", source=runtime.storages().source(spec.source))
    try:
        described = spec.template.function("partitioner").fn(ctx.source, ctx)
    finally:
        close(ctx)
    if not isinstance(described, Generated) or described.piece is None:
        raise TypeError(f"partitioner {spec.template.partitioner!r} returned a Generated with a piece function "
                        f"when the job was partitioned, but {type(described).__name__} now: it must be deterministic")
    return described.piece
