"""What a user calls for recurring jobs: create a schedule (checked like ``submit``), list
them, and the :class:`Schedule` handle (pause, resume, run now, delete, its jobs).

``Client.schedule`` / ``Client.schedules`` / ``Client.get_schedule`` call these; the CLI
and the HTTP API call the client. The model and the timing are in :mod:`runner.schedules`,
the firing in :mod:`runner.schedules.sweep`.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from runner import admission
from runner.admission import JobRequest
from runner.errors import InvalidParams, InvalidSchedule
from runner.models import JobStatus
from runner.store.schedule_records import ScheduleRecords
from runner.schedules.sweep import fire, last_success, overdue_since
from runner.schedules import NAME_PATTERN, CatchUp, ScheduleInfo, ScheduleSpec, parse_duration, timing_errors

if TYPE_CHECKING:
    from runner.client import Client
    from runner.job import Job

__all__ = ["Schedule", "create_schedule", "list_schedules"]

_JOB_FIELDS = ("source", "destination", "params", "inputs", "task_timeout", "job_timeout", "max_retries",
               "retention_hours", "test", "min_success_ratio", "max_failed_pieces")


def _stamp(seconds: float | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, timezone.utc) if seconds else None


class Schedule:
    """A handle on one schedule of the client's org; every method reads Redis afresh."""

    def __init__(self, client: "Client", name: str) -> None:
        self.client = client
        self.name = name
        self._schedules = client.store.schedules

    def __repr__(self) -> str:
        return f"Schedule({self.name!r})"

    def spec(self) -> ScheduleSpec:
        """The schedule's definition; raises ScheduleNotFound."""
        return self._schedules.get(self.client.org, self.name)[0]

    def info(self) -> ScheduleInfo:
        """Next run, last run (job, state, age), overdue, counts."""
        spec, state = self._schedules.get(self.client.org, self.name)
        return _info(self.client, self._schedules, spec, state)

    def pause(self) -> None:
        """No firing until :meth:`resume`; a paused schedule is never overdue."""
        self._schedules.pause(self.spec())
        self._schedules.add_event(self.spec(), "paused")

    def resume(self) -> None:
        """Fire again from the next due time after now (missed ones are not caught up)."""
        spec, now_ms = self.spec(), round(time.time() * 1000)
        self._schedules.resume(spec, spec.due_after(now_ms), now_ms)
        self._schedules.add_event(spec, "resumed")

    def run_now(self) -> "Job":
        """Submit one run at once, outside the timetable (no overlap check); returns its job."""
        from runner.job import Job

        firing = fire(self.client.services, self._schedules, self.spec(), time.time(), overlap=False)
        if firing.job_id is None:
            raise InvalidSchedule([("run_now", firing.skipped or "not submitted")])
        return Job(self.client, firing.job_id)

    def delete(self) -> None:
        """Delete the schedule and its future firings; its past jobs keep their retention."""
        self._schedules.delete(self.spec())

    def jobs(self, limit: int = 50) -> list[JobStatus]:
        """The schedule's jobs still in the store, newest due time first."""
        self.spec()
        found = []
        for job_id, _ in self._schedules.jobs(self.client.org, self.name, limit):
            try:
                found.append(self.client.store.get(job_id, self.client.org))
            except Exception:  # expired by its own retention
                continue
        return found

    def events(self) -> list[dict[str, str]]:
        """Fired, skipped (with the reason), caught_up, overdue, recovered, paused, resumed."""
        return self._schedules.events(self.client.org, self.name)


