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
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from runner import admission, joblog
from runner.admission import JobRequest
from runner.errors import RunnerError
from runner.lifecycle import Services
from runner.models import JobState
from runner.store.schedule_records import Claim, ScheduleRecords
from runner.schedules import Firing, ScheduleSpec
from runner.store import StatusStore

__all__ = ["sweep", "fire", "check_overdue", "last_success", "SWEEP_LIMIT"]

SWEEP_LIMIT = 200  # due schedules one sweep claims at once (in one round trip)
SWEEP_BUDGET = 5.0  # seconds one sweep goes on claiming while whole batches are due
RECENT = 20  # a schedule's newest jobs read for overlap and last success
FIRE_THREADS = 2  # due batches one sweeper fires at once (one waits on its round trips, one computes)
log = logging.getLogger("runner.schedules.sweep")
_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()


@dataclass
class _Plan:
    """One due schedule as this sweeper plans it: the claim, and what it fires if it wins."""

    claim: Claim
    spec: ScheduleSpec | None = None
    times: list[int] = field(default_factory=list)
    passed: int = 0


def sweep(services: Services, now: float | None = None) -> int:
    """Fire every due schedule this sweeper wins and check overdue ones; returns how
    many due times this call claimed.

    A batch of due schedules costs five round trips to the store however many it
    holds: the due read (with the overdue checks'), one claim of them all (which
    returns each won schedule's recent jobs), their states (the overlap check), every
    job's record (admission's one transaction for the batch) and the firings' records
    (a definition this process has not seen yet costs one more, once); the batch's
    partition tasks ride in the records' transaction when the broker is the store's
    Redis, else go to the broker in one pipelined publish. While whole
    batches are due (a cron minute may make thousands due at once) the sweep takes the
    next ones, ``FIRE_THREADS`` batches at a time, for up to ``SWEEP_BUDGET`` seconds;
    the other sweepers take batches meanwhile."""
    started, schedules, limit = time.monotonic(), services.store.schedules, SWEEP_LIMIT * FIRE_THREADS
    now_ms = round((now or time.time()) * 1000)
    due, checks = schedules.due_and_checks(now_ms, limit)
    claimed = _fire_batches(services, schedules, due, now_ms)
    while now is None and len(due) == limit and time.monotonic() - started < SWEEP_BUDGET:
        now_ms = round(time.time() * 1000)
        due = schedules.due(now_ms, limit)
        claimed += _fire_batches(services, schedules, due, now_ms)
    for member, at_ms in checks:
        found = schedules.find(member)
        if found is not None:
            check_overdue(services.store, schedules, found[0], found[1], at_ms, now_ms)
    return claimed


def _plan(schedules: ScheduleRecords, member: str, due_ms: int, now_ms: int) -> _Plan:
    """The claim of one due time, planned with the definition this process knows (none
    yet: the claim then only fetches it)."""
    known = schedules.known(member)
    if known is None:
        return _Plan(Claim(member, due_ms, 0, ""))
    sha, spec = known
    times, passed, next_ms = spec.to_fire(due_ms, now_ms)
    claim = Claim(member, due_ms, next_ms, secrets.token_hex(8), sha, max(RECENT, spec.max_concurrent * 2))
    return _Plan(claim, spec, times, passed)


def _claim(schedules: ScheduleRecords, due: list[tuple[str, int]], now_ms: int) -> list[tuple[_Plan, list[str]]]:
    """Claim the due times (one round trip; one more for definitions not known yet):
    the won ones, each with its schedule's recent job ids."""
    plans = [_plan(schedules, member, due_ms, now_ms) for member, due_ms in due]
    won: list[tuple[_Plan, list[str]]] = []
    for attempt in range(2):
        replies = schedules.claim_many([plan.claim for plan in plans])
        again = []
        for plan, (status, payload) in zip(plans, replies):
            if status == 1:
                won.append((plan, list(payload)))
            elif status < 0 and attempt == 0:
                schedules.learn(plan.claim.member, str(payload))
                again.append(_plan(schedules, plan.claim.member, plan.claim.due_ms, now_ms))
        if not again:
            break
        plans = again
    return won


def _fire_batches(services: Services, schedules: ScheduleRecords, due: list[tuple[str, int]], now_ms: int) -> int:
    """Fire ``due`` in batches of ``SWEEP_LIMIT``, ``FIRE_THREADS`` at once: while one
    batch waits on its round trips (the store executing a transaction of hundreds of
    commands, the broker taking the publish) another one's checks and records are
    built. Returns the wins."""
    batches = [due[i:i + SWEEP_LIMIT] for i in range(0, len(due), SWEEP_LIMIT)]
    if len(batches) <= 1:
        return _fire_due(services, schedules, due, now_ms)
    return sum(_pool().map(lambda batch: _fire_due(services, schedules, batch, now_ms), batches))


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(FIRE_THREADS, thread_name_prefix="runner-scheduler")
        return _executor


