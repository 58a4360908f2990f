"""One job's pipeline, top to bottom: partition → plan batches → run a batch → assemble.

Each step is a Celery task (:func:`register_tasks`, at the end) that hands over to the
next one by sending it — or, when this worker serves the next step's queue, by running it
right here as that task (``workers/inline.py``): the partition task runs the first batch,
and the batch that records the job's last piece runs the assembly. ``resume`` (a job's
``retry_failed``) re-enters at step 2 with the pieces that have no result.

Every state change goes through the store's transition table, so a task that arrives
late (the job was cancelled, timed out or already assembled) finds it cannot move the
job and quietly does nothing. What a failure does — a retry, or the job failed at once —
is ``workers/failures.py``; how batches are sized, ``workers/batching.py``; a batch's
piece loop, ``workers/batch.py``.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from celery import Celery, Task

from runner.dispatch import APP, ASSEMBLE, PARTITION, RESUME, assemble_task_id, send_assemble
from runner.lifecycle import end_job
from runner.models import JobState, JobStatus
from runner.store.fair_share import Handout
from workers import batching, chain, inline, leases, org_gate, runtime, share, stopper
from workers.batch import Batch
from workers.canvas import HARD_LIMIT_GRACE, batch_task_id, batch_time_limit, job_canvas
from workers.context import close, job_context
from workers.failures import ASSEMBLY_FIELDS, PiecesFailed, fail_batch, fail_stage, piece_failed, pieces_to_assemble
from workers.routing import routed

__all__ = ["register_tasks"]

MAX_DELIVERIES = 5  # starts of one batch before its pieces count as killing their worker


# -- 1. partition: the source, through the partitioner, into the store ---------------
def partition(task: Task, job_id: str, template: str) -> Any:
    """Stream the source through the partitioner into the store, plan the batches, fan out.

    ``template`` rides in the message only so Flower shows it; the worker reads the job's
    template, like every other fact of the job, from its record."""
    spec, record = runtime.job_facts(job_id, "state", "deadline", "partition_task")
    state = JobState(record["state"]) if record["state"] else None
    if spec is None or state not in (JobState.QUEUED, JobState.PARTITIONING, JobState.RUNNING):
        return None
    fresh = state is JobState.QUEUED and not record["partition_task"]  # no partition ever began: no pieces to clear
    deadline = float(record["deadline"] or 0)
    if state is JobState.RUNNING:
        return _fan_out_again(task, spec, deadline)
    if not org_gate.admit_to_run(task, job_id, spec.org):  # at its org's max_running_jobs: held queued
        return None
    if not _claim(job_id, task.request.id, JobState.PARTITIONING, "partition_task", started_at=time.time()):
        return None
    fair = runtime.settings().fair_share
    to_running = _ToRunning(spec, fair, deadline, task, run_here=fair and inline.serves(task.app, spec.queue))
    stored = _store_pieces(task, spec, deadline, to_running, fresh)
    if stored is None or not to_running.read(stored[1]):
        return None
    total, batches, whole = stored[0], to_running.batches, to_running.whole
    if whole is not None:  # handed out whole with the move, and started: run here
        _run_batch_here(task, spec, (whole.start, whole.stop), whole.round, deadline, leased=True)
    elif fair:
        _share_out(task, spec, [(0, total)] if total else [], 0, deadline, logs=[_partitioned(spec, total)],
                   run_first=True)
    else:
        _fan_out(task, spec, batches, 0, deadline, logs=[_partitioned(spec, total, batches)], run_first=True)
        return len(batches)
    return None


def _partitioned(spec: runtime.JobSpec, total: int, batches: list[tuple[int, int]] | None = None) -> dict[str, Any]:
    """The partition's log line: its pieces, and how they go out (``batches``: fanned out)."""
    how = (f"handed to queue {spec.queue} a few app tasks at a time (fair share)" if batches is None else
           f"{len(batches)} app task{'s' * (len(batches) != 1)} on queue {spec.queue}")
    return {"level": "INFO", "source": "runner", "msg": f"partitioned {spec.source} into {total} "
                                                        f"piece{'s' * (total != 1)}, {how}"}


