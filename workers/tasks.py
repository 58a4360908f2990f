"""The three Celery tasks of a job: partition, app (one batch of pieces), assemble.

Every state change goes through the store's transition table, so a task that arrives
late (the job was cancelled, timed out or already assembled) finds it cannot move the
job and quietly does nothing. Failures never travel through Celery's chord machinery:
a task records the error on the job and returns, so the job ends the moment a piece
fails for good instead of when the slowest sibling reports.
"""

from __future__ import annotations

import json
import time
import traceback
from typing import Any

from celery import Celery, Task

from runner.dispatch import APP, ASSEMBLE, PARTITION
from runner.models import JobState
from runner.storage import Destination, Source
from workers import runtime
from workers.canvas import job_canvas, plan_batches
from workers.context import TaskContext

__all__ = ["register_tasks"]

FLUSH_SECONDS = 0.5  # how often a long batch publishes its results (progress, less redo)
TRACEBACK_LINES = 15


def _error(stage: str, exc: BaseException, piece: int | None = None) -> dict[str, Any]:
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return {
        "stage": stage,
        "piece": piece,
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(lines)[-4000:].splitlines()[-TRACEBACK_LINES:],
    }


def _fail(job_id: str, error: dict[str, Any]) -> None:
    store = runtime.store()
    if store.transition(job_id, JobState.FAILED, strict=False, finished_at=time.time(), error=error):
        store.finish(job_id, runtime.job_spec(job_id).retention_hours)


def _claim(job_id: str, task_id: str, target: JobState, owner_field: str, **fields: Any) -> bool:
    """Move the job to ``target`` as ``task_id``, or accept a redelivery of the task that
    already did (same id, job still in ``target``): a task killed half way resumes."""
    store = runtime.store()
    if store.transition(job_id, target, strict=False, **{owner_field: task_id}, **fields):
        return True
    current = store.fields(job_id, "state", owner_field)
    return current["state"] == target.value and current[owner_field] == task_id


def partition(task: Task, job_id: str, template: str) -> Any:
    """Stream the source through the partitioner into the store, then fan out."""
    store = runtime.store()
    state = store.state(job_id)
    if state is None or state.is_final:
        return None
    spec = runtime.job_spec(job_id)
    if state is JobState.QUEUED or state is JobState.PARTITIONING:
        if not _claim(job_id, task.request.id, JobState.PARTITIONING, "partition_task",
                      started_at=time.time()):
            return None
        ctx = TaskContext(job_id, template, "partitioner", spec.params["partitioner"], test=spec.test,
                          source=Source(spec.source))
        try:
            pieces = spec.template.function("partitioner").fn(ctx.source, ctx)
            limit = spec.template.test_pieces if spec.test else None
            total = store.store_pieces(job_id, pieces, spec.deadline - time.time() + spec.retention_hours * 3600, limit)
        except Exception as exc:
            _fail(job_id, _error("partition", exc))
            return None
        workers = sum(
            int(info.get("concurrency", 1))
            for info in store.live_workers().values()
            if spec.template.queue is None or spec.template.queue in info.get("queues", [])
        )
        batches = plan_batches(total, workers, runtime.settings().max_batch, spec.template.batch_size)
        if not store.transition(job_id, JobState.RUNNING, strict=False, pieces_total=total,
                                batches_total=len(batches)):
            return None
    else:  # RUNNING: a redelivered partition task whose chord may not have been sent
        if store.fields(job_id, "partition_task")["partition_task"] != task.request.id:
            return None
        total = int(store.fields(job_id, "pieces_total")["pieces_total"])
        batches = plan_batches(total, 1, runtime.settings().max_batch, spec.template.batch_size)
    queue = spec.template.queue or runtime.settings().default_queue
    raise task.replace(job_canvas(job_id, template, batches, queue, spec.deadline, spec.task_timeout))


def run_app(task: Task, job_id: str, template: str, start: int, stop: int) -> int:
    """Run the app over pieces ``start``..``stop``; one call per piece, results to the store."""
    store = runtime.store()
    state = store.state(job_id)
    if state is None or state.is_final:
        return 0
    spec = runtime.job_spec(job_id)
    app = spec.template.function("app").fn
    ctx = TaskContext(job_id, template, "app", spec.params["app"], test=spec.test)
    pieces = store.load_pieces(job_id, start, stop)
    done: list[str] = []
    flushed_at, last_flush = start, time.monotonic()
    for index, piece in enumerate(pieces, start):
        try:
            done.append(json.dumps(app(piece, ctx.with_piece(index)), separators=(",", ":")))
        except Exception as exc:
            if done:
                store.record_results(job_id, flushed_at, done)
            if isinstance(exc, TypeError) and "JSON serializable" in str(exc):
                exc = TypeError(f"app returned a value that is not JSON-serializable: {exc}")
            elif task.request.retries < spec.max_retries:
                backoff = min(60.0, 0.5 * 2 ** task.request.retries)
                raise task.retry(args=[job_id, template, index, stop], countdown=backoff, exc=exc,
                                 max_retries=spec.max_retries)
            store.record_failure(job_id, index, _error("app", exc, index))
            _fail(job_id, _error("app", exc, index))
            return index - start
        if time.monotonic() - last_flush >= FLUSH_SECONDS:
            store.record_results(job_id, flushed_at, done)
            flushed_at, done, last_flush = index + 1, [], time.monotonic()
    if done:
        store.record_results(job_id, flushed_at, done)
    return len(pieces)


def assemble(task: Task, job_id: str, template: str) -> Any:
    """Stream every result in piece order to the assembler; store the output; complete."""
    store = runtime.store()
    if not _claim(job_id, task.request.id, JobState.ASSEMBLING, "assemble_task"):
        return None
    spec = runtime.job_spec(job_id)
    counts = store.fields(job_id, "pieces_total", "pieces_done")
    total, done = int(counts["pieces_total"]), int(counts["pieces_done"])
    ctx = TaskContext(job_id, template, "assembler", spec.params["assembler"], test=spec.test,
                      source=Source(spec.source), destination=Destination(spec.destination))
    try:
        if done != total:
            raise RuntimeError(f"{total - done} of {total} pieces have no result")
        output = spec.template.function("assembler").fn(store.iter_results(job_id, total), ctx)
        encoded = json.dumps(output, separators=(",", ":"))
        limit = runtime.settings().result_max_bytes
        if len(encoded) > limit:
            raise ValueError(
                f"assembled result is {len(encoded)} bytes, over RUNNER_RESULT_MAX_BYTES={limit}; "
                f"write it to a destination and return a summary instead"
            )
    except Exception as exc:
        _fail(job_id, _error("assemble", exc))
        return None
    store.set_result(job_id, encoded)
    summary = {"bytes": len(encoded), "type": type(output).__name__, "destination": spec.destination}
    if store.transition(job_id, JobState.COMPLETED, strict=False, finished_at=time.time(), result_summary=summary):
        store.finish(job_id, spec.retention_hours)
    return None


def register_tasks(celery: Celery) -> None:
    """Register Runner's tasks on ``celery`` under their public names."""
    celery.task(bind=True, name=PARTITION)(partition)
    celery.task(bind=True, name=APP)(run_app)
    celery.task(bind=True, name=ASSEMBLE)(assemble)
