"""The fleet's records in the store: worker heartbeats, the leases of running tasks, and
the templates the fleet published or imported. A mixin of :class:`runner.store.StatusStore`
(it uses the store's ``redis`` client and the key builders of :class:`runner.keys.Keys`)."""

from __future__ import annotations

import time

import redis

from runner.keys import Keys
from runner.models import WorkerInfo

__all__ = ["FleetRecords"]


class FleetRecords(Keys):
    """Heartbeats, leases and templates; ``self.redis`` is the store's client."""

    redis: redis.Redis

    # -- workers --------------------------------------------------------------------
    def heartbeat_worker(self, info: WorkerInfo) -> None:
        beat = info.model_copy(update={"seen": time.time()})
        self.redis.hset(self.workers_key(), info.hostname, beat.model_dump_json(exclude={"active", "seen_seconds_ago"}))

    # -- leases: running tasks, vouched for by their worker --------------------------
    def lease(self, member: str, at: float) -> None:
        self.redis.zadd(self.leases_key(), {member: at})

    def drop_lease(self, member: str) -> None:
        self.redis.zrem(self.leases_key(), member)

    def renew_leases(self, members: list[str], at: float) -> None:
        """Vouch for running tasks; only leases that exist are renewed (a task that just
        ended is not brought back)."""
        if members:
            self.redis.zadd(self.leases_key(), dict.fromkeys(members, at), xx=True)

    def stale_leases(self, before: float) -> list[str]:
        return self.redis.zrangebyscore(self.leases_key(), "-inf", before)

    def claim_lease(self, member: str) -> bool:
        """Take a stale lease for recovery: exactly one of several sweepers gets it."""
        return bool(self.redis.zrem(self.leases_key(), member))

    def forget_worker(self, hostname: str) -> None:
        self.redis.hdel(self.workers_key(), hostname)

    def live_workers(self, max_age: float = 30.0) -> dict[str, WorkerInfo]:
        """Workers that sent a heartbeat in the last ``max_age`` seconds, by hostname."""
        now = time.time()
        workers = [WorkerInfo.model_validate_json(raw) for raw in self.redis.hgetall(self.workers_key()).values()]
        return {w.hostname: w for w in sorted(workers, key=lambda w: w.hostname) if now - w.seen <= max_age}

    # -- published templates (runner/catalog.py) ------------------------------------
    def publish_template(self, ref: str, encoded: str) -> str:
        """Publish ``ref`` unless it already is (``HSETNX``, in one transaction with the
        read): returns what is published under ``ref`` now, ours or the earlier one."""
        with self.redis.pipeline() as pipe:
            pipe.hsetnx(self.templates_key(), ref, encoded)
            pipe.hget(self.templates_key(), ref)
            _, current = pipe.execute()
        return current

    def published_templates(self) -> dict[str, str]:
        """Every published template's JSON, by ref."""
        return self.redis.hgetall(self.templates_key())

    def record_import(self, ref: str, encoded: str) -> str:
        """Record an imported template unless ``ref`` already is (``HSETNX``): returns
        what is recorded under ``ref`` now, ours or the earlier one."""
        with self.redis.pipeline() as pipe:
            pipe.hsetnx(self.imports_key(), ref, encoded)
            pipe.hget(self.imports_key(), ref)
            _, current = pipe.execute()
        return current

    def imported_template(self, ref: str) -> str | None:
        """The JSON of the imported template ``ref`` (``name@version``), if any."""
        return self.redis.hget(self.imports_key(), ref)
