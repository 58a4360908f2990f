"""The fleet as a client sees it: live workers, what they consume and run, and which
queues nobody serves (a job there would otherwise wait in silence)."""

from __future__ import annotations

import time
from typing import Any

from celery import Celery
from pydantic import BaseModel

from runner.store import StatusStore

__all__ = ["WorkerInfo", "live_workers", "unserved_queues"]


class WorkerInfo(BaseModel):
    """One live worker: from its heartbeat, plus what it is running right now."""

    hostname: str
    queues: list[str]
    concurrency: int
    pid: int | None = None
    seen_seconds_ago: float
    active: list[dict[str, Any]] = []


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
            if task.get("name") == "runner.app" and len(args) >= 4:
                entry["pieces"] = [args[2], args[3]]
            active.setdefault(hostname, []).append(entry)
    return active


def live_workers(store: StatusStore, celery: Celery | None = None, timeout: float = 1.0) -> list[WorkerInfo]:
    """Workers with a recent heartbeat, by hostname; with ``celery``, their active pieces."""
    now = time.time()
    active = _active(celery, timeout) if celery is not None else {}
    return [
        WorkerInfo(hostname=name, queues=info.get("queues", []), concurrency=int(info.get("concurrency", 0)),
                   pid=info.get("pid"), seen_seconds_ago=round(now - info.get("seen", now), 1),
                   active=active.get(name, []))
        for name, info in sorted(store.live_workers().items())
    ]


def unserved_queues(store: StatusStore, queues: list[str]) -> list[str]:
    """Those of ``queues`` that no live worker consumes."""
    served = {q for info in store.live_workers().values() for q in info.get("queues", [])}
    return [q for q in dict.fromkeys(queues) if q not in served]
