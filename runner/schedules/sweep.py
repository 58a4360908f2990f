"""The scheduler sweep: every worker's watchdog calls :func:`sweep` twice a second.

It claims due times (the compare-and-set in :mod:`runner.store.schedule_records`; why
there is no beat process is in :mod:`runner.schedules`), applies the catch-up and overlap
policies, admits each firing through :mod:`runner.admission` (exactly a submit's checks
and writes, with the worker's own store and Celery app: no ``Client``, no second app) and
watches ``expected_interval``. A sweeper that dies between winning a claim and queueing
the job loses that one due time (at most once, never twice); the next due time fires as
usual.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from runner import admission, joblog
from runner.admission import JobRequest
from runner.errors import RunnerError
from runner.lifecycle import Services
from runner.models import JobState
from runner.store.schedule_records import ScheduleRecords
from runner.schedules import Firing, ScheduleSpec
from runner.store import StatusStore

__all__ = ["sweep", "fire", "check_overdue", "last_success", "SWEEP_LIMIT"]

SWEEP_LIMIT = 500  # due schedules one sweep looks at (the rest wait for the next sweep)
RECENT = 20  # a schedule's newest jobs read for overlap and last success
FIRE_THREADS = 8  # firings one sweeper runs at once
log = logging.getLogger("runner.schedules.sweep")
_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def sweep(services: Services, now: float | None = None) -> int:
    """Fire every due schedule this sweeper wins and check overdue ones; returns how
    many due times this call claimed. Firings run on ``FIRE_THREADS`` threads: a firing
    is some 25 Redis round trips, and a cron minute may make thousands due at once."""
    now_ms = round((now or time.time()) * 1000)
    schedules = services.store.schedules
    due = schedules.due(now_ms, SWEEP_LIMIT)
    random.shuffle(due)  # several sweepers start at different ends: fewer lost races
    if len(due) > 1:
        claimed = sum(_pool().map(lambda item: _claim_and_fire(services, schedules, *item, now_ms), due))
    else:
        claimed = sum(_claim_and_fire(services, schedules, member, due_ms, now_ms) for member, due_ms in due)
    for member, at_ms in schedules.checks(now_ms, SWEEP_LIMIT):
        found = schedules.find(member)
        if found is not None:
            check_overdue(services.store, schedules, found[0], found[1], at_ms, now_ms)
    return claimed


def _claim_and_fire(services: Services, schedules: ScheduleRecords, member: str, due_ms: int, now_ms: int) -> int:
    """Claim one schedule's due time (1 if this sweeper won it) and fire what catch-up says."""
    found = schedules.find(member)
    if found is None:
        schedules.forget_due(member)
        return 0
    spec = found[0]
    times, passed, next_ms = spec.to_fire(due_ms, now_ms)
    if not schedules.claim_due(spec, due_ms, next_ms, secrets.token_hex(8)):
        return 0
    if passed > 1 or not times:  # an outage was caught up (or skipped)
        schedules.add_event(spec, "caught_up", missed=passed, fired=len(times), policy=spec.catch_up.value,
                            at=f"{now_ms / 1000:.3f}")
    for t in times:
        fire(services, schedules, spec, t / 1000)
    return 1


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(FIRE_THREADS, thread_name_prefix="runner-scheduler")
        return _executor


def fire(services: Services, schedules: ScheduleRecords, spec: ScheduleSpec, due: float,
         overlap: bool = True) -> Firing:
    """Submit the schedule's job for ``due`` (or record why not) and note the firing.

    With ``overlap``, a due time whose earlier runs have not ended (``max_concurrent``)
    is ``skipped`` with the reason instead of piling up jobs."""
    running = _unfinished(services.store, schedules, spec) if overlap else []
    if len(running) >= spec.max_concurrent:
        job_id, state = running[0]
        firing = Firing(due=due, skipped=f"previous run {job_id} still {state} (max_concurrent={spec.max_concurrent})")
    else:
        try:
            request = JobRequest.of(spec.template, {"name": spec.name, **spec.job})
            job_id = admission.admit(services, spec.org, request, who=f"schedule {spec.name}, {joblog.who()}",
                                     extra_fields={"schedule": spec.name, "due_at": due})
            firing = Firing(due=due, job_id=job_id)
        except RunnerError as exc:  # e.g. a source gone since create: the next due time tries again
            firing = Firing(due=due, skipped=f"submit failed: {exc}")
    schedules.record(spec, firing)
    if firing.skipped:
        log.warning("schedule %s: due %.3f skipped: %s", spec.name, due, firing.skipped)
    return firing


def _unfinished(store: StatusStore, schedules: ScheduleRecords, spec: ScheduleSpec) -> list[tuple[str, str]]:
    """The schedule's recent jobs that have not ended, ``(id, state)``, newest first."""
    ids = [job_id for job_id, _ in schedules.jobs(spec.org, spec.name, max(RECENT, spec.max_concurrent * 2))]
    rows = store.jobs.fields_each(ids, "state")  # one round trip for all of them, not one a job
    return [(job_id, row["state"]) for job_id, row in zip(ids, rows)
            if row["state"] is not None and not JobState(row["state"]).is_final]


def last_success(store: StatusStore, schedules: ScheduleRecords, spec: ScheduleSpec) -> float | None:
    """When the schedule's newest completed run finished (epoch seconds), from its recent jobs."""
    ids = [job_id for job_id, _ in schedules.jobs(spec.org, spec.name, RECENT)]
    finished = [float(row["finished_at"]) for row in store.jobs.fields_each(ids, "state", "finished_at")
                if row["state"] == JobState.COMPLETED.value and row["finished_at"]]
    return max(finished, default=None)


def overdue_since(spec: ScheduleSpec, state: dict[str, str], success: float | None, now_ms: int) -> int | None:
    """When the schedule became overdue (ms), or None: no completed run within
    ``expected_interval`` of the later of its last success and its (re)start."""
    if not spec.expected_interval or state.get("paused") == "1":
        return None
    baseline = max(round((success or 0) * 1000), int(state.get("since") or spec.created_at * 1000))
    limit = baseline + round(spec.expected_interval * 1000)
    return limit if now_ms >= limit else None


def check_overdue(store: StatusStore, schedules: ScheduleRecords, spec: ScheduleSpec, state: dict[str, str],
                  at_ms: int, now_ms: int) -> None:
    """One overdue check (claimed, so one sweeper does it): flag and announce a schedule
    that became overdue — once per overdue period — or clear one that recovered."""
    success = last_success(store, schedules, spec) or (float(state["last_success"]) if "last_success" in state else None)
    since = overdue_since(spec, state, success, now_ms)
    expected_ms = round(spec.expected_interval * 1000) if spec.expected_interval else 60_000
    next_ms = now_ms + min(expected_ms, 5_000) if since is not None else (
        max(round((success or 0) * 1000), int(state.get("since") or 0)) + expected_ms)
    if not schedules.claim_check(spec, at_ms, max(next_ms, now_ms + 100), secrets.token_hex(8)):
        return
    if success is not None:
        schedules.set_last_success(spec, success)
    if since is not None:
        if schedules.mark_overdue(spec, since):
            schedules.add_event(spec, "overdue", since=f"{since / 1000:.3f}",
                                reason=f"no run completed within expected_interval={spec.expected_interval:g}s")
            log.warning("schedule %s is overdue: no run completed within %gs", spec.name, spec.expected_interval)
    elif schedules.clear_overdue(spec):
        schedules.add_event(spec, "recovered", at=f"{now_ms / 1000:.3f}")