class _ToRunning:
    """The move to ``running`` (with the pieces' count and the batches planned), queued
    on the round trip that stores the job's last pieces — and, under fair share when this
    process runs the job's batches (``run_here``), the hand-out of a job of one batch whole
    to this process, started with it (``share.queue_whole``): a small job's partition ends
    in one round trip where it took three (store and move, hand out, start the batch)."""

    def __init__(self, spec: runtime.JobSpec, fair: bool, deadline: float, task: Task, run_here: bool) -> None:
        self.spec, self.fair, self.deadline, self.task, self.run_here = spec, fair, deadline, task, run_here
        self.batches: list[tuple[int, int]] = []
        self.whole: Handout | None = None  # the batch handed out whole, once read
        self._moved: Callable[[Any], bool] = lambda reply: False
        self._taken: Callable[[Any], Handout | None] | None = None

    def __call__(self, pipe: Any, total: int) -> None:
        self.batches = [] if self.fair else batching.plan(self.spec, total)
        self._moved = runtime.store().jobs.queue_transition(
            pipe, self.spec.job_id, JobState.RUNNING, strict=False, expect=[JobState.PARTITIONING],
            pieces_total=total, batches_total=len(self.batches))
        if self.run_here and total:
            self._taken = share.queue_whole(pipe, self.spec, 0, (0, total), self.deadline, self.task.request.hostname,
                                            [_partitioned(self.spec, total)])

    def read(self, replies: list[Any]) -> bool:
        """Whether the job moved (and the batch handed out whole, if it was, in ``whole``)."""
        if self._taken is not None:
            self.whole = self._taken(replies[-1])
        return self._moved(replies[0])


def _store_pieces(task: Task, spec: runtime.JobSpec, deadline: float,
                  then: _ToRunning, fresh: bool = False) -> tuple[int, list[Any]] | None:
    """Run the partitioner and store its pieces, then (same round trip) ``then``; their
    count and the replies to ``then``, or None when the partitioner raised (the job is failed).
    ``fresh``: the job never stored pieces (nothing to clear first)."""
    try:
        ctx = job_context(spec, "partitioner", source=runtime.storages().source(spec.source))
        try:
            pieces = spec.template.function("partitioner").fn(ctx.source, ctx)
            limit = spec.template.test_pieces if spec.test else None
            keep = deadline - time.time() + spec.retention_hours * 3600
            return runtime.store().pieces.store_pieces_then(spec.job_id, pieces, keep, limit, then, fresh=fresh)
        finally:
            close(ctx)
    except Exception as exc:
        fail_stage(task, spec.job_id, "partition", exc)
        return None


def _fan_out_again(task: Task, spec: runtime.JobSpec, deadline: float) -> int | None:
    """A partition task run again after its pieces were stored: fan out if that never
    happened (its first run died in between)."""
    fields = runtime.store().jobs.fields(spec.job_id, "partition_task", "pieces_total", "fanned_out")
    if fields["partition_task"] != task.request.id or fields["fanned_out"]:
        return None
    total = int(fields["pieces_total"])
    if runtime.settings().fair_share:
        _share_out(task, spec, [(0, total)] if total else [], 0, deadline)
        return None
    batches = batching.plan(spec, total)
    _fan_out(task, spec, batches, 0, deadline)
    return len(batches)


# -- 2. plan batches and fan out: a task per batch, or the assembly at once ------------
def _fan_out(task: Task, spec: runtime.JobSpec, batches: list[tuple[int, int]], round_: int, deadline: float,
             logs: list[dict[str, Any]] | None = None, run_first: bool = False) -> None:
    """Send the app batches, their task ids recorded first so a cancel can revoke them;
    with no batches, assemble at once. With ``run_first``, when this worker serves the
    job's queue, the first batch is not sent but run here, once the fan-out is recorded
    (so a re-run of this task sends nothing twice; the batch holds its own lease).

    The group is sent, not ``replace``-d in, so the partition task keeps its own id and
    stays visible as ``runner.partition`` in Flower."""
    store, job_id = runtime.store(), spec.job_id
    if not batches:
        store.journal.add_logs(job_id, logs or [])
        _assemble_next(task, job_id, deadline)
        return
    here = batches[0] if run_first and inline.serves(task.app, spec.queue) else None
    here_ids = [batch_task_id(job_id, round_, here[0])] if here else []
    canvas, ids = job_canvas(spec, batches[1:] if here else batches, deadline, round_)
    if ids:
        store.journal.add_tasks(job_id, ids + here_ids, logs=logs)
        canvas.apply_async()
        store.jobs.update(job_id, fanned_out=True)
    else:  # only the batch run here: one round trip
        store.journal.add_tasks(job_id, here_ids, logs=logs, fanned_out=True)
    if here:
        _run_batch_here(task, spec, here, round_, deadline)


