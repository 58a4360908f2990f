"""Org quotas in the store: each org's limits (``runner orgs set``), and the three
counts that enforce them fleet-wide — its queued jobs, its running jobs, and the jobs
held ``queued`` because it is at its ``max_running_jobs``.

Every check-and-count is one Lua script (``runner/store/scripts/org_quotas.py``), so
any number of API processes and workers agree: racing submitters admit exactly
``max_queued_jobs``, and of several sweepers exactly one starts each waiting job. The
quota hash holds plain numbers, not JSON: the fair-share scripts read
``max_pieces_in_flight`` and ``weight`` from it directly. An absent field is no limit (a
weight of 1).

Not counted: attached jobs (their own process runs them, no partition task), and a job
``retry_failed`` sends back to ``queued`` (it re-enters through its partition task, so
``max_running_jobs`` still holds it).
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

import redis
from pydantic import BaseModel

from runner.errors import InvalidParams, QuotaExceeded
from runner.models import FINAL_STATES
from runner.store.keyspace import Keys
from runner.store.part import Part, encode
from runner.store.scripts.org_quotas import QUOTA_ADMIT_TO_RUN, QUOTA_ENTER_QUEUE, QUOTA_PROMOTE, QUOTA_SET

__all__ = ["OrgQuota", "OrgQuotas", "LIMITS"]

# each limit and the smallest value it takes (max_queued_jobs=0 stops an org's submits)
LIMITS: dict[str, int] = {"max_running_jobs": 1, "max_pieces_in_flight": 1, "max_queued_jobs": 0}
_CANDIDATES = 100  # waiting jobs one sweep looks at per org (the oldest)


class OrgQuota(BaseModel):
    """An org's limits (``None``: no limit; weight ``None`` counts as 1) and what it uses
    now: running jobs, queued jobs (waiting ones included), jobs waiting to run, and
    pieces handed to the fleet (fair share counts them against ``max_pieces_in_flight``)."""

    org: str
    max_running_jobs: int | None = None
    max_pieces_in_flight: int | None = None
    max_queued_jobs: int | None = None
    weight: float | None = None
    running: int = 0
    queued: int = 0
    waiting: int = 0
    in_flight: int = 0


class OrgQuotas(Part):
    """Set and read org limits; count queued and running jobs against them."""

    def __init__(self, redis_client: redis.Redis, keys: Keys) -> None:
        super().__init__(redis_client, keys)
        self._set = self.redis.register_script(QUOTA_SET)
        self._enter = self.redis.register_script(QUOTA_ENTER_QUEUE)
        self._admit = self.redis.register_script(QUOTA_ADMIT_TO_RUN)
        self._promote = self.redis.register_script(QUOTA_PROMOTE)

    # -- limits ---------------------------------------------------------------------------
    def set(self, org: str, **limits: Any) -> OrgQuota:
        """Change the limits given (``None`` clears one; the others stay); returns the org's
        quota. Raises InvalidParams naming each bad value, changing nothing."""
        org = _org(org)
        args: list[str] = [org]
        errors: list[tuple[str, str]] = []
        for name, value in limits.items():
            try:
                args += [name, "" if value is None else _limit(name, value)]
            except ValueError as exc:
                errors.append((name, str(exc)))
        if errors:
            raise InvalidParams(errors)
        keys = self.keys
        self._set(keys=[keys.org_quota_key(org), keys.orgs_key(), keys.org_waiting_key(org)], args=args)
        return self.get(org)

    def get(self, org: str) -> OrgQuota:
        """The org's limits and usage (an org never set has no limits)."""
        return self._read([org])[0]

    def all(self) -> list[OrgQuota]:
        """Every org with limits (or jobs waiting), by name."""
        return self._read(sorted(self.redis.smembers(self.keys.orgs_key())))

    def _read(self, orgs: list[str]) -> list[OrgQuota]:
        keys, now = self.keys, time.time()
        with self.redis.pipeline(transaction=False) as pipe:
            for org in orgs:
                pipe.hgetall(keys.org_quota_key(org))
                pipe.scard(keys.org_running_key(org))
                pipe.zcount(keys.org_queued_key(org), now, "+inf")
                pipe.zcard(keys.org_waiting_key(org))
                pipe.get(keys.org_in_flight_key(org))
            rows = pipe.execute()
        return [OrgQuota(org=org, **limits, running=running, queued=queued, waiting=waiting,
                         in_flight=max(0, int(in_flight or 0)))
                for org, (limits, running, queued, waiting, in_flight) in zip(orgs, _rows(rows, 5))]

    # -- max_queued_jobs: counted at admission, uncounted when the job runs or ends -------
    def enter_queue(self, org: str, job_id: str, deadline: float) -> None:
        """Count the job among the org's queued jobs (a draft being queued), or raise
        :class:`QuotaExceeded`, counting nothing, when the org is at its ``max_queued_jobs``.
        Counted until the job starts or ends (or, should its draft end while being queued,
        until its deadline passes)."""
        self.entered(org, self._enter(keys=[self.keys.org_quota_key(org), self.keys.org_queued_key(org)],
                                      args=[job_id, deadline, time.time()]))

    def enter_queue_in(self, pipe: Any, org: str, job_id: str, deadline: float) -> None:
        """:meth:`enter_queue` as the last command of the transaction ``pipe`` that writes
        the job's record (``jobs.create(..., then=...)``): refused, it deletes what that
        wrote. Sent whole (``EVAL``, not the script's SHA: a pipeline would first ask Redis
        whether it knows the script, a round trip more per job); pass the reply to
        :meth:`entered`."""
        keys = self.keys
        undo = [keys.job_key(job_id), keys.events_key(job_id), keys.tasks_key(job_id), keys.logs_key(job_id),
                keys.org_jobs_key(org), keys.deadlines_key()]
        pipe.eval(QUOTA_ENTER_QUEUE, 2 + len(undo), keys.org_quota_key(org), keys.org_queued_key(org), *undo,
                  job_id, deadline, time.time())

    @staticmethod
    def entered(org: str, reply: list[Any]) -> None:
        """Raise :class:`QuotaExceeded` if ``reply`` (of the queued-jobs script) refused the job."""
        admitted, count, _ = reply
        if not admitted:
            said = f"org {org} has {count} queued jobs, its max_queued_jobs; wait for some to start or"
            raise QuotaExceeded(f"{said} raise it with `runner orgs set {org} --max-queued-jobs N`",
                                quota="max_queued_jobs", org=org).for_remote(
                f"{said} ask the fleet's operator to raise it")

    def leave(self, org: str, job_id: str, pipe: Any = None) -> None:
        """The job ended (or never got in): it counts nowhere any more, and its waiting
        note goes (a final job waits for nothing). On ``pipe``, when given: the caller sends it."""
        keys = self.keys
        if pipe is None:
            with self.redis.pipeline(transaction=False) as own:
                self.leave(org, job_id, own)
                own.execute()
            return
        pipe.srem(keys.org_running_key(org), job_id)
        pipe.zrem(keys.org_waiting_key(org), job_id)
        pipe.zrem(keys.org_queued_key(org), job_id)
        pipe.hdel(keys.job_key(job_id), "waiting")

    # -- max_running_jobs: admitted at partition, started by the sweep ---------------------
    def admit_to_run(self, org: str, job_id: str, task_id: str) -> tuple[bool, str | None]:
        """Whether the job may start now (it then counts as running). If not it is held
        waiting, noted on its record with ``task_id`` (the partition task to send again);
        returns ``(False, note)`` the first time it is held, ``(False, None)`` after."""
        keys = self.keys
        answer = self._admit(keys=[keys.org_quota_key(org), keys.org_running_key(org), keys.org_waiting_key(org),
                                   keys.org_queued_key(org), keys.job_key(job_id)],
                             args=[job_id, org, time.time(), task_id])
        if answer[0]:
            return True, None
        return False, (answer[1] if answer[2] else None)

    def note_running(self, org: str, job_id: str) -> None:
        """Count a job that runs again without a partition task (``retry_failed``)."""
        self.redis.sadd(self.keys.org_running_key(org), job_id)

    def orgs_waiting(self) -> list[str]:
        """The orgs with jobs waiting to run: what the sweep looks at (two round trips
        when nobody waits)."""
        orgs = sorted(self.redis.smembers(self.keys.orgs_key()))
        if not orgs:
            return []
        with self.redis.pipeline(transaction=False) as pipe:
            for org in orgs:
                pipe.zcard(self.keys.org_waiting_key(org))
            counts = pipe.execute()
        return [org for org, count in zip(orgs, counts) if count]

    def promote(self, org: str) -> list[str]:
        """Start the org's oldest waiting jobs while it is under ``max_running_jobs``
        (running ids of ended or expired jobs are forgotten first; waiting ids of jobs
        no longer queued are dropped). Returns the ids this call moved to running: the
        caller sends their partition tasks."""
        keys = self.keys
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(keys.org_quota_key(org), "max_running_jobs")
            pipe.smembers(keys.org_running_key(org))
            pipe.zrange(keys.org_waiting_key(org), 0, _CANDIDATES - 1)
            limit, running, candidates = pipe.execute()
        running = sorted(running) if limit is not None else []  # without a limit, nothing to make room in
        if not candidates:
            return []
        finals = [encode(state.value) for state in FINAL_STATES]
        return self._promote(
            keys=[keys.org_quota_key(org), keys.org_running_key(org), keys.org_waiting_key(org),
                  keys.org_queued_key(org), *map(keys.job_key, running), *map(keys.job_key, candidates)],
            args=[len(finals), *finals, len(running), *running, *candidates])


def _rows(flat: list[Any], width: int) -> list[tuple[Any, ...]]:
    return [tuple(flat[i:i + width]) for i in range(0, len(flat), width)]


def _org(org: Any) -> str:
    if not isinstance(org, str) or not org.strip() or any(c.isspace() or c == ":" for c in org) or len(org) > 200:
        raise InvalidParams([("org", f"{org!r} is not an org name: 1-200 characters, no spaces or ':'")])
    return org


def _limit(name: str, value: Any) -> str:
    """A limit's stored form (a plain number); ValueError saying what it must be."""
    if name == "weight":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"must be a number above 0, got {value!r}")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"must be a number above 0, got {value!r}") from None
        if not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"must be a number above 0, got {value!r}")
        return repr(weight)
    if name not in LIMITS:
        raise ValueError(f"unknown limit; use {', '.join([*LIMITS, 'weight'])}")
    least = LIMITS[name]
    text = value.strip() if isinstance(value, str) else None
    number = value if isinstance(value, int) and not isinstance(value, bool) else (
        int(text) if text is not None and re.fullmatch(r"-?[0-9]+", text) else None)
    if number is None or number < least:
        raise ValueError(f"must be a whole number of at least {least} (or none to clear it), got {value!r}")
    return str(number)