def _fire_due(services: Services, schedules: ScheduleRecords, due: list[tuple[str, int]], now_ms: int) -> int:
    """Claim ``due`` and fire what each won schedule's catch-up says; returns the wins."""
    won = _claim(schedules, due, now_ms) if due else []
    if not won:
        return 0
    ids = list(dict.fromkeys(job_id for _, recent in won for job_id in recent))
    rows = services.store.jobs.fields_each(ids, "state") if ids else []  # one round trip for every schedule
    states = {job_id: row["state"] for job_id, row in zip(ids, rows)}
    work = [(plan, [(job_id, states[job_id]) for job_id in recent
                    if states[job_id] is not None and not JobState(states[job_id]).is_final]) for plan, recent in won]
    runs = _fire_rounds(services, work)
    events = [(plan.spec, {"type": "caught_up", "missed": str(plan.passed), "fired": str(len(plan.times)),
                           "policy": plan.spec.catch_up.value, "at": f"{now_ms / 1000:.3f}"})
              for plan, _ in work if plan.passed > 1 or not plan.times]
    schedules.record_many([(plan.spec, firing) for (plan, _), firings in zip(work, runs) for firing in firings],
                          events)
    return len(won)


def _fire_rounds(services: Services, work: list[tuple[_Plan, list[tuple[str, str]]]]) -> list[list[Firing]]:
    """Fire each plan's due times in order, the k-th due time of every plan in one
    admission batch: a run queued in one round counts as running for the next
    (``catch_up="all"`` after an outage); nearly always there is one round."""
    fired: list[list[Firing]] = [[] for _ in work]
    for k in range(max(len(plan.times) for plan, _ in work)):
        batch = [(n, plan.spec, plan.times[k] / 1000, running) for n, (plan, running) in enumerate(work)
                 if k < len(plan.times)]
        firings = _fire_batch(services, [(spec, due, running) for _, spec, due, running in batch])
        for (n, _, _, running), firing in zip(batch, firings):
            if firing.job_id:
                running.insert(0, (firing.job_id, JobState.QUEUED.value))
            fired[n].append(firing)
    return fired


def fire(services: Services, schedules: ScheduleRecords, spec: ScheduleSpec, due: float,
         overlap: bool = True) -> Firing:
    """Submit the schedule's job for ``due`` (or record why not) and note the firing.

    With ``overlap``, a due time whose earlier runs have not ended (``max_concurrent``)
    is ``skipped`` with the reason instead of piling up jobs."""
    running = _unfinished(services.store, schedules, spec) if overlap else []
    (firing,) = _fire_batch(services, [(spec, due, running)])
    schedules.record(spec, firing)
    return firing


def _fire_batch(services: Services, items: list[tuple[ScheduleSpec, float, list[tuple[str, str]]]]) -> list[Firing]:
    """Admit each schedule's job for its due time, all in one :func:`admission.admit_many`
    (one transaction for the records, one publish round trip for the partition tasks),
    unless its unfinished runs (newest first) fill ``max_concurrent``: that firing is
    skipped, with the reason. A firing whose admission fails is skipped with the error
    (a source gone since create: the next due time tries again); the others go on."""
    firings: list[Firing | None] = []
    admissions, where, who = [], [], joblog.who()
    for n, (spec, due, running) in enumerate(items):
        if len(running) >= spec.max_concurrent:
            job_id, state = running[0]
            reason = f"previous run {job_id} still {state} (max_concurrent={spec.max_concurrent})"
            firings.append(Firing(due=due, skipped=reason))
            continue
        firings.append(None)
        where.append(n)
        admissions.append(admission.Admission(spec.org, JobRequest.of(spec.template, {"name": spec.name, **spec.job}),
                                              who=f"schedule {spec.name}, {who}",
                                              extra_fields={"schedule": spec.name, "due_at": due}))
    answers = admission.admit_many(services, admissions) if admissions else []
    for n, answer in zip(where, answers):
        firings[n] = _outcome(items[n][0], items[n][1], answer)
    for (spec, due, _), firing in zip(items, firings):
        if firing.skipped:
            log.warning("schedule %s: due %.3f skipped: %s", spec.name, due, firing.skipped)
    return firings  # type: ignore[return-value]


def _outcome(spec: ScheduleSpec, due: float, answer: str | Exception) -> Firing:
    """A firing from admission's answer: the job, or why there is none."""
    if isinstance(answer, str):
        return Firing(due=due, job_id=answer)
    if isinstance(answer, RunnerError):  # e.g. a source gone since create, a quota reached
        return Firing(due=due, skipped=f"submit failed: {answer}")
    log.error("schedule %s: due %.3f not submitted", spec.name, due, exc_info=answer)  # e.g. the broker refused
    return Firing(due=due, skipped=f"submit failed: {type(answer).__name__}: {answer}")


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
