"""Schedules in Redis: definitions, their state, the due and checks sorted sets, and the
one compare-and-set that makes each due time fire once across the fleet.

Every key comes from :class:`runner.store.keyspace.Keys` (see its table); the claim
script lives with the others in :mod:`runner.store.scripts`. Times in the sorted sets are
epoch milliseconds (integers, so the compare-and-set compares exactly).
"""

from __future__ import annotations

import json
from typing import Any

import redis

from runner.errors import InvalidSchedule, ScheduleNotFound
from runner.schedules import Firing, ScheduleSpec
from runner.store.keyspace import Keys
from runner.store.part import Part
from runner.store.scripts import CLAIM_SCHEDULE

__all__ = ["ScheduleRecords", "EVENTS_MAXLEN"]

EVENTS_MAXLEN = 1_000

class ScheduleRecords(Part):
    """Reads and writes of schedules, over the status store's Redis and keys."""

    def __init__(self, redis_client: redis.Redis, keys: Keys) -> None:
        super().__init__(redis_client, keys)
        self._claim = self.redis.register_script(CLAIM_SCHEDULE)

    # -- definitions ----------------------------------------------------------------
    def create(self, spec: ScheduleSpec, next_due_ms: int, check_at_ms: int | None) -> None:
        """Store a new schedule and arm its first due time; raises InvalidSchedule if
        the name is taken (``HSETNX``: of two creators exactly one wins)."""
        key = self.keys.schedule_key(spec.org, spec.name)
        if not self.redis.hsetnx(key, "definition", spec.model_dump_json()):
            raise InvalidSchedule([("name", f"a schedule named {spec.name!r} already exists in org {spec.org!r}; "
                                             f"delete it first (runner schedule delete {spec.name}) or pick another name")])
        with self.redis.pipeline() as pipe:
            pipe.hset(key, mapping={"paused": 0, "next_due": next_due_ms, "since": int(spec.created_at * 1000)})
            pipe.sadd(self.keys.org_schedules_key(spec.org), spec.name)
            pipe.zadd(self.keys.schedules_due_key(), {spec.member: next_due_ms})
            if check_at_ms is not None:
                pipe.zadd(self.keys.schedules_checks_key(), {spec.member: check_at_ms})
            pipe.execute()

    def get(self, org: str, name: str) -> tuple[ScheduleSpec, dict[str, str]]:
        """The definition and state of one schedule; raises ScheduleNotFound."""
        state = self.redis.hgetall(self.keys.schedule_key(org, name))
        if "definition" not in state:
            known = ", ".join(sorted(self.names(org))) or "none"
            raise ScheduleNotFound(f"no schedule {name!r} in org {org!r} (known: {known}); see runner schedules")
        return ScheduleSpec.model_validate_json(state.pop("definition")), state

    def find(self, member: str) -> tuple[ScheduleSpec, dict[str, str]] | None:
        org, name = json.loads(member)
        try:
            return self.get(org, name)
        except ScheduleNotFound:
            return None

    def orgs(self) -> set[str]:
        """Every org with an armed schedule (due or checked for overdue)."""
        members = self.redis.zrange(self.keys.schedules_due_key(), 0, -1)
        members += self.redis.zrange(self.keys.schedules_checks_key(), 0, -1)
        return {json.loads(member)[0] for member in members}

    def names(self, org: str) -> list[str]:
        return sorted(self.redis.smembers(self.keys.org_schedules_key(org)))

    def delete(self, spec: ScheduleSpec) -> None:
        """Forget the schedule and its future firings; its past jobs keep their retention."""
        with self.redis.pipeline() as pipe:
            pipe.zrem(self.keys.schedules_due_key(), spec.member)
            pipe.zrem(self.keys.schedules_checks_key(), spec.member)
            pipe.srem(self.keys.org_schedules_key(spec.org), spec.name)
            pipe.delete(self.keys.schedule_key(spec.org, spec.name), self.keys.schedule_jobs_key(spec.org, spec.name),
                        self.keys.schedule_events_key(spec.org, spec.name))
            pipe.execute()

    def pause(self, spec: ScheduleSpec) -> None:
        with self.redis.pipeline() as pipe:
            pipe.hset(self.keys.schedule_key(spec.org, spec.name), "paused", 1)
            pipe.zrem(self.keys.schedules_due_key(), spec.member)
            pipe.zrem(self.keys.schedules_checks_key(), spec.member)
            pipe.hdel(self.keys.schedule_key(spec.org, spec.name), "overdue_since")
            pipe.execute()

    def resume(self, spec: ScheduleSpec, next_due_ms: int, now_ms: int) -> None:
        """Arm the next due time; the overdue clock starts again from now."""
        with self.redis.pipeline() as pipe:
            pipe.hset(self.keys.schedule_key(spec.org, spec.name),
                      mapping={"paused": 0, "next_due": next_due_ms, "since": now_ms})
            pipe.zadd(self.keys.schedules_due_key(), {spec.member: next_due_ms})
            if spec.expected_interval:
                pipe.zadd(self.keys.schedules_checks_key(),
                          {spec.member: now_ms + round(spec.expected_interval * 1000)})
            pipe.execute()

    # -- claims -----------------------------------------------------------------------
    def due(self, now_ms: int, limit: int) -> list[tuple[str, int]]:
        """Schedules whose next due time has come, ``(member, due ms)``, earliest first."""
        raw = self.redis.zrangebyscore(self.keys.schedules_due_key(), "-inf", now_ms, start=0, num=limit,
                                       withscores=True)
        return [(member, int(score)) for member, score in raw]

    def checks(self, now_ms: int, limit: int) -> list[tuple[str, int]]:
        """Schedules whose overdue check has come, ``(member, check ms)``."""
        raw = self.redis.zrangebyscore(self.keys.schedules_checks_key(), "-inf", now_ms, start=0, num=limit,
                                       withscores=True)
        return [(member, int(score)) for member, score in raw]

    def forget_due(self, member: str) -> None:
        """Disarm a due time whose schedule is gone (deleted meanwhile)."""
        self.redis.zrem(self.keys.schedules_due_key(), member)

    def claim_due(self, spec: ScheduleSpec, due_ms: int, next_ms: int, token: str) -> bool:
        """Move the schedule from ``due_ms`` to ``next_ms``: True for exactly one caller."""
        keys = [self.keys.schedules_due_key(), self.keys.schedule_key(spec.org, spec.name)]
        return bool(self._claim(keys=keys, args=[spec.member, due_ms, next_ms, token, "claim_token"]))

    def claim_check(self, spec: ScheduleSpec, at_ms: int, next_ms: int, token: str) -> bool:
        keys = [self.keys.schedules_checks_key(), self.keys.schedule_key(spec.org, spec.name)]
        return bool(self._claim(keys=keys, args=[spec.member, at_ms, next_ms, token, "check_token"]))

    # -- firings and what they tell ---------------------------------------------------
    def record(self, spec: ScheduleSpec, firing: Firing) -> None:
        """Note one due time's outcome: the job in the schedule's index, the counters, an event."""
        key = self.keys.schedule_key(spec.org, spec.name)
        event = {"type": "skipped" if firing.skipped else "fired", "due": f"{firing.due:.3f}"}
        with self.redis.pipeline() as pipe:
            if firing.job_id:
                pipe.zadd(self.keys.schedule_jobs_key(spec.org, spec.name), {firing.job_id: round(firing.due * 1000)})
                pipe.hset(key, mapping={"last_job": firing.job_id, "last_due": f"{firing.due:.3f}"})
                pipe.hincrby(key, "firings", 1)
                event["job"] = firing.job_id
            else:
                pipe.hincrby(key, "skipped", 1)
                event["reason"] = firing.skipped or ""
            pipe.xadd(self.keys.schedule_events_key(spec.org, spec.name), event, maxlen=EVENTS_MAXLEN)
            pipe.execute()

    def jobs(self, org: str, name: str, limit: int = 50) -> list[tuple[str, float]]:
        """The schedule's jobs, newest due time first: ``(job id, due epoch seconds)``."""
        raw = self.redis.zrevrange(self.keys.schedule_jobs_key(org, name), 0, limit - 1, withscores=True)
        return [(job_id, score / 1000) for job_id, score in raw]

    def add_event(self, spec: ScheduleSpec, kind: str, **fields: Any) -> None:
        self.redis.xadd(self.keys.schedule_events_key(spec.org, spec.name),
                        {"type": kind, **{k: str(v) for k, v in fields.items()}}, maxlen=EVENTS_MAXLEN)

    def events(self, org: str, name: str) -> list[dict[str, str]]:
        """The schedule's events, oldest first (fired, skipped, overdue, recovered, …)."""
        return [{"id": event_id, **fields}
                for event_id, fields in self.redis.xrange(self.keys.schedule_events_key(org, name))]

    def mark_overdue(self, spec: ScheduleSpec, since_ms: int) -> bool:
        """Flag the schedule overdue; True only for the call that flagged it (one event per period)."""
        return bool(self.redis.hsetnx(self.keys.schedule_key(spec.org, spec.name), "overdue_since", since_ms))

    def clear_overdue(self, spec: ScheduleSpec) -> bool:
        return bool(self.redis.hdel(self.keys.schedule_key(spec.org, spec.name), "overdue_since"))

    def set_last_success(self, spec: ScheduleSpec, finished_at: float) -> None:
        self.redis.hset(self.keys.schedule_key(spec.org, spec.name), "last_success", f"{finished_at:.3f}")