def _share_out(task: Task, spec: runtime.JobSpec, ranges: list[tuple[int, int]], round_: int, deadline: float,
               logs: list[dict[str, Any]] | None = None, run_first: bool = False) -> None:
    """Fair share (``workers/share.py``): hold the job's ``ranges`` and hand the queue its
    next batches; with ``run_first``, when this worker serves the job's queue, one batch of
    this job is taken whatever the queue holds and run here (this process is the job's
    already). With no pieces, assemble at once."""
    if not ranges:
        runtime.store().journal.add_logs(spec.job_id, logs or [])
        _assemble_next(task, spec.job_id, deadline)
        return
    here = share.start(spec, round_, ranges, deadline, logs=logs,
                       run_own=run_first and inline.serves(task.app, spec.queue))
    if here:  # leased when it was handed out
        _run_batch_here(task, spec, (here.start, here.stop), round_, deadline, leased=True)


def _run_batch_here(task: Task, spec: runtime.JobSpec, batch: tuple[int, int], round_: int, deadline: float,
                    leased: bool = False) -> None:
    """Run one batch in this process, as the app task it would have been (``leased``: its
    lease was taken when it was handed out); then, while its end hands this process its
    job's next batch (``workers/chain.py``, leased when handed out too), that one, and so
    on — a loop, not a recursion. Pieces failing for good fail their batch's task (as
    Flower shows it), not the one running it here."""
    handout: Handout | None = Handout(spec.job_id, round_, batch[0], batch[1], deadline)
    while handout is not None:
        handout, leased = _stage_batch(task, spec, handout, leased), True


def _stage_batch(task: Task, spec: runtime.JobSpec, handout: Handout, leased: bool) -> Handout | None:
    """Run one batch here, inline (see :func:`_run_batch_here`); the next one it kept."""
    job_id, start, stop, kept = spec.job_id, handout.start, handout.stop, None
    args = [job_id, spec.template.ref, start, stop]
    with (contextlib.suppress(PiecesFailed),  # announced as that task's failure; this task goes on
          stopper.hard_limit(batch_time_limit(spec, start, stop)),  # what its message would have carried
          inline.stage(task, APP, batch_task_id(job_id, handout.round, start), args, spec.queue, handout.deadline,
                       leased=leased, release=True) as here):
        here.result, kept = _app_batch(here.task, job_id, start, stop, outer=task)
        here.follows = kept is not None
    return kept


# -- 3. run a batch: the app over a range of pieces, results recorded ------------------
def run_app(task: Task, job_id: str, template: str, start: int, stop: int) -> int:
    """Run the app over pieces ``start``..``stop``, one call per piece, each under its own
    time limit; a failing piece is retried from where it failed, with backoff, and one
    that fails for good fails the job and this task (unless the job tolerates it). The
    batch whose results (or tolerated failure) were the job's last goes on to the assembly.
    Under fair share the job's next batch may follow here (``workers/chain.py``)."""
    ran, kept = _app_batch(task, job_id, start, stop, outer=task)
    if kept is not None:
        _run_batch_here(task, runtime.job_spec(job_id), (kept.start, kept.stop), kept.round, kept.deadline,
                        leased=True)  # leased when it was handed out, as every kept batch is
    return ran