def create_schedule(
    client: "Client",
    template: str,
    *,
    name: str,
    every: str | float | None = None,
    cron: str | None = None,
    tz: str = "UTC",
    catch_up: CatchUp | str = CatchUp.LATEST,
    max_concurrent: int = 1,
    expected_interval: str | float | None = None,
    **job: Any,
) -> Schedule:
    """Validate everything ``submit`` would plus the timing, then store and arm it.

    Raises TemplateNotFound, or InvalidSchedule listing every bad field (timing, time
    zone, name, params, inputs, options, source); nothing is stored then."""
    unknown = sorted(set(job) - set(_JOB_FIELDS))
    if unknown:
        raise TypeError(f"schedule() got unexpected arguments {unknown}; it takes {', '.join(_JOB_FIELDS)}")
    tmpl = client.template(template)
    errors, _ = timing_errors(every, cron, tz, client.settings.schedule_min_interval)
    errors += _policy_errors(name, catch_up, max_concurrent)
    expected = None
    if expected_interval is not None:
        try:
            expected = parse_duration(expected_interval, "expected_interval")
        except ValueError as exc:
            errors.append(("expected_interval", str(exc)))
    errors += _job_errors(client, tmpl.ref, job)
    if errors:
        raise InvalidSchedule(list(dict.fromkeys(errors)))
    now = time.time()
    spec = ScheduleSpec(
        name=name, org=client.org, template=tmpl.ref, every=parse_duration(every) if every is not None else None,
        cron=cron, tz=tz, anchor_ms=round(now * 1000), catch_up=CatchUp(catch_up), max_concurrent=max_concurrent,
        expected_interval=expected, job={k: v for k, v in job.items() if v is not None}, created_at=now,
    )
    now_ms = round(now * 1000)
    check_at = now_ms + round(expected * 1000) if expected else None
    client.store.schedules.create(spec, spec.due_after(now_ms), check_at)
    return Schedule(client, name)


def _policy_errors(name: str, catch_up: Any, max_concurrent: Any) -> list[tuple[str, str]]:
    errors = []
    if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
        errors.append(("name", f"{name!r}: use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"))
    if catch_up not in {c.value for c in CatchUp}:
        errors.append(("catch_up", f"{catch_up!r}: use one of latest, none, all"))
    if not isinstance(max_concurrent, int) or max_concurrent < 1:
        errors.append(("max_concurrent", f"{max_concurrent!r}: must be a whole number of at least 1"))
    return errors


def _job_errors(client: "Client", template: str, job: dict[str, Any]) -> list[tuple[str, str]]:
    """Every problem ``submit`` would raise for this job, collected instead of raised
    (the one admission check, each error under its own field)."""
    try:
        admission.check(client.services, JobRequest.of(template, job), collect=True)
    except InvalidParams as exc:
        return list(exc.errors)
    return []


def list_schedules(client: "Client") -> list[ScheduleInfo]:
    """Every schedule of the client's org, by name."""
    schedules = client.store.schedules
    found = []
    for name in schedules.names(client.org):
        try:
            spec, state = schedules.get(client.org, name)
        except Exception:  # deleted meanwhile
            continue
        found.append(_info(client, schedules, spec, state))
    return found


def _info(client: "Client", schedules: ScheduleRecords, spec: ScheduleSpec, state: dict[str, str]) -> ScheduleInfo:
    success = last_success(client.store, schedules, spec) or (float(state["last_success"]) if "last_success" in state
                                                              else None)
    last_job = state.get("last_job")
    last_state = client.store.state(last_job) if last_job else None
    paused = state.get("paused") == "1"
    return ScheduleInfo(
        name=spec.name, org=spec.org, template=spec.template, timing=spec.describe, paused=paused,
        catch_up=spec.catch_up, max_concurrent=spec.max_concurrent, expected_interval=spec.expected_interval,
        next_due=None if paused else _stamp(int(state.get("next_due") or 0) / 1000),
        last_job=last_job, last_state=last_state.value if last_state else None,
        last_due=_stamp(float(state["last_due"])) if "last_due" in state else None,
        last_success=_stamp(success),
        overdue=overdue_since(spec, state, success, round(time.time() * 1000)) is not None,
        firings=int(state.get("firings") or 0), skipped=int(state.get("skipped") or 0),
    )
