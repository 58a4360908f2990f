"""Redis round trips per API request, counted (not timed), for ``bench_api.py``.

The API app runs in this process (an ASGI transport, no sockets of its own) over the
benchmark's Redis, so every command, pipeline or script call any of its Redis
connections sends — the store's and the broker's — is one ``send_packed_command``: one
round trip (the method ``tests/test_api_round_trips.py`` holds the store's count by).
Each route is called once first (caches filled, connections made), then counted."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from collections.abc import Iterator
from typing import Any

import httpx
import redis.asyncio.connection
import redis.connection

from runner import get_settings
from runner.api.app import create_app

__all__ = ["count_round_trips"]


@contextlib.contextmanager
def _counting() -> Iterator[list[int]]:
    """Count every round trip of every sync and asyncio Redis connection in this process."""
    count = [0]
    sync_send = redis.connection.AbstractConnection.send_packed_command
    async_send = redis.asyncio.connection.AbstractConnection.send_packed_command

    def counted(connection: Any, command: Any, check_health: bool = True) -> None:
        count[0] += 1
        sync_send(connection, command, check_health)

    async def counted_async(connection: Any, command: Any, check_health: bool = True) -> None:
        count[0] += 1
        await async_send(connection, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    redis.asyncio.connection.AbstractConnection.send_packed_command = counted_async  # type: ignore[method-assign]
    try:
        yield count
    finally:
        redis.connection.AbstractConnection.send_packed_command = sync_send  # type: ignore[method-assign]
        redis.asyncio.connection.AbstractConnection.send_packed_command = async_send  # type: ignore[method-assign]


def count_round_trips(redis_url: str, api_key: str, body: dict[str, Any], rounds: int = 5) -> dict[str, float]:
    """Median Redis round trips of ``GET /v1/jobs/{id}`` and ``POST /v1/jobs`` (``body``)."""
    settings = get_settings(broker_url=redis_url, result_backend=redis_url, store_url=redis_url,
                            include=["benchmarks.tasks"], ui=False, api_rate_limit="100000000/hour")
    app = create_app(settings)

    async def go() -> dict[str, float]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api:
            token = (await api.post("/v1/auth/access_token", json={"apiKey": api_key})).json()["token"]
            api.headers["Authorization"] = f"Bearer {token}"
            job_id = (await api.post("/v1/jobs", json=body)).json()["id"]
            await api.get(f"/v1/jobs/{job_id}")  # both routes warm
            counts: dict[str, list[int]] = {"GET /v1/jobs/{id}": [], "POST /v1/jobs": []}
            for _ in range(rounds):
                for route, call in (("GET /v1/jobs/{id}", lambda: api.get(f"/v1/jobs/{job_id}")),
                                    ("POST /v1/jobs", lambda: api.post("/v1/jobs", json=body))):
                    with _counting() as count:
                        answer = await call()
                    if answer.status_code >= 300:
                        raise RuntimeError(f"{route}: HTTP {answer.status_code} {answer.text[:200]}")
                    counts[route].append(count[0])
            return {route: statistics.median(c) for route, c in counts.items()}

    return asyncio.run(go())
