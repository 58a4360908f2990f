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
from typing import Any

from celery import Celery, Task
from celery.signals import task_failure

from runner import lifecycle
from runner.artifacts import ArtifactIO, artifact_prefix
from runner.dispatch import APP, ASSEMBLE, PARTITION, RESUME, stop_tasks
from runner.models import JobState
from partitioners.lines import TEXT_REF
from workers import runtime
from workers.canvas import HARD_LIMIT_GRACE, job_canvas, plan_batches
from workers.context import TaskContext
from workers.inputs import Inputs
from workers.limits import PieceTimeLimitExceeded, SoftTimeLimitExceeded, piece_timer

__all__ = ["register_tasks", "fail_job", "end_job"]

FLUSH_SECONDS = 0.5  # how often a long batch publishes results (progress, less redo, sees cancel)
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


def end_job(celery: Celery, job_id: str, target: JobState, error: dict[str, Any]) -> bool:
    """End the job in ``target`` (once: a lost race changes nothing), then revoke queued
    tasks and kill running ones. Returns whether this call ended it."""
    store = runtime.store()
    if not lifecycle.end_job(store, runtime.storages(), runtime.settings(), job_id, target, error=error):
        return False
    stop_tasks(celery, [t for t in store.tasks(job_id) if t != _current_task_id()])
    return True


def fail_job(celery: Celery, job_id: str, error: dict[str, Any]) -> bool:
    return end_job(celery, job_id, JobState.FAILED, error)


def _current_task_id() -> str | None:
    from celery import current_task

    return current_task.request.id if current_task else None


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
    runtime.store().add_metrics(ctx.job_id, metrics)
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


def _parallelism(queue: str) -> int:
    """Worker processes consuming ``queue`` now, from the workers' heartbeats."""
    live = runtime.store().live_workers().values()
    return sum(int(info.get("concurrency", 1)) for info in live if queue in info.get("queues", [])) or 1


def _fan_out(task: Task, job_id: str, template: str, pieces: list[tuple[int, int]], round_: int) -> int:
    """Send the chord over ``pieces`` (batches), its task ids recorded first so a cancel
    can revoke them; returns how many app tasks were sent.

    The chord is sent, not ``replace``-d in: Runner reads results from its store, never
    from Celery's result of the root task, and a partition task that keeps its own id
    stays visible as ``runner.partition`` in Flower.
    """
    spec = runtime.job_spec(job_id)
    queue = spec.template.queue or runtime.settings().default_queue
    canvas, ids = job_canvas(job_id, template, pieces, queue, runtime.deadline(job_id), spec.task_timeout, round_)
    runtime.store().add_tasks(job_id, ids)
    canvas.apply_async()
    return len(ids) - 1


def partition(task: Task, job_id: str, template: str) -> Any:
    """Stream the source through the partitioner into the store, then fan out."""
    store = runtime.store()
    state = store.state(job_id)
    if state not in (JobState.QUEUED, JobState.PARTITIONING, JobState.RUNNING):
        return None
    spec = runtime.job_spec(job_id)
    queue = spec.template.queue or runtime.settings().default_queue
    if state is JobState.RUNNING:  # redelivered after the pieces were stored: fan out again
        fields = store.fields(job_id, "partition_task", "pieces_total")
        if fields["partition_task"] != task.request.id:
            return None
        total = int(fields["pieces_total"])
        return _fan_out(task, job_id, template, plan_batches(total, _parallelism(queue),
                        runtime.settings().max_batch, spec.template.batch_size), 0)
    if not _claim(job_id, task.request.id, JobState.PARTITIONING, "partition_task", started_at=time.time()):
        return None
    try:
        ctx = _context(spec, "partitioner", source=runtime.storages().source(spec.source))
        try:
            pieces = spec.template.function("partitioner").fn(ctx.source, ctx)
            limit = spec.template.test_pieces if spec.test else None
            keep = runtime.deadline(job_id) - time.time() + spec.retention_hours * 3600
            total = store.store_pieces(job_id, pieces, keep, limit)
        finally:
            _close(ctx)
    except Exception as exc:
        error = _error("partition", exc)
        _lifecycle(job_id, f"partitioner failed: {error['type']}: {error['message']}", "ERROR")
        fail_job(task.app, job_id, error)
        return None
    batches = plan_batches(total, _parallelism(queue), runtime.settings().max_batch, spec.template.batch_size)
    _lifecycle(job_id, f"partitioned {spec.source} into {total} pieces, {len(batches)} app tasks on queue {queue}")
    if not store.transition(job_id, JobState.RUNNING, strict=False, expect=[JobState.PARTITIONING],
                            pieces_total=total, batches_total=len(batches)):
        return None
    return _fan_out(task, job_id, template, batches, 0)


