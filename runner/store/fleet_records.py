"""The fleet's records in the store: worker heartbeats, the leases of running tasks, how
long pieces take, and the templates the fleet published or imported; and the broker's
queue lengths (what a metrics scrape reports beside the workers that consume them)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis

from runner.models import WorkerInfo
from runner.store.keyspace import Keys
from runner.store.part import Part

__all__ = ["FleetRecords", "BrokerQueues", "RECENT_SECONDS"]

PIECE_SECONDS_TTL = 86_400  # a piece time not heard of for a day is forgotten
RECENT_SECONDS = 1.0  # how old a fleet fact read on a hot path (submit, partition) may be


class FleetRecords(Part):
    """Heartbeats, leases, piece times and templates."""

    def __init__(self, redis_client: redis.Redis, keys: Keys) -> None:
        super().__init__(redis_client, keys)
        self._recent_reads: dict[str, tuple[float, Any]] = {}

    def _recent(self, what: str, read: Callable[[], Any], recent: bool | float) -> Any:
        """``read()``, or its value from under ``RECENT_SECONDS`` ago when ``recent`` (under
        ``recent`` seconds, when a number): the fleet's workers and templates change
        rarely, and every submit reads both."""
        hit = self._recent_reads.get(what)
        max_age = RECENT_SECONDS if recent is True else float(recent)
        if recent is not False and hit and time.monotonic() - hit[0] < max_age:
            return hit[1]
        value = read()
        self._recent_reads[what] = (time.monotonic(), value)
        return value

    def _forget_recent(self) -> None:
        self._recent_reads.clear()

    # -- workers --------------------------------------------------------------------
    def heartbeat_worker(self, info: WorkerInfo) -> None:
        beat = info.model_copy(update={"seen": time.time()})
        encoded = beat.model_dump_json(exclude={"active", "seen_seconds_ago"})
        self.redis.hset(self.keys.workers_key(), info.hostname, encoded)

    # -- leases: running tasks, vouched for by their worker --------------------------
    def lease(self, member: str, at: float, pipe: Any = None) -> None:
        """Lease one task run (``workers/leases.py``); on ``pipe``, when given: the caller sends it."""
        (pipe if pipe is not None else self.redis).zadd(self.keys.leases_key(), {member: at})

    def drop_leases(self, members: list[str]) -> None:
        if members:
            self.redis.zrem(self.keys.leases_key(), *members)

    def renew_leases(self, members: list[str], at: float, only_existing: bool = True) -> None:
        """Vouch for running tasks; only leases that exist are renewed (a task that just
        ended is not brought back) — unless not ``only_existing``: then all are leased."""
        if members:
            self.redis.zadd(self.keys.leases_key(), dict.fromkeys(members, at), xx=only_existing)

    def stale_leases(self, before: float) -> list[str]:
        return self.redis.zrangebyscore(self.keys.leases_key(), "-inf", before)

    def claim_lease(self, member: str) -> bool:
        """Take a stale lease for recovery: exactly one of several sweepers gets it."""
        return bool(self.redis.zrem(self.keys.leases_key(), member))

    def forget_worker(self, hostname: str) -> None:
        self.redis.hdel(self.keys.workers_key(), hostname)

    def live_workers(self, max_age: float = 30.0, recent: bool | float = False) -> dict[str, WorkerInfo]:
        """Workers that sent a heartbeat in the last ``max_age`` seconds, by hostname
        (``recent``: as read up to ``RECENT_SECONDS`` ago, or up to that many seconds)."""
        now = time.time()
        beats = self._recent("workers", lambda: self.redis.hgetall(self.keys.workers_key()), recent)
        workers = [WorkerInfo.model_validate_json(raw) for raw in beats.values()]
        return {w.hostname: w for w in sorted(workers, key=lambda w: w.hostname) if now - w.seen <= max_age}

    # -- how long a template's pieces take (batch sizes, workers/batching.py) --------
    def note_piece_seconds(self, kind: str, seconds: float) -> None:
        """How long one piece of ``kind`` (a template and its params) took lately."""
        self.redis.set(self.keys.piece_seconds_key(kind), f"{seconds:.9f}", ex=PIECE_SECONDS_TTL)

    def piece_seconds(self, kind: str) -> float | None:
        raw = self.redis.get(self.keys.piece_seconds_key(kind))
        return float(raw) if raw else None

    def piece_seconds_each(self, kinds: list[str]) -> dict[str, float | None]:
        """The piece time of each of ``kinds`` (``None`` when unknown), in one ``MGET``:
        what the backlog metric weighs each job's remaining pieces with."""
        if not kinds:
            return {}
        raw = self.redis.mget([self.keys.piece_seconds_key(kind) for kind in kinds])
        return {kind: float(value) if value else None for kind, value in zip(kinds, raw)}

    # -- published templates (runner/catalog.py) ------------------------------------
    def publish_template(self, ref: str, encoded: str) -> str:
        """Publish ``ref`` unless it already is (``HSETNX``, in one transaction with the
        read): returns what is published under ``ref`` now, ours or the earlier one."""
        self._forget_recent()
        with self.redis.pipeline() as pipe:
            pipe.hsetnx(self.keys.templates_key(), ref, encoded)
            pipe.hget(self.keys.templates_key(), ref)
            _, current = pipe.execute()
        return current

    def published_templates(self, recent: bool = False) -> dict[str, str]:
        """Every published template's JSON, by ref (``recent``: as read up to
        ``RECENT_SECONDS`` ago; publishing from this process forgets that read)."""
        return self._recent("templates", lambda: self.redis.hgetall(self.keys.templates_key()), recent)

    def record_import(self, ref: str, encoded: str) -> str:
        """Record an imported template unless ``ref`` already is (``HSETNX``): returns
        what is recorded under ``ref`` now, ours or the earlier one."""
        self._forget_recent()
        with self.redis.pipeline() as pipe:
            pipe.hsetnx(self.keys.imports_key(), ref, encoded)
            pipe.hget(self.keys.imports_key(), ref)
            _, current = pipe.execute()
        return current

    def imported_template(self, ref: str) -> str | None:
        """The JSON of the imported template ``ref`` (``name@version``), if any."""
        return self.redis.hget(self.keys.imports_key(), ref)


class BrokerQueues(Part):
    """The lengths of the broker's queues. The broker may be another Redis than the
    store's (``RUNNER_BROKER_URL``); either way its client comes from
    :func:`runner.redis_connect.connect`, so a ``sentinel://`` broker works too."""

    def depth(self, queue: str) -> int:
        """Messages waiting in ``queue`` (kombu keeps them in a list named after it)."""
        return int(self.redis.llen(self.keys.broker_queue_key(queue)))

    def holds(self, queues: list[str], task_id: str, scan: int = 1000) -> bool:
        """Whether a message of task ``task_id`` waits in one of ``queues`` (its first
        ``scan`` messages): sent, not lost, only not yet taken by a worker."""
        with self.redis.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.lrange(self.keys.broker_queue_key(queue), 0, scan - 1)
            return any(f'"id": "{task_id}"' in raw or f'"id":"{task_id}"' in raw
                       for messages in pipe.execute() for raw in messages)
