"""Ending a job: the one path every final state takes — completed, failed, cancelled,
timed out — from a worker, the watchdog or a client alike.

Ending is four things, always in this order: ``output.json`` in place before anyone can
see the final state; one compare-and-set to the final state (of racing enders exactly one
wins), which logs the lifecycle line with it; its deadline and its org's quota counts
freed; and, unless the job completed, its other tasks stopped (queued ones revoked,
running ones killed). Keeping them in one function is what makes every ending look the
same to a user, whichever process ended the job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.artifacts import write_output
from runner.config import Settings
from runner.dispatch import stop_tasks
from runner.models import ErrorInfo, JobState, JobStatus
from runner.storage import Storages
from runner.store import StatusStore

if TYPE_CHECKING:
    from celery import Celery  # imported when a Celery app is made: clients that only read skip it

__all__ = ["Services", "end_job"]


@dataclass(frozen=True)
class Services:
    """What ending a job touches: the store, the storages (for ``output.json``), the
    settings, and Celery (to stop the job's tasks)."""

    store: StatusStore
    storages: Storages
    settings: Settings
    celery: Celery


def end_job(
    services: Services,
    job_id: str,
    target: JobState,
    *,
    error: ErrorInfo | dict[str, Any] | None = None,
    result_summary: dict[str, Any] | None = None,
    result: str | None = None,
    spare_task: str | None = None,
    partial: bool = False,
    report: tuple[JobStatus | None, list[dict[str, Any]]] | None = None,
) -> bool:
    """Move the job to the final state ``target`` — once — and stop its tasks (all but
    ``spare_task``, the caller's own). ``result`` (the assembled output as JSON) is stored
    before anything else; ``partial`` marks a completion without some failed pieces
    (``runner/partial.py``). ``report``: the record and metrics as the caller read them
    since the last change it made or awaited (the assembly's, with its claim): then the
    result is stored in the final move's own transaction, one round trip less. Returns
    whether this call ended the job."""
    if isinstance(error, ErrorInfo):
        error = error.as_dict()
    store = services.store
    fields: dict[str, Any] = {"finished_at": time.time()}
    if error is not None:
        fields["error"] = error
    if result_summary is not None:
        fields["result_summary"] = result_summary
    if partial:
        fields["partial"] = True
    store_result = None
    if report is None:
        report = store.report(job_id, result)
    elif result is not None:
        store_result = lambda pipe: store.journal.queue_result(pipe, job_id, result)  # noqa: E731
    current = report[0]
    if current is None or current.is_final:
        return False
    write_output(store, services.storages, services.settings, job_id, report, state=target, **fields)
    retention = current.retention_hours * 3600  # starts the moment the job is seen final
    queued_at = current.queued_at.timestamp() if current.queued_at else 0
    line = _ending_line(target, error, fields["finished_at"] - queued_at, fields)  # logged with the move
    moved = store.jobs.transition_then(job_id, target, strict=False, keep_seconds=retention, before=store_result,
                                       log_line=line, **fields)[0] if store_result else \
        store.transition(job_id, target, strict=False, keep_seconds=retention, log_line=line, **fields)
    if not moved:
        write_output(store, services.storages, services.settings, job_id)  # somebody else ended it
        return False
    # its deadline; its held batches and slots; its org's running slot or queued/waiting place
    store.wind_up(job_id, current.org, None, retention)
    if target is not JobState.COMPLETED:
        stop_tasks(services.celery, [task for task in store.tasks(job_id) if task != spare_task])
    return True


def _ending_line(target: JobState, error: dict[str, Any] | None, seconds: float,
                 fields: dict[str, Any]) -> dict[str, Any]:
    """The lifecycle log line of an ending: what happened, why, and after how long."""
    took = f" after {seconds:.2f}s" if 0 < seconds < 10 * 365 * 86400 else ""
    if target is JobState.COMPLETED:
        partial = " (partial: without its failed pieces)" if fields.get("partial") else ""
        return {"level": "INFO", "source": "runner", "msg": f"completed{took}{partial}"}
    why = f": {ErrorInfo.model_validate(error).describe()}" if error else ""
    level = "WARNING" if target is JobState.CANCELLED else "ERROR"
    return {"level": level, "source": "runner", "msg": f"{target.value.replace('_', ' ')}{took}{why}"}
