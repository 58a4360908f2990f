"""Schedules in Redis: definitions, their state, the due and checks sorted sets, and the
one compare-and-set that makes each due time fire once across the fleet.

Every key comes from :class:`runner.store.keyspace.Keys` (see its table); the claim
script lives with the others in :mod:`runner.store.scripts`. Times in the sorted sets are
epoch milliseconds (integers, so the compare-and-set compares exactly).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import redis

from runner.errors import InvalidSchedule, ScheduleNotFound
from runner.schedules import Firing, ScheduleSpec
from runner.store.keyspace import Keys
from runner.store.part import Part
from runner.store.scripts import CLAIM_SCHEDULE, CLAIM_SCHEDULES

__all__ = ["ScheduleRecords", "Claim", "EVENTS_MAXLEN"]

EVENTS_MAXLEN = 1_000
SPECS_CACHED = 100_000  # definitions one process keeps (a few hundred bytes each)


def digest(definition: str) -> str:
    """The SHA1 a claim compares with the stored definition's (Lua's ``redis.sha1hex``)."""
    return hashlib.sha1(definition.encode()).hexdigest()


@dataclass(frozen=True)
class Claim:
    """One due time a sweeper means to claim: ``member`` from ``due_ms`` to ``next_ms``,
    planned with the definition whose SHA1 is ``digest`` ("" when it has none yet); the
    win returns the schedule's ``recent`` newest job ids (for the overlap check)."""

    member: str
    due_ms: int
    next_ms: int
    token: str
    digest: str = ""
    recent: int = 0


class ScheduleRecords(Part):
    """Reads and writes of schedules, over the status store's Redis and keys."""

    def __init__(self, redis_client: redis.Redis, keys: Keys) -> None:
        super().__init__(redis_client, keys)
        self._claim = self.redis.register_script(CLAIM_SCHEDULE)
        self._claim_many = self.redis.register_script(CLAIM_SCHEDULES)
        # Definitions are immutable once created; a schedule deleted and created again
        # under its name has another one, which the claim sees by its SHA1 (-> ``learn``).
        self._specs: dict[str, tuple[str, ScheduleSpec]] = {}

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
        """The definition and state of one schedule; raises ScheduleNotFound.

        ``next_due`` is the schedule's score in the due sorted set, the one truth that
        every claim moves; the hash's own ``next_due`` is only what create or resume
        armed, and stays there while the schedule fires (absent while paused)."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.schedule_key(org, name))
            pipe.zscore(self.keys.schedules_due_key(), json.dumps([org, name]))
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

    def due_and_checks(self, now_ms: int, limit: int) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        """:meth:`due` and :meth:`checks` in one round trip (what every sweep reads first)."""
        with self.redis.pipeline(transaction=False) as pipe:
            for key in (self.keys.schedules_due_key(), self.keys.schedules_checks_key()):
                pipe.zrangebyscore(key, "-inf", now_ms, start=0, num=limit, withscores=True)
            due, checks = pipe.execute()
        return [(m, int(score)) for m, score in due], [(m, int(score)) for m, score in checks]

    def known(self, member: str) -> tuple[str, ScheduleSpec] | None:
        """The definition's SHA1 and spec this process last saw for ``member``, if any."""
        return self._specs.get(member)

    def learn(self, member: str, definition: str) -> ScheduleSpec:
        """Remember a stored definition (a claim's ``-1`` reply carries it)."""
        if len(self._specs) >= SPECS_CACHED:
            self._specs.clear()
        spec = ScheduleSpec.model_validate_json(definition)
        self._specs[member] = (digest(definition), spec)
        return spec

    def claim_many(self, claims: list[Claim]) -> list[tuple[int, list[str] | str]]:
        """Claim many due times in one round trip: per claim ``(1, recent job ids)`` won,
        ``(0, [])`` lost (or gone), ``(-1, definition)`` planned with another definition
        than the stored one (nothing claimed)."""
        if not claims:
            return []
        keys, args = [self.keys.schedules_due_key()], ["claim_token"]
        for claim in claims:
            org, name = json.loads(claim.member)
            keys += [self.keys.schedule_key(org, name), self.keys.schedule_jobs_key(org, name)]
            args += [claim.member, claim.due_ms, claim.next_ms, claim.token, claim.digest, claim.recent]
        replies = self._claim_many(keys=keys, args=args)
        return [(int(reply[0]), reply[1] if int(reply[0]) < 0 else list(reply[1:])) for reply in replies]

    def forget_due(self, member: str) -> None:
        """Disarm a due time whose schedule is gone (deleted meanwhile)."""
        self.redis.zrem(self.keys.schedules_due_key(), member)

    def claim_due(self, spec: ScheduleSpec, due_ms: int, next_ms: int, token: str) -> bool:
        """Move the schedule from ``due_ms`` to ``next_ms``: True for exactly one caller
        (one :meth:`claim_many` claim, planned with ``spec``)."""
        claim = Claim(spec.member, due_ms, next_ms, token, digest(spec.model_dump_json()))
        return self.claim_many([claim])[0][0] == 1

    def claim_check(self, spec: ScheduleSpec, at_ms: int, next_ms: int, token: str) -> bool:
        keys = [self.keys.schedules_checks_key(), self.keys.schedule_key(spec.org, spec.name)]
        return bool(self._claim(keys=keys, args=[spec.member, at_ms, next_ms, token, "check_token"]))

    # -- firings and what they tell ---------------------------------------------------
    def record(self, spec: ScheduleSpec, firing: Firing) -> None:
        """Note one due time's outcome: the job in the schedule's index, the counters, an event."""
        with self.redis.pipeline() as pipe:
            self._record(pipe, spec, firing)
            pipe.execute()

    def _record(self, pipe: Any, spec: ScheduleSpec, firing: Firing) -> None:
        key = self.keys.schedule_key(spec.org, spec.name)
        event = {"type": "skipped" if firing.skipped else "fired", "due": f"{firing.due:.3f}"}
        if firing.job_id:
            pipe.zadd(self.keys.schedule_jobs_key(spec.org, spec.name), {firing.job_id: round(firing.due * 1000)})
            pipe.hset(key, mapping={"last_job": firing.job_id, "last_due": f"{firing.due:.3f}"})
            pipe.hincrby(key, "firings", 1)
            event["job"] = firing.job_id
        else:
            pipe.hincrby(key, "skipped", 1)
            event["reason"] = firing.skipped or ""
        pipe.xadd(self.keys.schedule_events_key(spec.org, spec.name), event, maxlen=EVENTS_MAXLEN)

    def record_many(self, firings: list[tuple[ScheduleSpec, Firing]],
                    events: list[tuple[ScheduleSpec, dict[str, str]]] = ()) -> None:
        """:meth:`record` of a sweep's firings and its other events, in one round trip
        (one transaction: no firing is half recorded)."""
        with self.redis.pipeline() as pipe:
            for spec, firing in firings:
                self._record(pipe, spec, firing)
            for spec, event in events:
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
