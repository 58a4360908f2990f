"""What a task does when the job's code fails: retry a piece with backoff, or fail the job.

Failures never travel through Celery's chord machinery: a task records the error on the
job and stops the job's other tasks, so the job ends the moment a piece fails for good
instead of when the slowest sibling reports. Only then does the failing batch end its own
Celery task as failed (:class:`PiecesFailed`), so Flower shows what ``runner jobs`` shows.
A job that tolerates failed pieces (``runner/partial.py``) instead records the piece as
failed and goes on (:func:`_tolerate`), failing only once more pieces failed than it allows.
A task that dies outside Runner's own handling (a batch's hard time limit, a worker lost
for good, a bug) fails its job through Celery's ``task_failure`` signal, at once rather
than at the deadline.
"""

from __future__ import annotations

import time
import traceback
from typing import Any, NoReturn

from celery import Celery, Task
from celery.signals import task_failure

from runner.dispatch import APP, ASSEMBLE, PARTITION, RESUME
from runner.lifecycle import end_job
from runner.models import JobState
from runner.partial import Tolerance
from runner.store import Failure
from workers import leases, runtime, stopper
from workers.fold import CombineFailed
from workers.limits import PieceTimeLimitExceeded, SoftTimeLimitExceeded

__all__ = ["ASSEMBLY_FIELDS", "PiecesFailed", "error_info", "fail_job", "fail_stage", "fail_batch", "log_line", "piece_failed",
           "pieces_to_assemble", "TRACEBACK_LINES", "RETRY_BACKOFF"]

TRACEBACK_LINES = 15
RETRY_BACKOFF = 0.5  # seconds before the first retry; doubles each time, at most 60 s
_TIMEOUTS = (SoftTimeLimitExceeded, PieceTimeLimitExceeded)
_FUNCTION = {"partition": "partitioner", "assemble": "assembler"}  # whose code a stage runs


class PiecesFailed(Exception):
    """A batch's pieces failed for good, and the job is failed already. Raised after that,
    so that Celery — and Flower's Failed tab — records the batch task as failed, with the
    pieces' error; nothing else follows from it (no retry, no second failing of the job,
    the task's lease dropped, its message acknowledged)."""


def error_info(stage: str, exc: BaseException, piece: int | None = None, **extra: Any) -> dict[str, Any]:
    """The job's ``error`` field for ``exc`` raised in ``stage``."""
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return {
        "stage": stage,
        "piece": piece,
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(lines).splitlines()[-TRACEBACK_LINES:],
        **extra,
    }


def log_line(job_id: str, msg: str, level: str = "INFO", **where: Any) -> None:
    """One of Runner's own lines in the job's log."""
    runtime.store().journal.add_logs(job_id, [{"level": level, "source": "runner", "msg": msg, **where}])


def fail_job(celery: Celery, job_id: str, error: dict[str, Any], task_id: str | None) -> bool:
    """Fail the job (see :func:`runner.lifecycle.end_job`), sparing the calling task."""
    stopper.disarm()
    return end_job(runtime.services(celery), job_id, JobState.FAILED, error=error, spare_task=task_id)


def fail_stage(task: Task, job_id: str, stage: str, exc: Exception) -> None:
    """The partitioner or the assembler raised: say so in the job's log, fail the job."""
    error = error_info(stage, exc)
    log_line(job_id, f"{_FUNCTION[stage]} failed: {error['type']}: {error['message']}", "ERROR")
    fail_job(task.app, job_id, error, task.request.id)


def piece_failed(task: Task, spec: runtime.JobSpec, index: int, exc: BaseException, stop: int) -> bool:
    """Piece ``index`` raised ``exc``: retry the batch from it up to ``stop`` (raises
    Celery's ``Retry``), or once the piece's retries are spent fail the job (raises
    :class:`PiecesFailed`) — unless the job tolerates the loss (:func:`_tolerate`): then it
    returns whether this failure settled the job's last piece (the caller assembles)."""
    store, job_id = runtime.store(), spec.job_id
    exc, attempts = _attempt(spec, index, exc)
    error = error_info("app", exc, index, attempts=attempts)
    if attempts <= spec.max_retries:
        store.journal.add_event(job_id, "piece_retry", piece=index, attempt=attempts,
                        error=f"{error['type']}: {error['message']}"[:500])
        backoff = min(60.0, RETRY_BACKOFF * 2 ** (attempts - 1))
        timed_out = "timed out; " if isinstance(exc, _TIMEOUTS) else ""
        log_line(job_id, f"{timed_out}retry {attempts} of {spec.max_retries} in {backoff:g}s: "
                         f"{error['type']}: {error['message']}", "WARNING", piece=index)
        args = [job_id, spec.template.ref, index, stop]
        leases.expect(APP, task.request.id, args, time.time() + backoff)  # re-run if its worker dies meanwhile
        raise task.retry(args=args, countdown=backoff, max_retries=None, exc=exc)
    failure = store.pieces.record_failure(job_id, index, error)
    log_line(job_id, f"failed after {attempts} attempt(s): {error['type']}: {error['message']}\n"
                     + "\n".join(error["traceback"]), "ERROR", piece=index)
    return _tolerate(task, spec, index, stop, error, failure)


