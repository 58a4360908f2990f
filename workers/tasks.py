"""The Celery tasks of a job: partition, app (one batch of pieces), assemble, resume.

Every state change goes through the store's transition table, so a task that arrives
late (the job was cancelled, timed out or already assembled) finds it cannot move the
job and quietly does nothing. Failures never travel through Celery's chord machinery:
a task records the error on the job, stops the job's other tasks and returns, so the
job ends the moment a piece fails for good instead of when the slowest sibling reports.
"""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from celery import Celery, Task
from celery.signals import task_failure

from runner.artifacts import ArtifactIO, artifact_prefix
from runner.dispatch import APP, ASSEMBLE, PARTITION, RESUME, assemble_task_id, send_assemble
from runner.lifecycle import end_job
from runner.models import JobState
from runner.pieces import Generated, resolve
from workers import leases, runtime, stopper
from workers.canvas import HARD_LIMIT_GRACE, batch_task_id, batch_time_limit, job_canvas, plan_batches
from workers.context import TaskContext
from workers.fold import CombineFailed, kept_results
from workers.inline import has_headroom, run_inline, serves
from workers.inputs import Inputs
from workers.routing import routed
from workers.limits import PieceTimeLimitExceeded, SoftTimeLimitExceeded, piece_timer

__all__ = ["register_tasks", "fail_job"]

FLUSH_SECONDS = 0.5  # how often a long batch publishes results (progress, less redo, sees cancel)
STATE_CHECK_SECONDS = 0.05  # how stale a batch's idea of its job's state may be before a piece starts
TRACEBACK_LINES = 15
MAX_DELIVERIES = 5  # starts of one batch before its pieces count as killing their worker
RETRY_BACKOFF = 0.5  # seconds before the first retry; doubles each time, at most 60 s


def _error(stage: str, exc: BaseException, piece: int | None = None, **extra: Any) -> dict[str, Any]:
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return {
        "stage": stage,
        "piece": piece,
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(lines).splitlines()[-TRACEBACK_LINES:],
        **extra,
    }


def fail_job(celery: Celery, job_id: str, error: dict[str, Any], task_id: str | None) -> bool:
    """Fail the job (see :func:`runner.lifecycle.end_job`), sparing the calling task."""
    stopper.disarm()
    return end_job(runtime.services(celery), job_id, JobState.FAILED, error=error, spare_task=task_id)


def _context(spec: runtime.JobSpec, kind: str, **extra: Any) -> TaskContext:
    """The ``ctx`` for one of the job's functions."""
    storages = runtime.storages()
    return TaskContext(
        spec.job_id, spec.template.ref, kind, spec.params[kind], test=spec.test, storages=storages,
        inputs=Inputs(spec.inputs, runtime.input_cache()),
        io=ArtifactIO(storages, artifact_prefix(runtime.settings(), spec.job_id)), **extra,
    )


def _flush_records(ctx: TaskContext) -> None:
    """Send the metrics and log lines user code produced to the store."""
    metrics, lines = ctx.take_records()
    runtime.store().metric_series.add(ctx.job_id, metrics)  # live: summary and series too
    runtime.store().add_logs(ctx.job_id, lines)


def _close(ctx: TaskContext) -> None:
    """Persist the context's artifacts, metrics and logs, drop its scratch space."""
    try:
        ctx.close_piece()
    finally:
        _flush_records(ctx)


def _lifecycle(job_id: str, msg: str, level: str = "INFO", **where: Any) -> None:
    runtime.store().add_logs(job_id, [{"level": level, "source": "runner", "msg": msg, **where}])


def _claim(job_id: str, task_id: str, target: JobState, owner_field: str, **fields: Any) -> bool:
    """Move the job to ``target`` as ``task_id``, or accept a redelivery of the task that
    already did (same id, job still in ``target``): a task killed half way resumes."""
    store = runtime.store()
    if store.transition(job_id, target, strict=False, **{owner_field: task_id}, **fields):
        return True
    current = store.fields(job_id, "state", owner_field)
    return current["state"] == target.value and current[owner_field] == task_id


def _plan(spec: runtime.JobSpec, total: int) -> list[tuple[int, int]]:
    """The job's batches, sized for the processes serving its queue and for how long the
    template's pieces took lately."""
    return plan_batches(total, _parallelism(spec.queue), runtime.settings().max_batch, spec.template.batch_size,
                        runtime.store().piece_seconds(spec.piece_kind))


