"""Attached jobs: jobs whose work a process outside the fleet does — a training script on
a laptop, a container on a GPU box, a notebook (Brevetti's Job API, Ray's entrypoints).

The job is created with free-JSON ``settings`` and its own key (``job_keys.py``) and
waits ``queued``; the process attaches with the id and key (``runner.attach.Job``),
starts it (``queued → partitioning → running``: nothing to split), reports artifacts,
metrics and heartbeats over HTTP, and completes it (``running → assembling →
completed``) or fails it, always through :func:`runner.lifecycle.end_job`. The state
table is not widened for them: they walk the same edges as every job.

``job_timeout`` holds as for every job (its deadline is in the deadlines set). While it
runs, each heartbeat moves the job's entry in that set to the earlier of its deadline and
now + ``dead_seconds``; the fleet's deadline sweep (``workers/watchdog.py``) then finds a
job whose process went silent and ends it ``failed`` with :data:`SILENT`.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from runner import admission, joblog
from runner.errors import IllegalTransition, InvalidParams
from runner.job_keys import create_job_key
from runner.lifecycle import Services, end_job
from runner.models import JobState, JobStatus, RunOptions
from runner import guards

if TYPE_CHECKING:
    from runner.store import StatusStore

__all__ = ["create_attached", "start", "heartbeat", "complete", "fail", "silent", "next_check", "SILENT",
           "ATTACHED_TEMPLATE"]

ATTACHED_TEMPLATE = "attached"  # what the template field of an attached job's record says
SILENT = "the attached process stopped reporting"
_WATCHED = ("state", "deadline", "attached", "seen_at")


def _settings(value: Any, limit: int) -> dict[str, Any]:
    """The job's settings as sent: a JSON object of at most ``limit`` bytes."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParams([("settings", f"must be a JSON object, got {type(value).__name__}")])
    try:
        size = len(json.dumps(value, allow_nan=False, separators=(",", ":")).encode())
    except (TypeError, ValueError) as exc:
        raise InvalidParams([("settings", f"must be plain JSON values: {exc}")]) from None
    if size > limit:
        raise InvalidParams([("settings", f"{size} bytes, over RUNNER_MAX_PARAMS_BYTES={limit}")])
    return value


def create_attached(services: Services, org: str, *, name: str | None = None,
                    settings: dict[str, Any] | None = None, job_timeout: float | None = None,
                    retention_hours: float | None = None, who: str | None = None) -> tuple[JobStatus, str]:
    """Create a job of ``org`` for an outside process: ``(its record, its own API key)``.
    The key is shown only here. Raises InvalidParams naming each bad value, writing nothing."""
    config = services.settings
    options = RunOptions.checked(config.max_timeout_seconds, job_timeout=job_timeout)
    record = _record(org, guards.name("name", name), _settings(settings, config.max_params_bytes),
                     float(options.job_timeout or config.job_timeout),
                     guards.retention(retention_hours) or config.retention_hours, config.attach_dead_seconds)
    lifetime = record["job_timeout"] + record["retention_hours"] * 3600
    key_id, key = create_job_key(services.store, org, record["id"], lifetime)
    record["attached"]["key_id"] = key_id
    admission.admit_attached(services, record, lifetime, who)  # the one door that writes job records
    return services.store.get(record["id"], org), key


def _record(org: str, name: str | None, settings: dict[str, Any], timeout: float, retention: float,
            dead_seconds: float) -> dict[str, Any]:
    now = time.time()
    return {
        "id": admission.new_job_id(), "org": org, "template": ATTACHED_TEMPLATE,
        "state": JobState.QUEUED.value, "name": name, "params": {}, "source": "bypass:", "destination": "bypass:",
        "inputs": {}, "test": False, "task_timeout": timeout, "job_timeout": timeout, "max_retries": 0,
        "retention_hours": retention, "queue": ATTACHED_TEMPLATE, "created_at": now, "queued_at": now,
        "deadline": now + timeout, "pieces_done": 0, "pieces_failed": 0, "settings": settings,
        "attached": {"dead_seconds": dead_seconds},
    }


