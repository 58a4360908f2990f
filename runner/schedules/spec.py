"""Recurring jobs: what a schedule is, when it is due, and checking one at create.

A schedule is a standing order to submit one template's job (``source``, ``params``,
``inputs``, timeouts: everything ``Client.submit`` takes) every ``every`` seconds or on a
``cron`` expression in a time zone. Each firing is an ordinary job whose record names its
schedule and due time.

How firing is decided (``runner/schedules/sweep.py``), and why: no beat process. Every worker
already runs the watchdog, a sweep over a sorted set of deadlines twice a second; the
schedules ride it. Their next due times live in one sorted set (epoch milliseconds,
exact in a double), and a sweeper *claims* a due time with one Lua compare-and-set that
moves the schedule's score from that due time to the next one: of any number of
sweepers, exactly one sees its expected score and wins; a replay of a call whose reply
was lost finds its own claim token and reports the win it already had. A sweeper
claims a whole batch of due times in one script call (each claim that compare-and-set,
made only with the stored definition: definitions are immutable, so each process keeps
the ones it saw and the claim checks their SHA1), and the winner admits each firing
through :mod:`runner.admission`, so a firing is validated and queued exactly like a job
submitted by hand — a batch's firings together (``admission.admit_many``: each checked
alone, the records and their partition tasks in one transaction).
celery-redbeat was the alternative: it makes beat safe to run twice with a Redis lock,
but it is still a beat process to deploy, watch and restart, and its lock fails over
only after a timeout; claims per due time need neither, and scale with the fleet (every
worker sweeps; a batch of firings, one or two hundred, costs five round trips to the
store, the broker's messages riding in one of them when the broker is that Redis).

Catch-up after an outage (due times that passed while no sweeper ran) follows
``catch_up``: ``latest`` fires one run for the missed period, ``none`` skips to the next
due time, ``all`` fires each missed time (the latest 100). A due time counts as missed
when a later one has passed too, or when it is more than ``LATE_AFTER`` seconds old: a
fleet that is merely busy fires late, never skips. Times are validated here with
croniter (cron) and zoneinfo (time zones); intervals below
``RUNNER_SCHEDULE_MIN_INTERVAL`` are refused.
"""

from __future__ import annotations

import enum
import json
import re
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, Field

__all__ = [
    "CatchUp", "ScheduleSpec", "ScheduleInfo", "Firing", "parse_duration", "timing_errors",
    "ALL_CAP", "LATE_AFTER", "NAME_PATTERN",
]

ALL_CAP = 100  # catch_up="all" fires at most this many missed due times
LATE_AFTER = 30.0  # seconds after which a lone due time counts as missed, not late
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


class CatchUp(enum.StrEnum):
    """What a schedule does with the due times a stopped fleet missed."""

    LATEST = "latest"  # one run for the whole missed period
    NONE = "none"  # skip them: next run at the next due time
    ALL = "all"  # one run per missed due time, the latest ALL_CAP


