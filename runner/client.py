"""The Python client: submit jobs, follow them, read their results.

``Client`` is what users, the CLI and the HTTP API call; :class:`~runner.job.Job` is its
handle on one job. It validates params
against the template *before* anything is written or queued, writes the job record,
and sends one task by name. It never imports ``workers/``.
"""

from __future__ import annotations

import secrets
import time
import uuid
from functools import cached_property
from typing import TYPE_CHECKING, Any

from celery import Celery

from runner.artifacts import ArtifactIO, artifact_prefix
from runner.catalog import TemplateInfo, all_templates, find_template
from runner import joblog
from runner.checks import SourceReport, check_job, source_report
from runner import guards
from runner.config import Settings, get_settings
from runner.dispatch import make_celery, send_partition, send_resume
from runner.errors import IllegalTransition, InvalidParams
from runner.fleet import check_worker_roots, unserved_queues
from runner.job import Job
from runner.lifecycle import Services, end_job
from runner.models import JobState, JobStatus, RunOptions
from runner.params import validate_params
from runner.registry import load_plugins
from runner.storage import Storages
from runner.store import StatusStore

if TYPE_CHECKING:
    from runner.recurring import Schedule
    from runner.schedules import ScheduleInfo

__all__ = ["Client", "Job"]


class Client:
    """Submit and follow jobs on a Runner fleet.

    With no arguments everything comes from ``RUNNER_*`` settings; ``org`` scopes every
    read and write. Templates the fleet published need no import; modules in ``include``
    (and ``RUNNER_INCLUDE``) are imported so their templates validate with their own models.
    """

    def __init__(
        self,
        broker_url: str | None = None,
        *,
        org: str | None = None,
        include: list[str] | None = None,
        settings: Settings | None = None,
    ) -> None:
        if settings is None:
            settings = get_settings(**({"broker_url": broker_url} if broker_url else {}))
        self.settings = settings
        self.org = org or settings.org
        load_plugins([*settings.include, *(include or [])])
        self.store = StatusStore.from_settings(settings)
        self.storages = Storages(settings)

    @cached_property
    def celery(self) -> Celery:
        return make_celery(self.settings, main="runner-client")

    @cached_property
    def services(self) -> Services:
        return Services(self.store, self.storages, self.settings, self.celery)

    def submit(
        self,
        template: str,
        *,
        source: str = "bypass:",
        destination: str = "bypass:",
        params: dict[str, Any] | None = None,
        inputs: dict[str, str] | None = None,
        name: str | None = None,
        task_timeout: float | None = None,
        job_timeout: float | None = None,
        max_retries: int | None = None,
        retention_hours: float | None = None,
        test: bool = False,
    ) -> Job:
        """Validate and queue a job in one call.

        ``inputs`` binds the template's named inputs to URIs. Raises TemplateNotFound,
        InvalidParams (listing every bad field and input) or SourceError before anything
        is written or queued; SourceError too for a source or destination the template
        cannot use (``runner.checks.check_job``).
        """
        tmpl = self.template(template)
        options = RunOptions.checked(self.settings.max_timeout_seconds, task_timeout=task_timeout,
                                     job_timeout=job_timeout, max_retries=max_retries, test=test)
        validated = validate_params(tmpl, guards.params(params, self.settings.max_params_bytes))
        source, destination = guards.uri(self.storages, "source", source), guards.uri(self.storages, "destination",
                                                                                      destination)
        check_job(self.storages, tmpl, source, destination)
        record = self._record(tmpl, guards.name("name", name), source, destination, guards.retention(retention_hours))
        record["inputs"] = self._check_inputs(tmpl, inputs)
        check_worker_roots(self.store, tmpl.ref, {"source": source, "destination": destination,
                                                  **{f"inputs.{k}": v for k, v in record["inputs"].items()}})
        record["warnings"] = self._queue_warnings(record["queue"])
        record.update(_timing(record, validated, options))
        task_id = str(uuid.uuid4())
        self.store.create(record, expire_seconds=_lifetime(record), deadline=record["deadline"], tasks=[task_id],
                          logs=[joblog.line(f"queued by {joblog.who()}")])
        self._send(record["id"], tmpl.ref, record["deadline"], task_id)
        return Job(self, record["id"], known=True)

    def run(
        self,
        job_id: str,
        *,
        task_timeout: float | None = None,
        job_timeout: float | None = None,
        test: bool = False,
        max_retries: int | None = None,
    ) -> Job:
        """Queue the draft job ``job_id`` — the staged flow's last step, with ``submit``'s
        checks. Raises InvalidParams (nothing queued) or IllegalTransition (not a draft)."""
        status = self.store.get(job_id, self.org)
        if status.state is not JobState.DRAFT:
            raise IllegalTransition(f"job {job_id} is {status.state.value}; only a draft job can be run")
        tmpl = self.template(status.template)
        options = RunOptions.checked(self.settings.max_timeout_seconds, task_timeout=task_timeout,
                                     job_timeout=job_timeout, max_retries=max_retries, test=test)
        timing = _timing(status.model_dump(), validate_params(tmpl, status.params), options)
        self._check_inputs(tmpl, status.inputs)
        check_job(self.storages, tmpl, status.source, status.destination)
        check_worker_roots(self.store, tmpl.ref, {"source": status.source, "destination": status.destination,
                                                  **{f"inputs.{k}": v for k, v in status.inputs.items()}})
        self.store.transition(job_id, JobState.QUEUED, expect=[JobState.DRAFT], **timing)
        self.store.keep_for(job_id, _lifetime({**status.model_dump(), **timing}))
        task_id = str(uuid.uuid4())
        self.store.set_deadline(job_id, timing["deadline"])
        self.store.add_tasks(job_id, [task_id])
        self.store.add_logs(job_id, [joblog.line(f"queued by {joblog.who()}")])
        self._send(job_id, tmpl.ref, timing["deadline"], task_id)
        return Job(self, job_id, known=True)

    def create(self, template: str, name: str | None = None, retention_hours: float | None = None) -> Job:
        """Create a draft job to configure step by step (``set_datasource``, ``set_params``, ``run``)."""
        tmpl = self.template(template)
        record = self._record(tmpl, guards.name("name", name), "bypass:", "bypass:", guards.retention(retention_hours))
        record["state"] = JobState.DRAFT.value
        self.store.create(record, expire_seconds=record["retention_hours"] * 3600)
        return Job(self, record["id"], known=True)

    def get(self, job_id: str) -> Job:
        """A handle on an existing job of this org; raises JobNotFound."""
        self.store.get(job_id, self.org)
        return Job(self, job_id, known=True)

    def jobs(self, state: JobState | str | None = None, limit: int = 50, template: str | None = None) -> list[JobStatus]:
        """This org's jobs, newest first, optionally only those in ``state`` and of
        ``template`` (``name`` or ``name@version``)."""
        return self.store.list_jobs(self.org, JobState(state) if state else None, limit, template)

    def check_source(self, uri: str, first: int = 10) -> SourceReport:
        """What a job would read from ``uri``: object count, total bytes, first names."""
        return source_report(self.storages, uri, first)

    def template(self, ref: str) -> TemplateInfo:
        """The template ``ref`` names (``name``, ``name@1``, ``name@1.2``, ``name@1.2.3``):
        imported here (its pydantic models validate) or published by the fleet (its JSON
        Schemas do). Raises TemplateNotFound with the known refs and a hint."""
        return find_template(guards.ref(ref), self.store)

    def templates(self) -> list[TemplateInfo]:
        """Every template the fleet published or this process imported, by name then version."""
        return all_templates(self.store)

    def cancel(self, job_id: str, by: str | None = None) -> bool:
        """Cancel a job of this org. False (nothing changed) if it had already ended.
        ``by`` says who asked (default: this process's ``user@host (pid N)``)."""
        if self.store.get(job_id, self.org).is_final:
            return False
        return end_job(self.services, job_id, JobState.CANCELLED, error={
            "stage": "cancel", "type": "JobCancelled", "message": f"cancelled by {by or 'request from ' + joblog.who()}"})

    def delete(self, job_id: str, by: str | None = None) -> None:
        """Delete a job of this org: cancel it if it has not ended, then remove its record,
        pieces, results, logs, events and artifacts. Raises JobNotFound."""
        self.cancel(job_id, by)
        ArtifactIO(self.storages, artifact_prefix(self.settings, job_id)).delete_all()
        self.store.delete_job(job_id, self.org)

    def retry_failed(self, job_id: str, job_timeout: float | None = None) -> Job:
        """Re-run only the pieces of a failed or timed-out job that have no result, reusing
        every stored result, then assemble — under a new deadline.

        Raises IllegalTransition for a job in any other state.
        """
        status = self.store.get(job_id, self.org)
        if status.state not in (JobState.FAILED, JobState.TIMED_OUT):
            raise IllegalTransition(
                f"job {job_id} is {status.state.value}; only a failed or timed_out job can retry its failed pieces"
            )
        now = time.time()
        timeout = float(job_timeout or status.job_timeout)
        deadline = now + timeout
        partitioned = status.pieces_total is not None
        round_ = int(self.store.fields(job_id, "round")["round"] or 0) + 1
        self.store.reset_failures(job_id)
        self.store.transition(
            job_id, JobState.RUNNING if partitioned else JobState.QUEUED, expect=[status.state],
            error=None, finished_at=None, pieces_failed=0, deadline=deadline, job_timeout=timeout, round=round_,
        )
        self.store.keep_for(job_id, timeout + status.retention_hours * 3600)
        self.store.set_deadline(job_id, deadline)
        if partitioned:
            task_id = send_resume(self.celery, job_id, status.template, self.settings.control_queue, deadline)
        else:
            task_id = send_partition(self.celery, job_id, status.template, self.settings.control_queue, deadline)
        self.store.add_tasks(job_id, [task_id])
        self.store.add_logs(job_id, [joblog.line(f"retry round {round_}: re-running the pieces without a result")])
        return Job(self, job_id, known=True)

    # -- recurring jobs (runner/recurring.py) -----------------------------------------
    def schedule(self, template: str, *, name: str, every: str | float | None = None, cron: str | None = None,
                 tz: str = "UTC", catch_up: str = "latest", max_concurrent: int = 1,
                 expected_interval: str | float | None = None, **job: Any) -> "Schedule":
        """Fire a job of ``template`` ``every`` interval (``15m``, ``90s``) or on a ``cron``
        expression in ``tz``; ``job`` takes submit's keywords. Validated like submit, plus
        the timing; raises TemplateNotFound or InvalidSchedule, storing nothing."""
        from runner.recurring import create_schedule

        return create_schedule(self, template, name=name, every=every, cron=cron, tz=tz, catch_up=catch_up,
                               max_concurrent=max_concurrent, expected_interval=expected_interval, **job)

    def schedules(self) -> list["ScheduleInfo"]:
        """This org's schedules: template, next run, last run (job, state, age), overdue."""
        from runner.recurring import list_schedules

        return list_schedules(self)

    def get_schedule(self, name: str) -> "Schedule":
        """A handle on the schedule ``name``; raises ScheduleNotFound."""
        from runner.recurring import Schedule

        handle = Schedule(self, name)
        handle.spec()
        return handle

    # -- internals ---------------------------------------------------------------------
    def _queue_warnings(self, queue: str) -> list[str]:
        """Say so when no live worker serves the job's queues, instead of hanging silently."""
        return [
            f"no live worker consumes queue {q!r}: the job waits until one starts "
            f"(runner worker --queues {q})"
            for q in unserved_queues(self.store, [self.settings.control_queue, queue])
        ]

    def _check_inputs(self, tmpl: TemplateInfo, inputs: dict[str, str] | None) -> dict[str, str]:
        """The job's named inputs, checked against the template's declared names."""
        inputs = guards.inputs(self.storages, inputs, self.settings.max_inputs)
        errors = [(f"inputs.{name}", "required input missing") for name in tmpl.inputs if name not in inputs]
        declared = ", ".join(tmpl.inputs) or "none"
        errors += [(f"inputs.{name}", f"unknown input; template {tmpl.ref} declares: {declared}")
                   for name in inputs if name not in tmpl.inputs]
        if errors:
            raise InvalidParams(errors)
        return inputs

    def _record(
        self, tmpl: TemplateInfo, name: str | None, source: str, destination: str, retention_hours: float | None
    ) -> dict[str, Any]:
        return {
            "id": secrets.token_hex(8),
            "org": self.org,
            "template": tmpl.ref,
            "state": JobState.QUEUED.value,
            "name": name,
            "params": {},
            "source": source,
            "destination": destination,
            "inputs": {},
            "test": False,
            "task_timeout": tmpl.task_timeout or self.settings.task_timeout,
            "job_timeout": tmpl.job_timeout or self.settings.job_timeout,
            "max_retries": tmpl.max_retries if tmpl.max_retries is not None else self.settings.max_retries,
            "retention_hours": retention_hours or self.settings.retention_hours,
            "queue": tmpl.queue or self.settings.default_queue,
            "created_at": time.time(),
            "pieces_done": 0,
            "pieces_failed": 0,
        }

    def _send(self, job_id: str, template: str, deadline: float, task_id: str) -> None:
        """Send the job's partition task as ``task_id`` (its id, deadline and first log line
        are stored already). If the broker cannot take it, the job ends ``failed`` (the
        same way every job ends) and the error propagates."""
        try:
            send_partition(self.celery, job_id, template, self.settings.control_queue, deadline, task_id=task_id)
        except Exception as exc:
            end_job(self.services, job_id, JobState.FAILED, error={
                "stage": "submit", "type": type(exc).__name__, "message": f"cannot reach the broker: {exc}"})
            raise


def _timing(base: dict[str, Any], params: dict[str, Any], options: RunOptions) -> dict[str, Any]:
    """The fields a job gets when it is queued: validated params, its timeouts and retries
    (``options`` over ``base``, the record's template defaults) and its deadline."""
    now = time.time()
    job_timeout = float(options.job_timeout or base["job_timeout"])
    return {
        "params": params,
        "test": options.test,
        "task_timeout": float(options.task_timeout or base["task_timeout"]),
        "job_timeout": job_timeout,
        "max_retries": int(options.max_retries if options.max_retries is not None else base["max_retries"]),
        "queued_at": now,
        "deadline": now + job_timeout,
    }


def _lifetime(record: dict[str, Any]) -> float:
    """Seconds a queued job's keys live if nothing ends it: its deadline plus retention."""
    return float(record["job_timeout"]) + float(record["retention_hours"]) * 3600
