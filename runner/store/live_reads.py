"""Async reads of the store for the HTTP API's event loop: a job's events as they come,
its state, and whether the store answers (``/healthz``).

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
