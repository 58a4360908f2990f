"""Schedules in Redis: definitions, their state, the due and checks sorted sets, and the
one compare-and-set that makes each due time fire once across the fleet.

Every key comes from :class:`runner.keys.Keys` (see its table); scripts take keys as
``KEYS``. Times in the sorted sets are epoch milliseconds (integers, so the
compare-and-set compares exactly).
"""

from __future__ import annotations

import json
from typing import Any

from runner.errors import InvalidSchedule, ScheduleNotFound
from runner.schedules import Firing, ScheduleSpec
from runner.store import StatusStore

__all__ = ["ScheduleStore", "EVENTS_MAXLEN"]

EVENTS_MAXLEN = 1_000

# KEYS: sorted set, schedule hash. ARGV: member, expected score, new score, token, token field.
# Exactly one caller sees its expected score and moves it; a replay (same token, reply lost)
# finds the score already moved by itself and reports the same win.
_CLAIM = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[3]) and redis.call('HGET', KEYS[2], ARGV[5]) == ARGV[4] then
  return 1
end
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[5], ARGV[4])
return 1
"""


class ScheduleStore:
    """Reads and writes of schedules, over the status store's Redis and keys."""

    def __init__(self, store: StatusStore) -> None:
        self.store = store
        self.redis = store.redis
        self._claim = self.redis.register_script(_CLAIM)

    # -- definitions ----------------------------------------------------------------
    def create(self, spec: ScheduleSpec, next_due_ms: int, check_at_ms: int | None) -> None:
        """Store a new schedule and arm its first due time; raises InvalidSchedule if
        the name is taken (``HSETNX``: of two creators exactly one wins)."""
        key = self.store.schedule_key(spec.org, spec.name)
        if not self.redis.hsetnx(key, "definition", spec.model_dump_json()):
            raise InvalidSchedule([("name", f"a schedule named {spec.name!r} already exists in org {spec.org!r}; "
                                             f"delete it first (runner schedule delete {spec.name}) or pick another name")])
        with self.redis.pipeline() as pipe:
            pipe.hset(key, mapping={"paused": 0, "next_due": next_due_ms, "since": int(spec.created_at * 1000)})
            pipe.sadd(self.store.org_schedules_key(spec.org), spec.name)
            pipe.zadd(self.store.schedules_due_key(), {spec.member: next_due_ms})
            if check_at_ms is not None:
                pipe.zadd(self.store.schedules_checks_key(), {spec.member: check_at_ms})
            pipe.execute()

    def get(self, org: str, name: str) -> tuple[ScheduleSpec, dict[str, str]]:
        """The definition and state of one schedule; raises ScheduleNotFound.

        ``next_due`` is the schedule's score in the due sorted set, the one truth that
        every claim moves; the hash's own ``next_due`` is only what create or resume
        armed, and stays there while the schedule fires (absent while paused)."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.store.schedule_key(org, name))
            pipe.zscore(self.store.schedules_due_key(), json.dumps([org, name]))
            state, due = pipe.execute()
        if due is not None:
            state["next_due"] = str(int(due))
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

    def names(self, org: str) -> list[str]:
        return sorted(self.redis.smembers(self.store.org_schedules_key(org)))

    def delete(self, spec: ScheduleSpec) -> None:
        """Forget the schedule and its future firings; its past jobs keep their retention."""
        with self.redis.pipeline() as pipe:
            pipe.zrem(self.store.schedules_due_key(), spec.member)
            pipe.zrem(self.store.schedules_checks_key(), spec.member)
            pipe.srem(self.store.org_schedules_key(spec.org), spec.name)
            pipe.delete(self.store.schedule_key(spec.org, spec.name), self.store.schedule_jobs_key(spec.org, spec.name),
                        self.store.schedule_events_key(spec.org, spec.name))
            pipe.execute()

    def pause(self, spec: ScheduleSpec) -> None:
        with self.redis.pipeline() as pipe:
            pipe.hset(self.store.schedule_key(spec.org, spec.name), "paused", 1)
            pipe.zrem(self.store.schedules_due_key(), spec.member)
            pipe.zrem(self.store.schedules_checks_key(), spec.member)
            pipe.hdel(self.store.schedule_key(spec.org, spec.name), "overdue_since")
            pipe.execute()

    def resume(self, spec: ScheduleSpec, next_due_ms: int, now_ms: int) -> None:
        """Arm the next due time; the overdue clock starts again from now."""
        with self.redis.pipeline() as pipe:
            pipe.hset(self.store.schedule_key(spec.org, spec.name),
                      mapping={"paused": 0, "next_due": next_due_ms, "since": now_ms})
            pipe.zadd(self.store.schedules_due_key(), {spec.member: next_due_ms})
            if spec.expected_interval:
                pipe.zadd(self.store.schedules_checks_key(),
                          {spec.member: now_ms + round(spec.expected_interval * 1000)})
            pipe.execute()

    # -- claims -----------------------------------------------------------------------
    def due(self, now_ms: int, limit: int) -> list[tuple[str, int]]:
        """Schedules whose next due time has come, ``(member, due ms)``, earliest first."""
        raw = self.redis.zrangebyscore(self.store.schedules_due_key(), "-inf", now_ms, start=0, num=limit,
                                       withscores=True)
        return [(member, int(score)) for member, score in raw]

    def checks(self, now_ms: int, limit: int) -> list[tuple[str, int]]:
        """Schedules whose overdue check has come, ``(member, check ms)``."""
        raw = self.redis.zrangebyscore(self.store.schedules_checks_key(), "-inf", now_ms, start=0, num=limit,
                                       withscores=True)
        return [(member, int(score)) for member, score in raw]

    def claim_due(self, spec: ScheduleSpec, due_ms: int, next_ms: int, token: str) -> bool:
        """Move the schedule from ``due_ms`` to ``next_ms``: True for exactly one caller."""
        keys = [self.store.schedules_due_key(), self.store.schedule_key(spec.org, spec.name)]
        return bool(self._claim(keys=keys, args=[spec.member, due_ms, next_ms, token, "claim_token"]))

    def claim_check(self, spec: ScheduleSpec, at_ms: int, next_ms: int, token: str) -> bool:
        keys = [self.store.schedules_checks_key(), self.store.schedule_key(spec.org, spec.name)]
        return bool(self._claim(keys=keys, args=[spec.member, at_ms, next_ms, token, "check_token"]))

    # -- firings and what they tell ---------------------------------------------------
    def record(self, spec: ScheduleSpec, firing: Firing) -> None:
        """Note one due time's outcome: the job in the schedule's index, the counters, an event."""
        key = self.store.schedule_key(spec.org, spec.name)
        event = {"type": "skipped" if firing.skipped else "fired", "due": f"{firing.due:.3f}"}
        with self.redis.pipeline() as pipe:
            if firing.job_id:
                pipe.zadd(self.store.schedule_jobs_key(spec.org, spec.name), {firing.job_id: round(firing.due * 1000)})
                pipe.hset(key, mapping={"last_job": firing.job_id, "last_due": f"{firing.due:.3f}"})
                pipe.hincrby(key, "firings", 1)
                event["job"] = firing.job_id
            else:
                pipe.hincrby(key, "skipped", 1)
                event["reason"] = firing.skipped or ""
            pipe.xadd(self.store.schedule_events_key(spec.org, spec.name), event, maxlen=EVENTS_MAXLEN)
            pipe.execute()

    def jobs(self, org: str, name: str, limit: int = 50) -> list[tuple[str, float]]:
        """The schedule's jobs, newest due time first: ``(job id, due epoch seconds)``."""
        raw = self.redis.zrevrange(self.store.schedule_jobs_key(org, name), 0, limit - 1, withscores=True)
        return [(job_id, score / 1000) for job_id, score in raw]

    def add_event(self, spec: ScheduleSpec, kind: str, **fields: Any) -> None:
        self.redis.xadd(self.store.schedule_events_key(spec.org, spec.name),
                        {"type": kind, **{k: str(v) for k, v in fields.items()}}, maxlen=EVENTS_MAXLEN)

    def events(self, org: str, name: str) -> list[dict[str, str]]:
        """The schedule's events, oldest first (fired, skipped, overdue, recovered, …)."""
        return [{"id": event_id, **fields}
                for event_id, fields in self.redis.xrange(self.store.schedule_events_key(org, name))]

    def mark_overdue(self, spec: ScheduleSpec, since_ms: int) -> bool:
        """Flag the schedule overdue; True only for the call that flagged it (one event per period)."""
        return bool(self.redis.hsetnx(self.store.schedule_key(spec.org, spec.name), "overdue_since", since_ms))

    def clear_overdue(self, spec: ScheduleSpec) -> bool:
        return bool(self.redis.hdel(self.store.schedule_key(spec.org, spec.name), "overdue_since"))

    def set_last_success(self, spec: ScheduleSpec, finished_at: float) -> None:
        self.redis.hset(self.store.schedule_key(spec.org, spec.name), "last_success", f"{finished_at:.3f}")
