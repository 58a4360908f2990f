"""The fleet as a client sees it: live workers, what they consume and run, and which
queues nobody serves (a job there would otherwise wait in silence)."""

from __future__ import annotations

from typing import Any

from celery import Celery

from runner.dispatch import APP
from runner.models import WorkerInfo
from runner.store import StatusStore

__all__ = ["WorkerInfo", "live_workers", "unserved_queues"]


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


def unserved_queues(store: StatusStore, queues: list[str]) -> list[str]:
    """Those of ``queues`` that no live worker consumes."""
    for recent in (True, False):  # a worker that started a moment ago is looked for again
        served = {q for worker in store.fleet.live_workers(recent=recent).values() for q in worker.queues}
        unserved = [q for q in dict.fromkeys(queues) if q not in served]
        if not unserved:
            break
    return unserved