def _parallelism(queue: str) -> int:
    """Worker processes consuming ``queue`` now, from the workers' heartbeats."""
    live = runtime.store().live_workers(recent=True).values()
    return sum(worker.concurrency for worker in live if worker.serves(queue)) or 1


def _fan_out(task: Task, job_id: str, pieces: list[tuple[int, int]], round_: int, deadline: float,
             keep_first: bool = False, logs: list[dict[str, Any]] | None = None) -> tuple[str, int, int] | None:
    """Send the app batches over ``pieces``, their task ids recorded first so a cancel can
    revoke them; with no pieces, assemble at once. With ``keep_first``, the first batch
    is not sent when this worker serves its queue: it is returned (task id, start, stop)
    for the caller to run inline (``workers/inline.py``) once the fan-out is recorded.

    The group is sent, not ``replace``-d in, so the partition task keeps its own id and
    stays visible as ``runner.partition`` in Flower.
    """
    if not pieces:
        runtime.store().add_logs(job_id, logs or [])
        _assemble_now(task, job_id, deadline)
        return None
    spec, kept = runtime.job_spec(job_id), None
    if keep_first and serves(task.app, spec.queue):
        kept = (batch_task_id(job_id, round_, pieces[0][0]), *pieces[0])
        pieces = pieces[1:]
    canvas, ids = job_canvas(spec, pieces, deadline, round_)
    if ids:
        runtime.store().add_tasks(job_id, ids + ([kept[0]] if kept else []), logs=logs)
        canvas.apply_async()
        runtime.store().update(job_id, fanned_out=True)
    else:  # only the kept batch: one round trip
        runtime.store().add_tasks(job_id, [kept[0]] if kept else [], logs=logs, fanned_out=True)
    return kept


def _run_kept(task: Task, job_id: str, kept: tuple[str, int, int] | None, deadline: float) -> None:
    """Run the batch :func:`_fan_out` kept, in this process, as the app task it would be."""
    if kept:
        spec, (task_id, start, stop) = runtime.job_spec(job_id), kept
        with stopper.hard_limit(batch_time_limit(spec, start, stop)):  # what its message would have carried
            run_inline(task, APP, run_app, task_id, [job_id, spec.template.ref, start, stop], spec.queue, deadline)


def _assemble_now(task: Task, job_id: str, deadline: float | None = None) -> None:
    """Assemble the job: here when this worker serves the control queue and the calling
    task's hard limit leaves room, else by sending the assemble task, its id recorded so
    a cancel revokes it. (An inline assembly has no message to revoke; re-sent after its
    process died, it finds the job ended and does nothing.)"""
    settings = runtime.settings()
    deadline = deadline or runtime.deadline(job_id)
    budget = runtime.job_spec(job_id).task_timeout + HARD_LIMIT_GRACE
    if serves(task.app, settings.control_queue) and has_headroom(task, budget):
        run_inline(task, ASSEMBLE, assemble, assemble_task_id(job_id), [job_id], settings.control_queue, deadline)
    else:
        runtime.store().add_tasks(job_id, [send_assemble(task.app, job_id, deadline)])


def partition(task: Task, job_id: str, template: str) -> Any:
    """Stream the source through the partitioner into the store, then fan out.

    ``template`` rides in the message only so Flower shows it; the worker reads the job's
    template, like every other fact of the job, from its record."""
    store = runtime.store()
    spec, record = runtime.job_facts(job_id, "state", "deadline")
    state = JobState(record["state"]) if record["state"] else None
    if spec is None or state not in (JobState.QUEUED, JobState.PARTITIONING, JobState.RUNNING):
        return None
    deadline = float(record["deadline"] or 0)
    if state is JobState.RUNNING:  # re-run after the pieces were stored: fan out if that never happened
        fields = store.fields(job_id, "partition_task", "pieces_total", "fanned_out")
        if fields["partition_task"] != task.request.id or fields["fanned_out"]:
            return None
        batches = _plan(spec, int(fields["pieces_total"]))
        _fan_out(task, job_id, batches, 0, deadline)
        return len(batches)
    if not _claim(job_id, task.request.id, JobState.PARTITIONING, "partition_task", started_at=time.time()):
        return None
    try:
        ctx = _context(spec, "partitioner", source=runtime.storages().source(spec.source))
        try:
            pieces = spec.template.function("partitioner").fn(ctx.source, ctx)
            limit = spec.template.test_pieces if spec.test else None
            keep = deadline - time.time() + spec.retention_hours * 3600
            total = store.store_pieces(job_id, pieces, keep, limit)
        finally:
            _close(ctx)
    except Exception as exc:
        error = _error("partition", exc)
        _lifecycle(job_id, f"partitioner failed: {error['type']}: {error['message']}", "ERROR")
        fail_job(task.app, job_id, error, task.request.id)
        return None
    batches = _plan(spec, total)
    if not store.transition(job_id, JobState.RUNNING, strict=False, expect=[JobState.PARTITIONING],
                            pieces_total=total, batches_total=len(batches)):
        return None
    line = {"level": "INFO", "source": "runner",
            "msg": f"partitioned {spec.source} into {total} piece{'s' * (total != 1)}, {len(batches)} app "
                   f"task{'s' * (len(batches) != 1)} on queue {spec.queue}"}
    kept = _fan_out(task, job_id, batches, 0, deadline, keep_first=True, logs=[line])
    _run_kept(task, job_id, kept, deadline)  # fanned out already: a re-run sends nothing; the kept batch is leased
    return len(batches)