def parse_duration(value: str | float | int, field: str = "every") -> float:
    """Seconds in ``15m``, ``1h30m``, ``90s``, ``2d`` or a plain number of seconds.
    Raises ValueError naming ``field``, the value and the accepted forms."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"{field}={value!r} is not a duration; use e.g. 90s, 15m, 1h30m, 2d or seconds") from None
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"{field}={value!r} must be more than 0 seconds")
    return seconds


class ScheduleSpec(BaseModel):
    """A schedule's definition as stored: immutable once created."""

    name: str = Field(pattern=NAME_PATTERN)
    org: str
    template: str
    every: float | None = None  # seconds between due times
    cron: str | None = None
    tz: str = "UTC"
    anchor_ms: int  # interval due times are anchor + k * every
    catch_up: CatchUp = CatchUp.LATEST
    max_concurrent: int = Field(1, ge=1)
    expected_interval: float | None = None  # seconds: overdue without a completed run in it
    job: dict[str, Any] = Field(default_factory=dict)  # Client.submit's keyword arguments
    created_at: float

    @property
    def member(self) -> str:
        """This schedule's member in the due and checks sorted sets."""
        return json.dumps([self.org, self.name])

    @property
    def describe(self) -> str:
        return f"every {self.every:g}s" if self.every else f"cron {self.cron!r} ({self.tz})"

    def due_after(self, t_ms: int) -> int:
        """The first due time strictly after ``t_ms`` (epoch milliseconds)."""
        if self.every:
            step = round(self.every * 1000)
            return self.anchor_ms + ((t_ms - self.anchor_ms) // step + 1) * step
        start = datetime.fromtimestamp(t_ms / 1000, ZoneInfo(self.tz))
        return round(croniter(self.cron, start).get_next(float) * 1000)

    def due_between(self, first_ms: int, now_ms: int, cap: int) -> tuple[list[int], int]:
        """Due times from ``first_ms`` up to ``now_ms`` (at most the latest ``cap``), and
        the first due time after ``now_ms``."""
        if self.every:
            step = round(self.every * 1000)
            count = max(0, (now_ms - first_ms) // step + 1)
            skip = max(0, count - cap)
            times = [first_ms + (skip + k) * step for k in range(count - skip)]
            return times, first_ms + count * step
        times, t = [], first_ms
        while t <= now_ms:
            times.append(t)
            times = times[-cap:]
            t = self.due_after(t)
        return times, t

    def to_fire(self, first_ms: int, now_ms: int) -> tuple[list[int], int, int]:
        """Apply ``catch_up`` at ``now_ms`` to a schedule due since ``first_ms``: the due
        times to fire, how many passed, and the next due time after now."""
        times, following = self.due_between(first_ms, now_ms, ALL_CAP)
        passed = len(times) if self.every is None else max(0, (now_ms - first_ms) // round(self.every * 1000) + 1)
        missed = passed > 1 or (now_ms - first_ms) > LATE_AFTER * 1000
        if not missed or self.catch_up is CatchUp.LATEST:
            return times[-1:], passed, following
        if self.catch_up is CatchUp.NONE:
            return [], passed, following
        return times, passed, following


def timing_errors(every: Any, cron: str | None, tz: str, min_interval: float) -> tuple[list[tuple[str, str]], float | None]:
    """Every problem with a schedule's timing (exactly one of ``every`` and ``cron``, a
    real time zone, a cron croniter accepts, no gap under ``min_interval``), and the
    interval in seconds."""
    errors: list[tuple[str, str]] = []
    seconds = None
    if (every is None) == (cron is None):
        errors.append(("every", "give exactly one of every (e.g. 15m) or cron (e.g. '*/15 * * * *')"))
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        zone = None
        errors.append(("tz", f"unknown time zone {tz!r}; use an IANA name such as UTC or Europe/Copenhagen"))
    if every is not None:
        try:
            seconds = parse_duration(every)
        except ValueError as exc:
            errors.append(("every", str(exc)))
    if cron is not None:
        if not croniter.is_valid(cron):
            errors.append(("cron", f"{cron!r} is not a cron expression; e.g. '*/15 * * * *' (minute hour day month weekday)"))
        elif zone is not None:
            it = croniter(cron, datetime.now(zone))
            stamps = [it.get_next(float) for _ in range(6)]
            seconds = min(b - a for a, b in zip(stamps, stamps[1:]))
    if seconds is not None and seconds < min_interval:
        field = "every" if every is not None else "cron"
        errors.append((field, f"runs every {seconds:g}s, under the minimum of {min_interval:g}s "
                              f"(RUNNER_SCHEDULE_MIN_INTERVAL)"))
    return errors, seconds


class Firing(BaseModel):
    """One due time's outcome: a job, or ``skipped`` with the reason."""

    due: float
    job_id: str | None = None
    skipped: str | None = None
    at: float = Field(default_factory=time.time)


class ScheduleInfo(BaseModel):
    """What ``client.schedules()`` and ``runner schedules`` show about one schedule."""

    name: str
    org: str
    template: str
    timing: str
    paused: bool
    catch_up: CatchUp
    max_concurrent: int
    expected_interval: float | None
    next_due: datetime | None
    last_job: str | None
    last_state: str | None
    last_due: datetime | None
    last_success: datetime | None
    overdue: bool
    firings: int
    skipped: int

    @property
    def last_age(self) -> float | None:
        """Seconds since the last due time that fired."""
        return None if self.last_due is None else time.time() - self.last_due.timestamp()
