"""The fleet as a client sees it: live workers, what they consume and run, which
queues nobody serves (a job there would otherwise wait in silence), and which file
roots and artifacts location the workers have (they read and write a job's files, so
their settings decide, not the submitting command's)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.config import Settings
from runner.dispatch import APP
from runner.errors import SourceError
from runner.models import WorkerInfo
from runner.storage.file import outside_roots, path_of
from runner.store import StatusStore

if TYPE_CHECKING:
    from celery import Celery  # imported when a Celery app is made: clients that only read skip it

__all__ = ["WorkerInfo", "live_workers", "unserved_queues", "check_worker_roots", "worker_artifacts", "no_artifacts",
           "start_hint"]


def _active(celery: Celery, timeout: float) -> dict[str, list[dict[str, Any]]]:
    """Running tasks per worker, from Celery's remote control (``inspect active``)."""
    try:
        answer = celery.control.inspect(timeout=timeout).active() or {}
    except Exception:  # remote control unavailable: show what the heartbeats say
        return {}
    active: dict[str, list[dict[str, Any]]] = {}
    for hostname, tasks in answer.items():
        for task in tasks:
            args = task.get("args") or []
            entry = {"task": task.get("name"), "job": args[0] if args else None}
            if task.get("name") == APP and len(args) >= 4:
                entry["pieces"] = [args[2], args[3]]
            active.setdefault(hostname, []).append(entry)
    return active


def live_workers(store: StatusStore, celery: Celery | None = None, timeout: float = 1.0) -> list[WorkerInfo]:
    """Workers with a recent heartbeat, by hostname; with ``celery``, their active pieces."""
    workers = store.fleet.live_workers()  # first: an unreachable Redis fails here at once, not in Celery's retries
    active = _active(celery, timeout) if celery is not None and workers else {}
    return [worker.model_copy(update={"active": active.get(name, [])}) for name, worker in workers.items()]


def start_hint(queue: str, control_queue: str, default_queue: str) -> str:
    """The command that starts a worker for ``queue``. Every worker consumes the control
    queue and, unless told otherwise, the default one, so for those the missing piece
    is a worker at all — with the module of the templates (``--include``), never
    ``--queues control``."""
    if queue in (control_queue, default_queue):
        return "runner worker --include MODULE (MODULE: the one that defines your templates)"
    return f"runner worker --queues {queue} --include MODULE"


RECHECK_SECONDS = 0.25


def unserved_queues(store: StatusStore, queues: list[str]) -> list[str]:
    """Those of ``queues`` that no live worker consumes."""
    # a worker that started a moment ago is looked for again, in a read at most
    # RECHECK_SECONDS old: a queue no worker serves (each firing of a schedule whose
    # queue has no worker yet) costs a few reads a second, not one per job
    for recent in (True, RECHECK_SECONDS):
        served = {q for worker in store.fleet.live_workers(recent=recent).values() for q in worker.queues}
        unserved = [q for q in dict.fromkeys(queues) if q not in served]
        if not unserved:
            break
    return unserved


def check_worker_roots(store: StatusStore, template: str, field: str, uri: str) -> None:
    """Refuse, before anything is queued, a ``file://`` URI (the job's ``field``: source,
    destination, an input) that a live worker which would run the job does not allow:
    the message names the worker and the setting to change on it. Workers that have not
    said their roots (older ones) and a fleet with no live worker are not checked."""
    if not uri.startswith("file:"):
        return
    workers = list(store.live_workers(recent=True).values())
    path = path_of(uri).resolve()
    for worker in [w for w in workers if template in w.templates] or workers:  # an imported engine: every one
        roots = [Path(root) for root in worker.file_roots or []]
        if roots and not any(path.is_relative_to(root) for root in roots):
            raise SourceError(f"{field}: {outside_roots(uri, path, roots, f'worker {worker.hostname}')}").for_remote(
                f"{field}: {uri} is outside the directories the workers may read and write (their file roots)")


def worker_artifacts(store: StatusStore) -> list[str]:
    """The artifacts locations the live workers write to, each once."""
    return sorted({w.artifacts for w in store.live_workers().values() if w.artifacts})


def no_artifacts(store: StatusStore, settings: Settings, job_id: str, ended: bool) -> str:
    """What to say when a job has no artifacts here: where this process looked, and the
    workers' location when it differs (artifacts are where the workers wrote them)."""
    looked = f"{settings.artifacts_root}/{job_id}/"
    line = f"no artifacts of job {job_id} under {looked}"
    if not ended:
        line += " yet (output.json is written when the job ends)"
    elsewhere = [root for root in worker_artifacts(store) if root != settings.artifacts_root]
    if elsewhere:
        line += (f"; the live workers write theirs under {', '.join(elsewhere)}: "
                 f"run this with RUNNER_ARTIFACTS_URL={elsewhere[0]} (or give every process the same RUNNER_DATA_DIR)")
    elif ended:
        line += ("; every process must share the artifacts location: set the same RUNNER_ARTIFACTS_URL "
                 "(or RUNNER_DATA_DIR) here and on the workers")
    return line