def resume(task: Task, job_id: str, template: str) -> Any:
    """Re-run only the pieces with no result (``retry_failed``), then assemble."""
    store = runtime.store()
    if store.state(job_id) is not JobState.RUNNING:
        return None
    fields = store.fields(job_id, "pieces_total", "round")
    missing = store.missing_pieces(job_id, int(fields["pieces_total"]))
    spec = runtime.job_spec(job_id)
    batches: list[tuple[int, int]] = []
    for first, last in _runs(missing):
        batches += [(first + a, first + b) for a, b in _plan(spec, last - first)]
    store.add_event(job_id, "resume", pieces=len(missing), batches=len(batches))
    _fan_out(task, job_id, batches, int(fields["round"] or 1), runtime.deadline(job_id))
    return len(batches)


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` runs of sorted indices."""
    runs: list[tuple[int, int]] = []
    for index in indices:
        if runs and runs[-1][1] == index:
            runs[-1] = (runs[-1][0], index + 1)
        else:
            runs.append((index, index + 1))
    return runs


def run_app(task: Task, job_id: str, template: str, start: int, stop: int) -> int:
    """Run the app over pieces ``start``..``stop``, one call per piece, each under its own
    time limit; a failing piece is retried from where it failed, with backoff. The batch
    that records the job's last piece sends the assembly."""
    store = runtime.store()
    event = {"task": task.request.id, "start": start, "stop": stop, "host": task.request.hostname or socket.gethostname(),
             "pid": os.getpid()}
    state, deliveries, deadline = store.begin_batch(job_id, f"{task.request.id}:{start}", event)
    if state is None or state.is_final:
        return 0
    if deliveries > MAX_DELIVERIES:
        fail_job(task.app, job_id, task_id=task.request.id, error={
            "stage": "app", "piece": start, "type": "WorkerLost",
            "message": f"pieces {start}..{stop - 1} were started {deliveries - 1} times and never finished: "
                       f"a piece kills its worker process (out of memory? a crash in native code?)",
        })
        return 0
    batch = _Batch(task, job_id, start, stop, deadline)
    if deliveries > 1:  # a re-run (redelivery, or re-sent after its worker died): skip what is done
        batch.skip = store.done_pieces(job_id, start, stop)
    ran = batch.run()
    if ran:
        _note_piece_seconds(batch.spec.piece_kind, batch.app_seconds / ran)
    while batch.refused and _job_goes_on(job_id, deadline):  # another run recorded some of these pieces meanwhile
        batch = _Batch(task, job_id, start, stop, deadline)
        batch.skip = store.done_pieces(job_id, start, stop)  # grows every pass: this ends
        ran += batch.run()
    return ran


def _job_goes_on(job_id: str, deadline: float) -> bool:
    state = runtime.store().state(job_id)
    return time.time() < deadline and state is not None and not state.is_final


_noted: dict[str, tuple[float, float]] = {}  # piece kind -> (piece seconds, when) this process last wrote


def _note_piece_seconds(kind: str, seconds: float) -> None:
    """Tell the fleet how long pieces of this kind (template and params) take, when that
    changed by a quarter or was last said over 10 s ago (one write per batch would cost a
    small job a round trip)."""
    last = _noted.get(kind)
    if last and abs(seconds - last[0]) <= 0.25 * last[0] and time.monotonic() - last[1] < 10:
        return
    _noted[kind] = (seconds, time.monotonic())
    runtime.store().note_piece_seconds(kind, seconds)


class _Batch:
    """One app task's pieces, run in order, results flushed to the store as they come.

    Between pieces it stops when the job has ended: at once when the deadline has passed
    (known from the start), and within ``STATE_CHECK_SECONDS`` of a cancel or a failure."""

    def __init__(self, task: Task, job_id: str, start: int, stop: int, deadline: float) -> None:
        self.task, self.job_id, self.start, self.stop, self.deadline = task, job_id, start, stop, deadline
        self.skip: set[int] = set()
        self.checked_at = time.monotonic()  # the job's state was read just now (begin_batch)
        self.app_seconds = 0.0  # time inside the app's calls: how long this template's pieces take
        self.spec = runtime.job_spec(job_id)
        self.done = kept_results(self.spec.template.function("assembler"))
        self.refused = False  # a range this batch flushed overlapped one already recorded
        self.ctx = _context(self.spec, "app")

    def run(self) -> int:
        store, storages = runtime.store(), runtime.storages()
        app = self.spec.template.function("app").fn
        pieces = store.load_pieces(self.job_id, self.start, self.stop, lambda: _piece_function(self.job_id))
        ran, last_flush = 0, time.monotonic()
        with piece_timer(self.spec.task_timeout, HARD_LIMIT_GRACE) as timer:
            for index, piece in enumerate(pieces, self.start):
                if index in self.skip:
                    continue
                if not self._job_goes_on():
                    break
                timer.arm()
                began = time.perf_counter()
                try:
                    value = app(resolve(piece, storages), self.ctx.with_piece(index))
                    timer.disarm()
                    self.app_seconds += time.perf_counter() - began
                    self.done.add(index, value)
                except (Exception, PieceTimeLimitExceeded) as exc:
                    timer.disarm()
                    _close(self.ctx)
                    self._flush()
                    return _piece_failed(self.task, self.spec, self.job_id, index, self.stop, exc)
                ran += 1
                self.ctx.close_piece()
                if time.monotonic() - last_flush >= FLUSH_SECONDS:
                    _flush_records(self.ctx)
                    last_flush = time.monotonic()
                    if not self._flush():
                        return ran
        _close(self.ctx)
        self._flush(finished=True)
        return ran

    def _job_goes_on(self) -> bool:
        if time.time() >= self.deadline:
            return False  # the watchdog is ending the job; start nothing more
        if time.monotonic() - self.checked_at < STATE_CHECK_SECONDS:
            return True
        self.checked_at = time.monotonic()
        state = runtime.store().state(self.job_id)
        return state is not None and not state.is_final

    def _flush(self, finished: bool = False) -> bool:
        """Record the results so far; send the assembly if they were the job's last.
        Returns whether the job goes on."""
        store = runtime.store()
        if self.done:
            progress = self.done.record(store, self.job_id)
            self.refused = self.refused or bool(progress.refused)
            if progress.completes_job:
                _assemble_now(self.task, self.job_id, self.deadline)
            return progress.state is not None and not progress.state.is_final
        if finished and self.skip:  # a re-run that found its pieces done: the assembly may be lost too
            fields = store.fields(self.job_id, "state", "pieces_done", "pieces_total")
            if fields["state"] == JobState.RUNNING.value and fields["pieces_done"] == fields["pieces_total"]:
                _assemble_now(self.task, self.job_id, self.deadline)
        return True


@lru_cache(maxsize=16)
def _piece_function(job_id: str) -> Callable[[int], Any]:
    """The piece function of a job whose partitioner returned a :class:`Generated` with
    one: the partitioner is called again, once per process and job, to get it."""
    spec = runtime.job_spec(job_id)
    ctx = _context(spec, "partitioner", source=runtime.storages().source(spec.source))
    try:
        described = spec.template.function("partitioner").fn(ctx.source, ctx)
    finally:
        _close(ctx)
    if not isinstance(described, Generated) or described.piece is None:
        raise TypeError(f"partitioner {spec.template.partitioner!r} returned a Generated with a piece function "
                        f"when the job was partitioned, but {type(described).__name__} now: it must be deterministic")
    return described.piece


def _piece_failed(task: Task, spec: runtime.JobSpec, job_id: str, index: int, stop: int, exc: BaseException) -> int:
    """Retry the batch from the failed piece, or fail the job once its retries are spent."""
    store = runtime.store()
    if isinstance(exc, TypeError) and "JSON serializable" in str(exc):
        exc = TypeError(f"app returned a value that is not JSON-serializable: {exc}")
        attempts = spec.max_retries + 1  # deterministic: retrying cannot help
    elif isinstance(exc, CombineFailed):
        attempts = spec.max_retries + 1
    else:
        attempts = store.count_attempt(job_id, index)
    if isinstance(exc, (SoftTimeLimitExceeded, PieceTimeLimitExceeded)):
        exc = type(exc)(f"piece {index} exceeded task_timeout={spec.task_timeout:g}s")
    error = _error("app", exc, index, attempts=attempts)
    if attempts <= spec.max_retries:
        store.add_event(job_id, "piece_retry", piece=index, attempt=attempts,
                        error=f"{error['type']}: {error['message']}"[:500])
        backoff = min(60.0, RETRY_BACKOFF * 2 ** (attempts - 1))
        timed_out = "timed out; " if isinstance(exc, (SoftTimeLimitExceeded, PieceTimeLimitExceeded)) else ""
        _lifecycle(job_id, f"{timed_out}retry {attempts} of {spec.max_retries} in {backoff:g}s: "
                           f"{error['type']}: {error['message']}", "WARNING", piece=index)
        args = [job_id, spec.template.ref, index, stop]
        leases.expect(APP, task.request.id, args, time.time() + backoff)  # re-run if its worker dies meanwhile
        raise task.retry(args=args, countdown=backoff, max_retries=None, exc=exc)
    store.record_failure(job_id, index, error)
    _lifecycle(job_id, f"failed after {attempts} attempt(s): {error['type']}: {error['message']}\n"
                       + "\n".join(error["traceback"]), "ERROR", piece=index)
    fail_job(task.app, job_id, error, task.request.id)
    return 0


def assemble(task: Task, job_id: str) -> Any:
    """Stream every result in piece order to the assembler; store the output; complete."""
    store = runtime.store()
    if time.time() > (getattr(task, "deadline", None) or runtime.deadline(job_id)):  # known when run inline
        return None  # the watchdog ends the job; the assembler never runs past the deadline
    if not _claim(job_id, task.request.id, JobState.ASSEMBLING, "assemble_task"):
        return None
    spec = runtime.job_spec(job_id)
    counts = store.fields(job_id, "pieces_total", "pieces_done")
    total, done = int(counts["pieces_total"]), int(counts["pieces_done"])
    try:
        ctx = _context(spec, "assembler", source=runtime.storages().source(spec.source),
                       destination=runtime.storages().destination(spec.destination))
        if done != total:
            raise RuntimeError(f"{total - done} of {total} pieces have no result")
        try:
            output = spec.template.function("assembler").fn(store.iter_results(job_id, total), ctx)
        finally:
            _close(ctx)
        encoded = json.dumps(output, separators=(",", ":"))
        limit = runtime.settings().result_max_bytes
        if len(encoded) > limit:
            raise ValueError(
                f"assembled result is {len(encoded)} bytes, over RUNNER_RESULT_MAX_BYTES={limit}; "
                f"write it to a destination and return a summary instead"
            )
    except Exception as exc:
        error = _error("assemble", exc)
        _lifecycle(job_id, f"assembler failed: {error['type']}: {error['message']}", "ERROR")
        fail_job(task.app, job_id, error, task.request.id)
        return None
    summary = {"bytes": len(encoded), "type": type(output).__name__, "destination": spec.destination}
    stopper.disarm()
    end_job(runtime.services(task.app), job_id, JobState.COMPLETED, result_summary=summary, result=encoded)
    return None


@task_failure.connect
def _on_task_failure(sender: Task | None = None, task_id: str | None = None, exception: BaseException | None = None,
                     args: Any = None, **_: Any) -> None:
    """A task died outside Runner's own handling — a batch's hard time limit, a worker
    lost for good, a bug: fail its job now rather than at the deadline."""
    if sender is None or sender.name not in (APP, PARTITION, ASSEMBLE, RESUME) or not args:
        return
    job_id = args[0]
    piece = args[2] if sender.name == APP and len(args) > 2 else None
    stage = {APP: "app", PARTITION: "partition", ASSEMBLE: "assemble", RESUME: "resume"}[sender.name]
    error = _error(stage, exception or RuntimeError("unknown failure"), piece, task=task_id)
    if sender.name == APP and len(args) > 3:
        error["message"] = f"pieces {args[2]}..{args[3] - 1}: {error['message']}"
    try:
        fail_job(sender.app, job_id, error, task_id)
    except Exception:  # the store may be unreachable; the deadline still ends the job
        pass


def register_tasks(celery: Celery) -> None:
    """Register Runner's tasks on ``celery`` under their public names."""
    for name, fn in ((PARTITION, partition), (APP, run_app), (ASSEMBLE, assemble), (RESUME, resume)):
        celery.task(bind=True, name=name, ignore_result=True)(routed(leases.leased(fn)))  # results: Runner's store
