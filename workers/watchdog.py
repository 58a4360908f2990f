"""The deadline watchdog: a sweep, in every worker, over the sorted set of deadlines.

A countdown task per job would be redelivered by the Redis transport every visibility
timeout while it waits, and would die with a lost message; a sweep needs neither. Each
worker runs it every ``SWEEP_SECONDS``; the state transition is a compare-and-set, so of
several workers sweeping at once exactly one ends a given job.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import Celery

from runner import attached_jobs
from runner.lifecycle import end_job
from runner.models import ErrorInfo, JobState
from runner.schedules import sweep as scheduler
from workers import leases, org_gate, runtime

__all__ = ["sweep", "start_watchdog", "SWEEP_SECONDS"]

SWEEP_SECONDS = 0.5
log = logging.getLogger("runner.watchdog")


def sweep(celery: Celery, now: float | None = None) -> list[str]:
    """End every overdue job as ``timed_out``; returns the ids this call ended."""
    store = runtime.store()
    now = now or time.time()
    ended = []
    for job_id in store.jobs.overdue(now):
        fields = store.jobs.fields(job_id, "state", "job_timeout", "deadline", "attached", "seen_at")
        if fields["state"] is None or JobState(fields["state"]).is_final:
            store.jobs.forget_deadline(job_id)  # expired, or ended without us
            continue
        if (fields["deadline"] or 0) > now:  # retry_failed gave it a new deadline, or an attached job is due a look
            _check_attached(celery, job_id, fields, now, ended)
            continue
        error = ErrorInfo(stage="deadline", type="JobTimedOut",
                          message=f"job_timeout of {fields['job_timeout']:g}s passed")
        if end_job(runtime.services(celery), job_id, JobState.TIMED_OUT, error=error):
            log.warning("job %s timed out (job_timeout=%ss)", job_id, fields["job_timeout"])
            ended.append(job_id)
    return ended


def _check_attached(celery: Celery, job_id: str, fields: dict, now: float, ended: list[str]) -> None:
    """End an attached job whose process went silent; else look again when it could be."""
    if attached_jobs.silent(fields, now):
        error = {"stage": "attached", "type": "ProcessLost",
                 "message": f"{attached_jobs.SILENT} (no heartbeat for {fields['attached']['dead_seconds']:g}s)"}
        if end_job(runtime.services(celery), job_id, JobState.FAILED, error=error):
            log.warning("attached job %s failed: %s", job_id, attached_jobs.SILENT)
            ended.append(job_id)
    elif (again := attached_jobs.next_check(fields)) is not None:
        runtime.store().set_deadline(job_id, again)


def start_watchdog(celery: Celery, stop: threading.Event) -> threading.Thread:
    """Sweep in a daemon thread until ``stop`` is set: overdue jobs, then stale leases
    (work a dead or disconnected worker left behind, ``workers/leases.py``)."""

    def loop() -> None:
        while not stop.wait(SWEEP_SECONDS):
            try:
                sweep(celery)
                leases.recover(celery)
                scheduler.sweep(runtime.services(celery))  # recurring jobs: runner/schedules/spec.py says why here
                org_gate.sweep(celery)  # jobs held by their org's max_running_jobs, started as slots free
            except Exception:  # the store may be restarting: the next sweep retries
                log.exception("watchdog sweep failed")

    thread = threading.Thread(target=loop, name="runner-watchdog", daemon=True)
    thread.start()
    return thread