def _attached(store: "StatusStore", job_id: str) -> dict[str, Any]:
    """The job's watched fields; IllegalTransition when it has ended or is not attached."""
    fields = store.fields(job_id, *_WATCHED)
    if not fields["attached"]:
        raise IllegalTransition(f"job {job_id} is not an attached job (create one with attach: true)")
    if fields["state"] is None or JobState(fields["state"]).is_final:
        raise IllegalTransition(f"job {job_id} has already ended ({fields['state']}); create a new job")
    return fields


def _watch_from(fields: dict[str, Any], now: float) -> float:
    return min(float(fields["deadline"]), now + float(fields["attached"]["dead_seconds"]))


def start(store: "StatusStore", job_id: str, host: str | None = None, pid: int | None = None) -> None:
    """Mark the job running for the process on ``host`` (again, if a process restarts)."""
    fields, now = _attached(store, job_id), time.time()
    attached = {**fields["attached"], "host": host, "pid": pid, "started_at": now}
    if JobState(fields["state"]) is JobState.QUEUED:
        store.transition(job_id, JobState.PARTITIONING, expect=[JobState.QUEUED])
        store.transition(job_id, JobState.RUNNING, expect=[JobState.PARTITIONING], started_at=now)
    elif JobState(fields["state"]) is not JobState.RUNNING:
        raise IllegalTransition(f"job {job_id} is {fields['state']}; only a queued or running job can start")
    store.update(job_id, attached=attached, seen_at=now)
    store.set_deadline(job_id, _watch_from(fields, now))
    store.add_logs(job_id, [joblog.line(f"attached process started on {host or '?'} (pid {pid or '?'})")])


def heartbeat(store: "StatusStore", job_id: str) -> JobState:
    """The process is alive: push back the moment it would count as gone."""
    fields, now = _attached(store, job_id), time.time()
    store.update(job_id, seen_at=now)
    if fields["state"] == JobState.RUNNING.value:
        store.set_deadline(job_id, _watch_from(fields, now))
    return JobState(fields["state"])


def complete(services: Services, job_id: str, model: str | None = None) -> bool:
    """End the job ``completed`` (started first if it never was), recording ``model``
    (an artifact name) as its result."""
    store = services.store
    if JobState(_attached(store, job_id)["state"]) is JobState.QUEUED:
        start(store, job_id)
    store.transition(job_id, JobState.ASSEMBLING, expect=[JobState.RUNNING])
    result = {"model": model} if model else None
    return end_job(services, job_id, JobState.COMPLETED, result_summary=result, result=json.dumps(result))


def fail(services: Services, job_id: str, message: str, kind: str | None = None,
         traceback: str | None = None) -> bool:
    """End the job ``failed`` with the process's error (type, message, traceback)."""
    _attached(services.store, job_id)
    error = {"stage": "attached", "type": kind or "Error", "message": message}
    if traceback:
        error["traceback"] = traceback
    return end_job(services, job_id, JobState.FAILED, error=error)


def silent(fields: dict[str, Any], now: float) -> bool:
    """Whether a running attached job's process has not reported for its dead seconds
    (``fields``: the record's state, attached and seen_at)."""
    attached = fields.get("attached")
    if not attached or fields.get("state") != JobState.RUNNING.value:
        return False
    return float(fields.get("seen_at") or 0) + float(attached["dead_seconds"]) <= now


def next_check(fields: dict[str, Any]) -> float | None:
    """When the deadline sweep should look at an attached job again (None: not attached)."""
    if not fields.get("attached") or fields.get("state") != JobState.RUNNING.value:
        return None
    return min(float(fields["deadline"]), float(fields.get("seen_at") or 0) + float(fields["attached"]["dead_seconds"]))