def resume(task: Task, job_id: str, template: str) -> Any:
    """Re-run only the pieces with no result (``retry_failed``), then assemble."""
    store = runtime.store()
    if store.state(job_id) is not JobState.RUNNING:
        return None
    fields = store.fields(job_id, "pieces_total", "round")
    missing = store.missing_pieces(job_id, int(fields["pieces_total"]))
    spec = runtime.job_spec(job_id)
    queue = spec.template.queue or runtime.settings().default_queue
    batches: list[tuple[int, int]] = []
    for first, last in _runs(missing):
        batches += [(first + a, first + b) for a, b in plan_batches(
            last - first, _parallelism(queue), runtime.settings().max_batch, spec.template.batch_size)]
    store.add_event(job_id, "resume", pieces=len(missing), batches=len(batches))
    return _fan_out(task, job_id, template, batches, int(fields["round"] or 1))


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
    time limit; a failing piece is retried from where it failed, with backoff."""
    store = runtime.store()
    event = {"task": task.request.id, "start": start, "stop": stop, "host": task.request.hostname or socket.gethostname(),
             "pid": os.getpid()}
    state, deliveries = store.begin_batch(job_id, f"{task.request.id}:{start}", event)
    if state is None or state.is_final:
        return 0
    if deliveries > MAX_DELIVERIES:
        fail_job(task.app, job_id, {
            "stage": "app", "piece": start, "type": "WorkerLost",
            "message": f"pieces {start}..{stop - 1} were started {deliveries - 1} times and never finished: "
                       f"a piece kills its worker process (out of memory? a crash in native code?)",
        })
        return 0
    spec = runtime.job_spec(job_id)
    app = spec.template.function("app").fn
    ctx = _context(spec, "app")
    pieces = store.load_pieces(job_id, start, stop)
    done: list[str] = []
    flushed_at, last_flush = start, time.monotonic()
    with piece_timer(spec.task_timeout, HARD_LIMIT_GRACE) as timer:
        for index, piece in enumerate(pieces, start):
            timer.arm()
            try:
                if type(piece) is dict and piece.get("$ref") == TEXT_REF:  # a claim check: read it here
                    piece = ctx.read_range(piece).decode(piece["encoding"])
                value = app(piece, ctx.with_piece(index))
                timer.disarm()
                done.append(json.dumps(value, separators=(",", ":")))
            except (Exception, PieceTimeLimitExceeded) as exc:
                timer.disarm()
                _close(ctx)
                if done:
                    store.record_results(job_id, flushed_at, done)
                return _piece_failed(task, spec, job_id, template, index, stop, exc)
            ctx.close_piece()
            if time.monotonic() - last_flush >= FLUSH_SECONDS:
                _flush_records(ctx)
                state = store.record_results(job_id, flushed_at, done)
                flushed_at, done, last_flush = index + 1, [], time.monotonic()
                if state is None or state.is_final:
                    return index + 1 - start
    _close(ctx)
    if done:
        store.record_results(job_id, flushed_at, done)
    return len(pieces)


def _piece_failed(task: Task, spec: runtime.JobSpec, job_id: str, template: str, index: int, stop: int,
                  exc: BaseException) -> int:
    """Retry the batch from the failed piece, or fail the job once its retries are spent."""
    store = runtime.store()
    if isinstance(exc, TypeError) and "JSON serializable" in str(exc):
        exc = TypeError(f"app returned a value that is not JSON-serializable: {exc}")
        attempts = spec.max_retries + 1  # deterministic: retrying cannot help
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
        raise task.retry(args=[job_id, template, index, stop], countdown=backoff, max_retries=None, exc=exc)
    store.record_failure(job_id, index, error)
    _lifecycle(job_id, f"failed after {attempts} attempt(s): {error['type']}: {error['message']}\n"
                       + "\n".join(error["traceback"]), "ERROR", piece=index)
    fail_job(task.app, job_id, error)
    return 0


def assemble(task: Task, job_id: str, template: str) -> Any:
    """Stream every result in piece order to the assembler; store the output; complete."""
    store = runtime.store()
    if time.time() > runtime.deadline(job_id):
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
        fail_job(task.app, job_id, error)
        return None
    store.set_result(job_id, encoded)
    summary = {"bytes": len(encoded), "type": type(output).__name__, "destination": spec.destination}
    lifecycle.end_job(store, runtime.storages(), runtime.settings(), job_id, JobState.COMPLETED, result_summary=summary)
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
        fail_job(sender.app, job_id, error)
    except Exception:  # the store may be unreachable; the deadline still ends the job
        pass


def register_tasks(celery: Celery) -> None:
    """Register Runner's tasks on ``celery`` under their public names."""
    celery.task(bind=True, name=PARTITION)(partition)
    celery.task(bind=True, name=APP)(run_app)
    celery.task(bind=True, name=ASSEMBLE)(assemble)
    celery.task(bind=True, name=RESUME)(resume)