def _app_batch(task: Any, job_id: str, start: int, stop: int, outer: Task) -> tuple[int, Handout | None]:
    """:func:`run_app`'s one batch, run as ``task``; the pieces it ran, and the job's next
    batch when this process is to run it (``outer``: the Celery task this process runs)."""
    store = runtime.store()
    delivery, event = runtime.batch_start(task.request.id, start, stop, task.request.hostname)
    state, deliveries, deadline = runtime.begun(delivery) or store.journal.begin_batch(job_id, delivery, event)
    if state is None or state.is_final:
        return 0, None
    if deliveries > MAX_DELIVERIES:
        fail_batch(task, job_id, {
            "stage": "app", "piece": start, "type": "WorkerLost",
            "message": f"pieces {start}..{stop - 1} were started {deliveries - 1} times and never finished: "
                       f"a piece kills its worker process (out of memory? a crash in native code?)",
        })
    spec = runtime.job_spec(job_id)
    skip = store.pieces.done_pieces(job_id, start, stop) if deliveries > 1 else None  # a re-run: skip what is done
    first = outcome = Batch(spec, start, stop, deadline, skip).run()
    ran = outcome.ran
    while (outcome.refused and not (outcome.completes_job or outcome.failed) and outcome.yielded_from is None
           and _job_goes_on(job_id, deadline)):
        done = store.pieces.done_pieces(job_id, start, stop)  # another run recorded some meanwhile; grows: this ends
        outcome = Batch(spec, start, stop, deadline, done).run()
        ran += outcome.ran
    if outcome.completes_job:
        _assemble_next(task, job_id, deadline)
    elif outcome.failed:
        index, exc = outcome.failed
        if piece_failed(task, spec, index, exc, stop):  # raises: a retry (keeps its slot), or the batch failed;
            _assemble_next(task, job_id, deadline)  # True: a failure the job tolerates settled its last piece
    if first.ran:  # after the assembly (a write the job's result need not wait for), before sizing the next batches
        batching.note_piece_seconds(spec, first.app_seconds / first.ran)
    if not runtime.settings().fair_share:
        return ran, None
    # this batch's slot is free: the queue's next batches, of whichever job is due (one kept, maybe)
    rest = (job_id, outcome.yielded_from, stop) if outcome.yielded_from is not None else None
    room = chain.fit(outer, spec) if rest is None and not outcome.completes_job else 0  # a newcomer waits: no chain
    done_lease = leases.handed_over(APP, task.request.id, [job_id, spec.template.ref, start, stop])  # run inline
    kept = share.hand_out(spec.queue, freed=task.request.id, give_back=rest,  # a batch's id: batch_task_id
                          keep=job_id if room else None, fit=room, drop_lease=done_lease)
    return ran, kept


def _job_goes_on(job_id: str, deadline: float) -> bool:
    state = runtime.store().jobs.state(job_id)
    return time.time() < deadline and state is not None and not state.is_final


# -- 4. assemble: every result, in piece order, through the assembler ------------------
def _assemble_next(task: Task, job_id: str, deadline: float | None = None) -> None:
    """Assemble the job: here when this worker serves the control queue and the calling
    task's hard limit leaves room, else by sending the assemble task, its id recorded so
    a cancel revokes it. (An inline assembly has no message to revoke; re-sent after its
    process died, it finds the job ended and does nothing.)"""
    settings = runtime.settings()
    deadline = deadline or runtime.deadline(job_id)
    budget = runtime.job_spec(job_id).task_timeout + HARD_LIMIT_GRACE
    if inline.serves(task.app, settings.control_queue) and inline.has_headroom(task, budget):
        task_id = assemble_task_id(job_id)
        with inline.stage(task, ASSEMBLE, task_id, [job_id], settings.control_queue, deadline, leased=True) as here:
            here.result = assemble(here.task, job_id, lease=leases.member(ASSEMBLE, task_id, [job_id]))
    else:
        runtime.store().journal.add_tasks(job_id, [send_assemble(task.app, job_id, deadline)])


def assemble(task: Task, job_id: str, lease: str | None = None) -> Any:
    """Stream every result in piece order to the assembler; store the output; complete
    (``partial`` when the job went without pieces that failed for good, as it allowed).
    ``lease``: run inline, its lease is taken with the claim, in one round trip."""
    store = runtime.store()
    if time.time() > (getattr(task, "deadline", None) or runtime.deadline(job_id)):  # known when run inline
        return None  # the watchdog ends the job; the assembler never runs past the deadline
    claimed = _claim_reading(job_id, task.request.id, lease)
    if claimed is None:
        return None
    (report, page), spec = claimed, runtime.job_spec(job_id)
    try:
        total, failed = pieces_to_assemble(job_id, _counts(report[0]))
        ctx = job_context(spec, "assembler", source=runtime.storages().source(spec.source),
                          destination=runtime.storages().destination(spec.destination), failed_pieces=list(failed))
        try:
            results = store.pieces.iter_results(job_id, total, skip=failed, first=page)
            output = spec.template.function("assembler").fn(results, ctx)
        finally:
            close(ctx)
        if ctx.metrics_added:  # the record and metrics changed since the claim read them
            report = None
        encoded = json.dumps(output, separators=(",", ":"))
        limit = runtime.settings().result_max_bytes
        if len(encoded) > limit:
            raise ValueError(
                f"assembled result is {len(encoded)} bytes, over RUNNER_RESULT_MAX_BYTES={limit}; "
                f"write it to a destination and return a summary instead"
            )
    except Exception as exc:
        fail_stage(task, job_id, "assemble", exc)
        return None
    summary = {"bytes": len(encoded), "type": type(output).__name__, "destination": spec.destination}
    stopper.disarm()
    end_job(runtime.services(task.app), job_id, JobState.COMPLETED, result_summary=summary, result=encoded,
            partial=bool(failed), report=report)
    return None


