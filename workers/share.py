"""Fair share on the worker side: hold a job's pieces, hand the queue its next batches.

The partition task (and ``resume``) *holds* the job's piece ranges in the store and
takes the first batches; every batch that ends frees its slot and takes the next ones —
of whichever job is due, by the fair order (:mod:`runner.store.fair_share`). So a queue
holds only about as many batches as it has processes, each at most
``RUNNER_FAIR_BATCH_SECONDS`` of work, and busy jobs take turns that often; a job that
arrives later does not wait for a turn: a running batch stops early for it and gives the
rest back (``workers/batch.py``, :func:`hand_out`'s ``give_back``). A process whose batch
ends may keep the next one, when it is its job's, and run it itself (``workers/chain.py``);
a chain needs no spare batch waiting in the broker. With ``RUNNER_FAIR_SHARE=false`` the
tasks send every batch at partition time instead (``workers/tasks.py``), first come first served.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from runner.dispatch import APP
from runner.store.fair_share import Handout, Holding
from workers import batching, runtime
from workers.canvas import batch_task_id, job_canvas
from workers.leases import member

__all__ = ["start", "queue_whole", "hand_out", "capacity"]

PROCESSES_SECONDS = 2.0  # how long a count of the processes serving a queue is reused


def start(spec: runtime.JobSpec, round_: int, ranges: list[tuple[int, int]], deadline: float, *,
          run_own: bool, logs: list[dict[str, Any]] | None = None) -> Handout | None:
    """Hold the job's ``ranges`` (round ``round_``; a replay of a round held already holds
    nothing new) and send the queue's next batches, with the job's ``logs``, in one round
    trip; with ``run_own``, one batch of this job is taken whatever the queue's capacity
    and returned, not sent: the caller runs it in its own process. (A job of one batch
    was offered whole already, with its move to ``running``: :func:`queue_whole`.)"""
    store, settings = runtime.store(), runtime.settings()
    holding = _holding(spec, round_, ranges, deadline)
    slots, processes = capacity(spec.queue)
    before = (lambda pipe: store.journal.xadd_logs(pipe, spec.job_id, logs)) if logs else None
    if run_own:  # this process runs the job's first batch, then its next ones (a chain): no spare needed
        slots = processes
    handouts = store.fair_share.hold_and_take(
        holding, slots, processes, now=time.time(), own=spec.job_id if run_own else None,
        batch_seconds=settings.fair_batch_seconds, max_batch=settings.max_batch, before=before)
    return _split(handouts, spec.job_id if run_own else None)


def queue_whole(pipe: Any, spec: runtime.JobSpec, round_: int, span: tuple[int, int], deadline: float,
                host: str | None, logs: list[dict[str, Any]] | None = None) -> Callable[[Any], Handout | None]:
    """Queue on ``pipe`` the hand-out of the job's one range ``span`` whole (``TAKE_WHOLE``),
    to this process, started at once as run on ``host`` (its ``logs`` with its start); returns
    what reads the script's reply: the batch, or None when the job is not running or needs
    more batches (hold it instead, :func:`start`; the ``logs`` go in only with a hand-out).
    The start is noted for the batch to read (``runtime.note_begun``) instead of starting again."""
    store, settings = runtime.store(), runtime.settings()
    delivery, event = runtime.batch_start(batch_task_id(spec.job_id, round_, span[0]), *span, host)
    read = store.fair_share.queue_take_whole(
        pipe, _holding(spec, round_, [span], deadline), capacity(spec.queue)[1], now=time.time(),
        batch_seconds=settings.fair_batch_seconds, max_batch=settings.max_batch,
        begin=store.journal.begin_args(delivery, event, logs or ()))

    def taken(reply: Any) -> Handout | None:
        whole, begun = read(reply)
        if not whole:
            return None
        if begun is not None:
            runtime.note_begun(delivery, store.journal.begun(begun))
        return whole[0]

    return taken


def hand_out(queue: str, *, freed: str | None = None, give_back: tuple[str, int, int] | None = None,
             keep: str | None = None, fit: int = 0, drop_lease: str | None = None) -> Handout | None:
    """Free the batch ``freed`` and send the queue's next batches, of whichever job is due.
    ``give_back`` (job, start, stop): pieces the batch left for a newcomer, held again.
    With ``keep`` (a job) and ``fit`` (pieces): when the fair order's next batch is of that
    job and at most ``fit`` pieces (cut to it when that loses at most a quarter), it is
    returned, not sent: the caller runs it in its own process (``workers/chain.py``).
    ``drop_lease``: the freed batch's lease, dropped in the same round trip."""
    settings, store = runtime.settings(), runtime.store()
    if give_back is not None and freed is not None:
        job_id, start, stop = give_back
        store.fair_share.give_back(queue, job_id, freed, start, stop, holding=_whole_holding(job_id))
        freed = None
    slots, processes = capacity(queue)
    if keep:  # the batch this process keeps replaces the spare a process would otherwise find waiting
        slots = processes
    handouts = store.fair_share.take(queue, slots, processes, now=time.time(), freed=freed,
                                     batch_seconds=settings.fair_batch_seconds, max_batch=settings.max_batch,
                                     fit=fit if keep else 0, drop_lease=drop_lease)
    fits = keep and handouts and handouts[0].stop - handouts[0].start <= fit
    return _split(handouts, keep if fits else None)


