"""Async reads of the store for the HTTP API's event loop: a job's events as they come,
its state, and whether the store answers (``/healthz``); for the dashboard, a job's events
and log lines together, and whether a session is still live.

A blocking read per open event stream would hold one of the API's threadpool threads
each; these reads are ``redis.asyncio`` instead. The client comes from
:func:`runner.redis_connect.connect_async` (Sentinel included) and does not ride out
outages: a health check or an event stream should say at once that the store is gone.
"""

from __future__ import annotations

import json
from typing import Any

from runner.redis_connect import connect_async
from runner.store.keyspace import Keys

__all__ = ["LiveReads"]


class LiveReads:
    """The async reads; make it inside the event loop that uses it."""

    def __init__(self, url: str, master_name: str, keys: Keys) -> None:
        self.redis: Any = connect_async(url, master_name)
        self.keys = keys

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def events(self, job_id: str, after: str, block_ms: int | None) -> list[tuple[str, dict[str, str]]]:
        """The job's events after ``after`` (up to 1,000), waiting up to ``block_ms`` for
        the first when given."""
        answer = await self.redis.xread({self.keys.events_key(job_id): after}, block=block_ms, count=1000)
        return [(event_id, fields) for _, entries in answer for event_id, fields in entries]

    async def state(self, job_id: str) -> str | None:
        """The job's state's value, ``None`` for a job that is gone."""
        raw = await self.redis.hget(self.keys.job_key(job_id), "state")
        return json.loads(raw) if raw is not None else None

    async def feed(self, job_id: str, events_after: str, logs_after: str,
                   block_ms: int) -> list[tuple[str, str, dict[str, str]]]:
        """The job's new events and log lines (``("events" | "logs", id, fields)``, each
        stream in order), waiting up to ``block_ms`` for the first of either: one blocking
        read per open dashboard page."""
        streams = {self.keys.events_key(job_id): events_after, self.keys.logs_key(job_id): logs_after}
        answer = await self.redis.xread(streams, block=block_ms, count=500)
        kinds = {self.keys.events_key(job_id): "events", self.keys.logs_key(job_id): "logs"}
        return [(kinds[key], entry_id, fields) for key, entries in answer for entry_id, fields in entries]

    async def session_alive(self, digest: str, key_id: str) -> bool:
        """Whether a dashboard session and its key both still exist (a revoked key ends it)."""
        return int(await self.redis.exists(self.keys.ui_session_key(digest), self.keys.api_key_key(key_id))) == 2

    async def job_exists(self, job_id: str) -> bool:
        return bool(await self.redis.exists(self.keys.job_key(job_id)))
