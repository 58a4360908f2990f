"""Connecting to Redis: one plain server or a Sentinel-managed group, riding out outages.

Every Redis client Runner makes comes from :func:`connect`. A URL is either
``redis://[:password@]host:port/db`` or a list of Sentinels,
``sentinel://[:password@]host:26379[/db];sentinel://host2:26379`` with the group's name in
``RUNNER_REDIS_MASTER_NAME`` — the same URLs Celery's Redis and Sentinel transports take,
so the broker, the result backend and the status store can all move to a highly available
Redis by changing URLs only. With Sentinels, a failover is one more outage to ride out:
the client asks the Sentinels for the new master when the old one stops answering.

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

import threading
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

import redis
import redis.sentinel
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError
from redis.retry import Retry

__all__ = [
    "OutageRetry", "redis_options", "connect", "connect_async", "is_sentinel", "sentinel_hosts", "unreachable",
    "require_reachable",
]

T = TypeVar("T")
RETRYABLE = (ConnectionError, TimeoutError, BusyLoadingError, OSError)


class OutageRetry(Retry):
    """redis-py's ``Retry``, shared by every connection of one client (so that reaching
    the server once counts for all of them), failing fast until the server was reached.

    Only the outermost retrying call in a thread retries: redis-py nests them (a command
    connects, a Sentinel-managed connect connects to the address it was given), and an
    inner loop would keep knocking on a dead master's address instead of letting the
    outer one ask the Sentinels where the master is now."""

    def __init__(self, outage_seconds: float, patient: bool = False) -> None:
        retries = max(1, int(outage_seconds / 0.5))  # sleeps average half the 1 s cap once reached
        super().__init__(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries, RETRYABLE)
        self.reached = patient
        self._local = threading.local()

    def __deepcopy__(self, memo: dict[int, Any]) -> "OutageRetry":
        return self  # redis-py copies the retry into each connection: keep one, shared

    def call_with_retry(self, do: Callable[[], T], fail: Callable[..., Any], *args: Any, **kwargs: Any) -> T:
        if getattr(self._local, "active", False):
            return do()  # nested (a connect inside a command): the outermost call does the retrying
        self._local.active = True
        try:
            if self.reached:
                return super().call_with_retry(do, fail, *args, **kwargs)
            try:
                result = do()
            except RETRYABLE as error:
                fail(error, 1) if kwargs.get("with_failure_count") else fail(error)
                raise
            self.reached = True
            return result
        finally:
            self._local.active = False


def redis_options(outage_seconds: float, patient: bool = False) -> dict[str, Any]:
    """Keyword arguments for ``redis.Redis.from_url`` that ride out an outage."""
    return {
        "retry": OutageRetry(outage_seconds, patient),
        "health_check_interval": 10,
        "socket_connect_timeout": 2,
        "socket_keepalive": True,
    }


def is_sentinel(url: str) -> bool:
    return url.startswith("sentinel://")


def sentinel_hosts(url: str) -> tuple[list[tuple[str, int]], str | None, int]:
    """The Sentinels' ``(host, port)`` list, the password and the db of a sentinel URL."""
    hosts, password, db = [], None, 0
    for part in url.split(";"):
        parsed = urlparse(part.strip())
        hosts.append((parsed.hostname or "127.0.0.1", parsed.port or 26379))
        password = unquote(parsed.password) if parsed.password else password
        db = int(parsed.path.strip("/") or db)
    return hosts, password, db


class _MasterFollowingConnection(redis.sentinel.SentinelManagedConnection):
    """A Sentinel-managed connection that asks where the master is on every reconnect.
    redis-py's own reconnects the command path makes (``send_packed_command``) go back to
    the address it last had — a dead master's, after a failover."""

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        if self._sock is None and self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        super().connect_check_health(check_health=check_health, retry_socket_connect=retry_socket_connect)


def connect(url: str, master_name: str = "mymaster", outage_seconds: float = 60.0, patient: bool = False,
            **extra: Any) -> redis.Redis:
    """A client for ``url`` (a Redis or a Sentinel list) that rides out outages and
    failovers of up to ``outage_seconds``; ``patient`` waits for a Redis never reached."""
    options = {**redis_options(outage_seconds, patient), **extra}
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **options)
    hosts, password, db = sentinel_hosts(url)
    sentinels = redis.Sentinel(hosts, socket_connect_timeout=2, password=None)
    return sentinels.master_for(master_name, password=password, db=db, connection_class=_MasterFollowingConnection,
                                **options)


def connect_async(url: str, master_name: str = "mymaster") -> Any:
    """An asyncio client for ``url`` (Redis or Sentinels), for the HTTP API's streaming
    routes. It does not ride out outages: a health check or an event stream should say
    at once that the store is gone, and the client retries the stream itself."""
    import redis.asyncio as aredis
    import redis.asyncio.sentinel as asentinel

    if not is_sentinel(url):
        return aredis.Redis.from_url(url, decode_responses=True)
    hosts, password, db = sentinel_hosts(url)
    return asentinel.Sentinel(hosts, socket_connect_timeout=2).master_for(
        master_name, password=password, db=db, decode_responses=True)


def _reason(exc: BaseException) -> str:
    """The OS's words from a redis-py / kombu connection error (``Connection refused``)."""
    text = str(exc).strip().rstrip(".")
    return text.rsplit(". ", 1)[-1] if ". " in text else text or type(exc).__name__


def unreachable(broker_url: str, store_url: str, exc: BaseException) -> str:
    """The one line every Runner process says when its Redis cannot be reached: which
    Redis (password hidden), the OS's reason, and the fix."""
    from runner.storage.base import redact_url

    where = (f"the broker at {redact_url(broker_url)}" if broker_url == store_url
             else f"Redis (broker {redact_url(broker_url)}, store {redact_url(store_url)})")
    return f"cannot reach {where} ({_reason(exc)}); start Redis or set RUNNER_BROKER_URL"


def require_reachable(broker_url: str, store_url: str, master_name: str = "mymaster") -> None:
    """Ping the broker and the store once each, failing within seconds: a process about
    to serve them (a worker) says at once that a URL is wrong or Redis is not started,
    instead of retrying in silence. Raises ``redis.ConnectionError`` with
    :func:`unreachable`'s line."""
    for url in dict.fromkeys((broker_url, store_url)):
        client = connect(url, master_name, outage_seconds=1.0, socket_timeout=3)
        try:
            client.ping()
        except (redis.exceptions.RedisError, OSError) as exc:  # refused, timed out, NOAUTH, not a Redis …
            raise ConnectionError(unreachable(broker_url, store_url, exc)) from None
        finally:
            client.close()