# -- resume (retry_failed): step 2 again, over the pieces with no result ---------------
def resume(task: Task, job_id: str, template: str) -> Any:
    """Re-run only the pieces with no result (``retry_failed``), then assemble."""
    store = runtime.store()
    if store.jobs.state(job_id) is not JobState.RUNNING:
        return None
    fields = store.jobs.fields(job_id, "pieces_total", "round")
    missing = store.pieces.missing_pieces(job_id, int(fields["pieces_total"]))
    spec = runtime.job_spec(job_id)
    batches = batching.plan_missing(spec, missing)
    round_ = int(fields["round"] or 1)
    if runtime.settings().fair_share:
        store.journal.add_event(job_id, "resume", pieces=len(missing))
        _share_out(task, spec, batching.runs(missing), round_, runtime.deadline(job_id))
        return None
    store.journal.add_event(job_id, "resume", pieces=len(missing), batches=len(batches))
    _fan_out(task, spec, batches, round_, runtime.deadline(job_id))
    return len(batches)


def _claim(job_id: str, task_id: str, target: JobState, owner_field: str, **fields: Any) -> bool:
    """Move the job to ``target`` as ``task_id``, or accept a redelivery of the task that
    already did (same id, job still in ``target``): a task killed half way resumes."""
    store = runtime.store()
    if store.jobs.transition(job_id, target, strict=False, **{owner_field: task_id}, **fields):
        return True
    current = store.jobs.fields(job_id, "state", owner_field)
    return current["state"] == target.value and current[owner_field] == task_id


def _claim_reading(job_id: str, task_id: str, lease: str | None) -> tuple[Any, list[Any] | None] | None:
    """:func:`_claim` of the assembly, reading the record and metrics (what it counts
    from and ``output.json`` reports) and the results' first page, and taking its
    ``lease``, when given, in the same round trip: the report and that page (None: not
    read); None when the job is not this task's to assemble."""
    store, now = runtime.store(), time.time()
    moved, (raw, *page) = store.jobs.transition_then(
        job_id, JobState.ASSEMBLING, strict=False, assemble_task=task_id,
        before=(lambda pipe: store.fleet.lease(lease, now, pipe)) if lease else None,
        after=lambda pipe: (store.journal.queue_report(pipe, job_id), store.pieces.queue_first_page(pipe, job_id)))
    if moved:
        return store.journal.read_report(job_id, raw), page
    current = store.jobs.fields(job_id, "state", "assemble_task")
    if current["state"] != JobState.ASSEMBLING.value or current["assemble_task"] != task_id:
        return None
    return store.journal.report(job_id), None  # a redelivery of the task that claimed it


def _counts(status: JobStatus | None) -> dict[str, Any] | None:
    """The record's ``ASSEMBLY_FIELDS``, for :func:`pieces_to_assemble`."""
    return None if status is None else {name: getattr(status, name) for name in ASSEMBLY_FIELDS}


def register_tasks(celery: Celery) -> None:
    """Register the pipeline's steps on ``celery`` under their public names."""
    for name, fn in ((PARTITION, partition), (APP, run_app), (ASSEMBLE, assemble), (RESUME, resume)):
        celery.task(bind=True, name=name, ignore_result=True,  # results live in Runner's store
                    max_retries=None,  # a piece's attempts are Runner's to count (failures.py), not Celery's 3 a task
                    throws=(PiecesFailed,))(routed(leases.leased(fn)))  # PiecesFailed: logged, no traceback