def _tolerate(task: Task, spec: runtime.JobSpec, index: int, stop: int, error: dict[str, Any],
              failure: Failure) -> bool:
    """Piece ``index`` failed for good. Without a tolerance, or past it, the job fails at
    once (naming the count and the limit). Within it, the piece stays failed: the batch
    goes on from the next piece (re-sent at once, as a retry is), or, when this was the
    job's last piece to settle, returns True for the caller to assemble."""
    tolerance, job_id = failure.tolerance, spec.job_id
    if not tolerance:
        fail_batch(task, job_id, error)
    allowed = tolerance.allowed(failure.total)
    if failure.failed > allowed:
        fail_batch(task, job_id, {**error, "pieces_failed": failure.failed, "failed_allowed": allowed, "message": (
            f"{error['message']} ({failure.failed} pieces failed for good, over the {allowed} the job allows: "
            f"{tolerance.describe(failure.total)})")})
    log_line(job_id, f"the job goes on without this piece: {failure.failed} of {failure.total} failed, "
                     f"{allowed} allowed ({tolerance.describe(failure.total)})", "WARNING", piece=index)
    if failure.settles:
        return True
    if index + 1 < stop:  # the rest of the batch, as a retry of it from the next piece
        args = [job_id, spec.template.ref, index + 1, stop]
        leases.expect(APP, task.request.id, args, time.time())
        raise task.retry(args=args, countdown=0, max_retries=None)
    return False


ASSEMBLY_FIELDS = ("pieces_total", "pieces_done", "min_success_ratio", "max_failed_pieces")  # what it counts from


def pieces_to_assemble(job_id: str, fields: dict[str, Any] | None = None) -> tuple[int, list[int]]:
    """The job's piece count and the pieces it is assembled without (``ctx.failed_pieces``):
    those that failed for good within its tolerance. Raises RuntimeError when a piece has
    neither a result nor such a failure, or more failed than the job allows. ``fields``:
    the record's ``ASSEMBLY_FIELDS``, when the caller read them already."""
    store = runtime.store()
    fields = fields or store.jobs.fields(job_id, *ASSEMBLY_FIELDS)
    total, done = int(fields["pieces_total"]), int(fields["pieces_done"])
    failed = store.pieces.failed_pieces(job_id) if done < total else []
    if done + len(failed) != total:
        raise RuntimeError(f"{total - done - len(failed)} of {total} pieces have no result")
    tolerance = Tolerance.of(fields)
    if failed and (not tolerance or len(failed) > tolerance.allowed(total)):
        limit = tolerance.describe(total) if tolerance else "the job tolerates none"
        raise RuntimeError(f"{len(failed)} of {total} pieces failed for good ({limit})")
    return total, failed


def fail_batch(task: Task, job_id: str, error: dict[str, Any]) -> NoReturn:
    """Fail the job with its batch's ``error``, then end the batch task as failed."""
    fail_job(task.app, job_id, error, task.request.id)
    raise PiecesFailed(f"piece {error['piece']}: {error['type']}: {error['message']}")


def _attempt(spec: runtime.JobSpec, index: int, exc: BaseException) -> tuple[BaseException, int]:
    """The error as the job reports it, and which attempt of the piece this was (an error
    retrying cannot help counts as the last)."""
    if isinstance(exc, TypeError) and "JSON serializable" in str(exc):
        return TypeError(f"app returned a value that is not JSON-serializable: {exc}"), spec.max_retries + 1
    if isinstance(exc, CombineFailed):
        return exc, spec.max_retries + 1
    attempts = runtime.store().pieces.count_attempt(spec.job_id, index)
    if isinstance(exc, _TIMEOUTS):
        exc = type(exc)(f"piece {index} exceeded task_timeout={spec.task_timeout:g}s")
    return exc, attempts


@task_failure.connect
def _on_task_failure(sender: Task | None = None, task_id: str | None = None, exception: BaseException | None = None,
                     args: Any = None, **_: Any) -> None:
    """A task died outside Runner's own handling — a batch's hard time limit, a worker
    lost for good, a bug: fail its job now rather than at the deadline."""
    if sender is None or sender.name not in (APP, PARTITION, ASSEMBLE, RESUME) or not args:
        return
    if isinstance(exception, PiecesFailed):
        return  # the job was failed with the pieces' error before this was raised
    job_id = args[0]
    piece = args[2] if sender.name == APP and len(args) > 2 else None
    stage = {APP: "app", PARTITION: "partition", ASSEMBLE: "assemble", RESUME: "resume"}[sender.name]
    error = error_info(stage, exception or RuntimeError("unknown failure"), piece, task=task_id)
    if sender.name == APP and len(args) > 3:
        error["message"] = f"pieces {args[2]}..{args[3] - 1}: {error['message']}"
    try:
        fail_job(sender.app, job_id, error, task_id)
    except Exception:  # the store may be unreachable; the deadline still ends the job
        pass
