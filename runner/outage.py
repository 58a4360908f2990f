"""Riding out a Redis outage: the options every Runner Redis client is built with.

A restart, a failover or a network blip of up to ``RUNNER_REDIS_OUTAGE_SECONDS`` is a
pause, not a failure: every command is retried on connection errors and while Redis
loads its data back, with exponential backoff and jitter (at most 1 s apart) — redis-py's
own ``Retry``, not a loop of ours. Replaying is safe because every write Runner makes is
idempotent (hash fields, set members) or a Lua script that checks what a first,
unanswered run already did.

A Redis this process has never reached is different: a wrong URL or a server not started
should say so at once, not after a minute of retries — unless the process is *patient*
(a worker, which may well start before its Redis and should wait for it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError
from redis.retry import Retry

__all__ = ["OutageRetry", "redis_options"]

T = TypeVar("T")
RETRYABLE = (ConnectionError, TimeoutError, BusyLoadingError, OSError)


class OutageRetry(Retry):
    """redis-py's ``Retry``, shared by every connection of one client (so that reaching
    the server once counts for all of them), failing fast until the server was reached."""

    def __init__(self, outage_seconds: float, patient: bool = False) -> None:
        retries = max(1, int(outage_seconds / 0.5))  # sleeps average half the 1 s cap once reached
        super().__init__(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries, RETRYABLE)
        self.reached = patient

    def __deepcopy__(self, memo: dict[int, Any]) -> "OutageRetry":
        return self  # redis-py copies the retry into each connection: keep one, shared

    def call_with_retry(self, do: Callable[[], T], fail: Callable[..., Any], *args: Any, **kwargs: Any) -> T:
        if self.reached:
            return super().call_with_retry(do, fail, *args, **kwargs)
        try:
            result = do()
        except RETRYABLE as error:
            fail(error, 1) if kwargs.get("with_failure_count") else fail(error)
            raise
        self.reached = True
        return result


def redis_options(outage_seconds: float, patient: bool = False) -> dict[str, Any]:
    """Keyword arguments for ``redis.Redis.from_url`` that ride out an outage."""
    return {
        "retry": OutageRetry(outage_seconds, patient),
        "health_check_interval": 10,
        "socket_connect_timeout": 2,
        "socket_keepalive": True,
    }
