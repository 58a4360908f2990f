"""Ending a job: the one path every final state takes (completed, failed, cancelled,
timed out), from a worker or a client alike."""

from __future__ import annotations

import time
from typing import Any

from runner import joblog
from runner.artifacts import write_output
from runner.config import Settings
from runner.models import JobState
from runner.storage import Storages
from runner.store import StatusStore

__all__ = ["end_job"]


def end_job(
    store: StatusStore, storages: Storages, settings: Settings, job_id: str, target: JobState, **fields: Any
) -> bool:
    """Move the job to the final state ``target`` — once: of racing enders one wins — with
    its ``output.json`` already in place when anyone can see the final state. Starts the
    retention clock. Returns whether this call ended the job."""
    current = store.state(job_id)
    if current is None or current.is_final:
        return False
    fields.setdefault("finished_at", time.time())
    write_output(store, storages, settings, job_id, state=target, **fields)
    if not store.transition(job_id, target, strict=False, **fields):
        write_output(store, storages, settings, job_id)  # somebody else ended it: report what really happened
        return False
    status = store.get(job_id)
    store.finish(job_id, status.retention_hours)
    store.add_logs(job_id, [joblog.ending_line(status)])
    return True