def _whole_holding(job_id: str) -> Holding | None:
    """The fair-share facts to hold a job by, should it have been handed out whole (round 0,
    ``TAKE_WHOLE``): the store holds it when its batch gives pieces back."""
    spec, record = runtime.job_facts(job_id, "deadline")
    return None if spec is None else _holding(spec, 0, [], float(record["deadline"] or 0))


def _holding(spec: runtime.JobSpec, round_: int, ranges: list[tuple[int, int]], deadline: float) -> Holding:
    """The fair-share facts of the job's round ``round_`` (its ``ranges``) the store holds."""
    lease = member(APP, batch_task_id(spec.job_id, round_, "@S@"), [spec.job_id, spec.template.ref, "@S@", "@E@"])
    return Holding(spec.job_id, spec.queue, spec.org, spec.priority, round_, spec.piece_kind, ranges, deadline,
                   spec.template.batch_size, lease, deadline - time.time() + spec.retention_hours * 3600)


def _split(handouts: list[Handout], own: str | None) -> Handout | None:
    """Send the handouts but the one of job ``own`` (the first, when there is one), which is returned."""
    mine = handouts[0] if own and handouts and handouts[0].job_id == own else None
    _send(handouts[1:] if mine else handouts)
    return mine


def _send(handouts: list[Handout]) -> None:
    """Send handed-out batches (their task ids, leases and counts are recorded already),
    through the worker's Celery app (the current one)."""
    by_job: dict[tuple[str, int, float], list[tuple[int, int]]] = {}
    for handout in handouts:
        by_job.setdefault((handout.job_id, handout.round, handout.deadline), []).append((handout.start, handout.stop))
    for (job_id, round_, deadline), batches in by_job.items():
        spec, _ = runtime.job_facts(job_id)
        if spec is not None:  # else the job is gone: its leases find it so and drop the batches
            canvas = job_canvas(spec, batches, deadline, round_)[0]
            (canvas.tasks[0] if len(batches) == 1 else canvas).apply_async()  # a group of one costs 0.15 ms more


_processes: dict[str, tuple[float, int]] = {}  # queue -> (when counted, processes serving it)


def capacity(queue: str) -> tuple[int, int]:
    """Batches the queue may have in flight, and the processes serving it (from the
    workers' heartbeats, counted at most every ``PROCESSES_SECONDS``). One spare batch per
    four processes waits in the broker, so a process that finishes one finds the next
    there instead of idling for a round trip."""
    counted = _processes.get(queue)
    if counted is None or time.monotonic() - counted[0] > PROCESSES_SECONDS:
        counted = _processes[queue] = (time.monotonic(), batching.parallelism(queue))
    processes = counted[1]
    return processes + max(1, processes // 4), processes
