"""The Python client: submit jobs, follow them, read their results.

``Client`` is what users, the CLI and the HTTP API call; :class:`~runner.job.Job` is its
handle on one job. What it means to admit a job (the checks, the record, the partition
task) is :mod:`runner.admission`'s; the client binds it to an org and its settings. It
never imports ``workers/``.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from runner import admission, joblog
from runner.admission import JobRequest
from runner.artifacts import ArtifactIO, artifact_prefix
from runner.catalog import TemplateInfo, all_templates, find_template
from runner import guards
from runner.checks import SourceReport, source_report
from runner.config import Settings, get_settings
from runner.dispatch import make_celery
from runner.job import Job
from runner.lifecycle import Services, end_job
from runner.models import ErrorInfo, JobState, JobStatus
from runner.registry import load_plugins
from runner.storage import Storages
from runner.store import StatusStore

if TYPE_CHECKING:
    from celery import Celery  # imported when a Celery app is made: clients that only read skip it

    from runner.schedules.handle import Schedule
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
        min_success_ratio: float | None = None,
        max_failed_pieces: int | None = None,
    ) -> Job:
        """Validate and queue a job in one call.

        ``inputs`` binds the template's named inputs to URIs. ``min_success_ratio`` (0–1)
        or ``max_failed_pieces`` (one of them; default: the template's, else none) lets the
        job complete ``partial`` without pieces that fail for good (``runner/partial.py``). Raises TemplateNotFound,
        InvalidParams (listing every bad field and input) or SourceError before anything
        is written or queued; SourceError too for a source or destination the template
        cannot use. The checks and the queueing are :mod:`runner.admission`'s.
        """
        request = JobRequest(template=template, source=source, destination=destination, params=params,
                             inputs=inputs, name=name, task_timeout=task_timeout, job_timeout=job_timeout,
                             max_retries=max_retries, retention_hours=retention_hours, test=test,
                             min_success_ratio=min_success_ratio, max_failed_pieces=max_failed_pieces)
        return Job(self, admission.admit(self.services, self.org, request), known=True)

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
        options = JobRequest(task_timeout=task_timeout, job_timeout=job_timeout, max_retries=max_retries,
                             test=test or None)
        admission.queue_draft(self.services, self.org, job_id, options)
        return Job(self, job_id, known=True)

    def create(self, template: str, name: str | None = None, retention_hours: float | None = None) -> Job:
        """Create a draft job to configure step by step (``set_datasource``, ``set_params``, ``run``)."""
        request = JobRequest(template=template, name=name, retention_hours=retention_hours)
        return Job(self, admission.admit(self.services, self.org, request, draft=True), known=True)

    def create_attached(self, name: str | None = None, settings: dict[str, Any] | None = None,
                        job_timeout: float | None = None, retention_hours: float | None = None) -> tuple[Job, str]:
        """Create a job your own process runs (``runner.attach.Job.init(job_id, api_key)``):
        returns its handle and its own API key, shown only now. It waits ``queued`` until
        the process starts it; ``job_timeout`` holds. Raises InvalidParams, writing nothing."""
        from runner.attached_jobs import create_attached

        status, key = create_attached(self.services, self.org, name=name, settings=settings,
                                      job_timeout=job_timeout, retention_hours=retention_hours)
        return Job(self, status.id, known=True), key

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
        return end_job(self.services, job_id, JobState.CANCELLED, error=ErrorInfo(
            stage="cancel", type="JobCancelled", message=f"cancelled by {by or 'request from ' + joblog.who()}"))

    def delete(self, job_id: str, by: str | None = None) -> None:
        """Delete a job of this org: cancel it if it has not ended, then remove its record,
        pieces, results, logs, events and artifacts. Raises JobNotFound."""
        self.cancel(job_id, by)
        ArtifactIO(self.storages, artifact_prefix(self.settings, job_id)).delete_all()
        self.store.delete_job(job_id, self.org)

    def retry_failed(self, job_id: str, job_timeout: float | None = None) -> Job:
        """Re-run only the pieces of a failed or timed-out job, or of a partial completion,
        that have no result, reusing every stored result, then assemble — under a new deadline.

        Raises IllegalTransition for a job in any other state.
        """
        admission.retry_failed(self.services, self.org, job_id, job_timeout)
        return Job(self, job_id, known=True)

    # -- recurring jobs (runner/schedules/handle.py) -----------------------------------------
    def schedule(self, template: str, *, name: str, every: str | float | None = None, cron: str | None = None,
                 tz: str = "UTC", catch_up: str = "latest", max_concurrent: int = 1,
                 expected_interval: str | float | None = None, **job: Any) -> "Schedule":
        """Fire a job of ``template`` ``every`` interval (``15m``, ``90s``) or on a ``cron``
        expression in ``tz``; ``job`` takes submit's keywords. Validated like submit, plus
        the timing; raises TemplateNotFound or InvalidSchedule, storing nothing."""
        from runner.schedules.handle import create_schedule

        return create_schedule(self, template, name=name, every=every, cron=cron, tz=tz, catch_up=catch_up,
                               max_concurrent=max_concurrent, expected_interval=expected_interval, **job)

    def schedules(self) -> list["ScheduleInfo"]:
        """This org's schedules: template, next run, last run (job, state, age), overdue."""
        from runner.schedules.handle import list_schedules

        return list_schedules(self)

    def get_schedule(self, name: str) -> "Schedule":
        """A handle on the schedule ``name``; raises ScheduleNotFound."""
        from runner.schedules.handle import Schedule

        handle = Schedule(self, name)
        handle.spec()
        return handle


