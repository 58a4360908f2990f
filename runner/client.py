"""The Python client: submit jobs, follow them, read their results.

``Client`` is what users, the CLI and (later) the HTTP API call. It validates params
against the template *before* anything is written or queued, writes the job record,
and sends one task by name. It never imports ``workers/``.
"""

from __future__ import annotations

import secrets
import time
from functools import cached_property
from pathlib import Path
from typing import Any

from celery import Celery

from runner.artifacts import ArtifactIO, artifact_prefix
from runner.config import Settings, get_settings
from runner.dispatch import make_celery, send_partition, send_resume, stop_tasks
from runner.errors import IllegalTransition, InvalidParams, JobCancelled, JobFailed, JobTimedOut
from runner.fleet import unserved_queues
from runner.lifecycle import end_job
from runner.models import JobState, JobStatus, LogLine
from runner.params import validate_params
from runner.registry import Template, get_template, load_plugins, templates
from runner.storage import Storages
from runner.store import StatusStore

__all__ = ["Client", "Job"]

_ERRORS = {JobState.FAILED: JobFailed, JobState.TIMED_OUT: JobTimedOut, JobState.CANCELLED: JobCancelled}


def describe_error(status: JobStatus) -> str:
    """One line saying why a job ended without a result."""
    error = status.error or {}
    where = f"piece {error['piece']}: " if error.get("piece") is not None else ""
    stage = f"[{error['stage']}] " if error.get("stage") else ""
    kind = f"{error['type']}: " if error.get("type") else ""
    return f"job {status.id} {status.state.value}: {stage}{where}{kind}{error.get('message', 'no error recorded')}"


class Job:
    """A handle on one job. Cheap to create; every method reads the store afresh."""

    def __init__(self, client: "Client", job_id: str) -> None:
        self.client = client
        self.id = job_id

    def __repr__(self) -> str:
        return f"Job({self.id!r})"

    def status(self) -> JobStatus:
        """The job's record: state, counters, timestamps, error. Raises JobNotFound."""
        return self.client.store.get(self.id, self.client.org)

    # -- the staged flow --------------------------------------------------------------
    def set_datasource(
        self, source: str | None = None, destination: str | None = None, inputs: dict[str, str] | None = None
    ) -> "Job":
        """Set the draft job's source, destination and/or named inputs (checked at once)."""
        fields: dict[str, Any] = {}
        if source is not None:
            fields["source"] = self.client.storages.check(source)
        if destination is not None:
            fields["destination"] = self.client.storages.check(destination)
        if inputs is not None:
            fields["inputs"] = {name: self.client.storages.check(uri) for name, uri in inputs.items()}
        self._update_draft(fields)
        return self

    def set_params(
        self,
        app: dict[str, Any] | None = None,
        partitioner: dict[str, Any] | None = None,
        assembler: dict[str, Any] | None = None,
    ) -> "Job":
        """Set the draft job's params; validated at once (raises InvalidParams)."""
        current = self.status()
        params = dict(current.params)
        for kind, section in (("app", app), ("partitioner", partitioner), ("assembler", assembler)):
            if section is not None:
                params[kind] = section
        validate_params(get_template(current.template), params)
        self._update_draft({"params": params})
        return self

    def run(
        self,
        task_timeout: float | None = None,
        job_timeout: float | None = None,
        test: bool = False,
        max_retries: int | None = None,
    ) -> "Job":
        """Queue the draft job. Raises InvalidParams (nothing queued) or IllegalTransition."""
        current = self.status()
        if current.state is not JobState.DRAFT:
            raise IllegalTransition(f"job {self.id} is {current.state.value}; only a draft job can be run")
        tmpl = get_template(current.template)
        params = validate_params(tmpl, current.params)
        self.client._check_inputs(tmpl, current.inputs)
        self.client._queue(self.id, tmpl, params, current.queue, task_timeout, job_timeout, max_retries, test)
        return self

    def _update_draft(self, fields: dict[str, Any]) -> None:
        state = self.status().state
        if state is not JobState.DRAFT:
            raise IllegalTransition(f"job {self.id} is {state.value}; only a draft job can be changed")
        self.client.store.update(self.id, **fields)

    # -- following a job ---------------------------------------------------------------
    def wait(self, timeout: float | None = None, progress: bool = False) -> Any:
        """Block until the job ends and return its assembled result.

        Raises JobFailed, JobTimedOut or JobCancelled (carrying the final status), or
        TimeoutError when ``timeout`` seconds pass first (the job keeps running).
        """
        give_up = None if timeout is None else time.monotonic() + timeout
        cursor = "$"
        bar = _ProgressBar(self.id) if progress else None
        try:
            while True:
                status = self.status()
                if bar:
                    bar.update(status)
                if status.is_final:
                    break
                remaining = None if give_up is None else give_up - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"job {self.id} still {status.state.value} after waiting {timeout}s")
                block = 500 if remaining is None else max(1, min(500, int(remaining * 1000)))
                events = self.client.store.read_events(self.id, cursor, block_ms=block)
                if events:
                    cursor = events[-1][0]
        finally:
            if bar:
                bar.close()
        return self.result(status)

    def result(self, status: JobStatus | None = None) -> Any:
        """The assembled result of a completed job; raises like :meth:`wait` otherwise."""
        status = status or self.status()
        if status.state is JobState.COMPLETED:
            return self.client.store.get_result(self.id)
        if status.state in _ERRORS:
            raise _ERRORS[status.state](describe_error(status), status)
        raise IllegalTransition(f"job {self.id} is still {status.state.value}; wait() for it first")

    def cancel(self) -> bool:
        """Cancel the job. Returns False (and changes nothing) if it had already ended."""
        return self.client.cancel(self.id)

    def retry_failed(self, job_timeout: float | None = None) -> "Job":
        """Re-run only the failed pieces of a failed or timed-out job, then assemble."""
        return self.client.retry_failed(self.id, job_timeout)

    def events(self, after: str = "0-0") -> list[tuple[str, dict[str, str]]]:
        """The job's events (state changes, progress) after the event id ``after``."""
        return self.client.store.read_events(self.id, after)

    def logs(self, piece: int | None = None, after: str = "-", block_ms: int | None = None) -> list[LogLine]:
        """The job's log lines in order — user code's ``ctx.log`` lines and Runner's own
        lifecycle lines (started, retried with the reason, failed with the traceback).
        With ``piece``, only the lines about that piece."""
        self.status()  # org check
        raw = self.client.store.logs(self.id, after=after, block_ms=block_ms)
        lines = [LogLine.model_validate({"id": line_id, **fields}) for line_id, fields in raw]
        return [line for line in lines if piece is None or line.concerns(piece)]

    # -- artifacts ---------------------------------------------------------------------
    @property
    def _artifacts(self) -> ArtifactIO:
        self.status()  # org check
        return ArtifactIO(self.client.storages, artifact_prefix(self.client.settings, self.id))

    def artifacts(self) -> list[str]:
        """Names of the job's artifacts (``output.json`` once it has ended)."""
        return self._artifacts.list()

    def read_artifact(self, name: str) -> bytes:
        """One artifact's content; raises SourceError if there is none by that name."""
        return self._artifacts.read_file(name)

    def download_artifacts(self, directory: str | Path) -> list[Path]:
        """Copy every artifact under ``directory``; returns the local paths."""
        io, paths = self._artifacts, []
        for name in io.list():
            target = Path(directory) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(io.read_file(name))
            paths.append(target)
        return paths


class _ProgressBar:
    """A rich progress bar driven by the job's counters."""

    def __init__(self, job_id: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[state]}"), TimeElapsedColumn(), transient=False,
        )
        self.task = self.progress.add_task(f"job {job_id}", total=None, state="queued")
        self.progress.start()

    def update(self, status: JobStatus) -> None:
        self.progress.update(
            self.task, total=status.pieces_total, completed=status.pieces_done, state=status.state.value
        )

    def close(self) -> None:
        self.progress.stop()


class Client:
    """Submit and follow jobs on a Runner fleet.

    With no arguments everything comes from ``RUNNER_*`` settings; ``org`` scopes every
    read and write. Modules in ``include`` (and ``RUNNER_INCLUDE``) are imported so their
    templates can be validated here.
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
        is written or queued.
        """
        tmpl = get_template(template)
        validated = validate_params(tmpl, params)
        record = self._record(tmpl, name, self.storages.check(source), self.storages.check(destination),
                              retention_hours)
        record["inputs"] = self._check_inputs(tmpl, inputs)
        record["warnings"] = self._queue_warnings(record["queue"])
        self._queue(record["id"], tmpl, validated, record["queue"], task_timeout, job_timeout, max_retries, test,
                    record=record)
        return Job(self, record["id"])

    def create(self, template: str, name: str | None = None, retention_hours: float | None = None) -> Job:
        """Create a draft job to configure step by step (``set_datasource``, ``set_params``, ``run``)."""
        tmpl = get_template(template)
        record = self._record(tmpl, name, "bypass:", "bypass:", retention_hours)
        record["state"] = JobState.DRAFT.value
        self.store.create(record, expire_seconds=record["retention_hours"] * 3600)
        return Job(self, record["id"])

    def get(self, job_id: str) -> Job:
        """A handle on an existing job of this org; raises JobNotFound."""
        self.store.get(job_id, self.org)
        return Job(self, job_id)

    def jobs(self, state: JobState | str | None = None, limit: int = 50) -> list[JobStatus]:
        """This org's jobs, newest first, optionally only those in ``state``."""
        return self.store.list_jobs(self.org, JobState(state) if state else None, limit)

    def templates(self) -> list[Template]:
        """Every template this process knows (built-ins, includes, plugins)."""
        return templates()

    def cancel(self, job_id: str) -> bool:
        """Cancel a job of this org. False (nothing changed) if it had already ended."""
        status = self.store.get(job_id, self.org)
        if status.is_final:
            return False
        moved = end_job(self.store, self.storages, self.settings, job_id, JobState.CANCELLED,
                        error={"stage": "cancel", "type": "JobCancelled", "message": "cancelled by request"})
        if moved:
            stop_tasks(self.celery, self.store.tasks(job_id))
        return moved

    def delete(self, job_id: str) -> None:
        """Delete a job of this org: cancel it if it has not ended, then remove its record,
        pieces, results, logs, events and artifacts. Raises JobNotFound."""
        self.cancel(job_id)
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
        return Job(self, job_id)

    # -- internals ---------------------------------------------------------------------
    def _queue_warnings(self, queue: str) -> list[str]:
        """Say so when no live worker serves the job's queues, instead of hanging silently."""
        return [
            f"no live worker consumes queue {q!r}: the job waits until one starts "
            f"(runner worker --queues {q})"
            for q in unserved_queues(self.store, [self.settings.control_queue, queue])
        ]

    def _check_inputs(self, tmpl: Template, inputs: dict[str, str] | None) -> dict[str, str]:
        """The job's named inputs, checked against the template's declared names."""
        inputs = dict(inputs or {})
        errors = [(f"inputs.{name}", "required input missing") for name in tmpl.inputs if name not in inputs]
        declared = ", ".join(tmpl.inputs) or "none"
        errors += [(f"inputs.{name}", f"unknown input; template {tmpl.ref} declares: {declared}")
                   for name in inputs if name not in tmpl.inputs]
        if errors:
            raise InvalidParams(errors)
        return {name: self.storages.check(uri) for name, uri in inputs.items()}

    def _record(
        self, tmpl: Template, name: str | None, source: str, destination: str, retention_hours: float | None
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

    def _queue(
        self,
        job_id: str,
        tmpl: Template,
        params: dict[str, Any],
        queue: str,
        task_timeout: float | None,
        job_timeout: float | None,
        max_retries: int | None,
        test: bool,
        record: dict[str, Any] | None = None,
    ) -> None:
        """Queue a job: a new one from ``record``, or the stored draft ``job_id`` when None."""
        now = time.time()
        base = record or self.store.fields(job_id, "task_timeout", "job_timeout", "max_retries", "retention_hours")
        timing = {
            "params": params,
            "test": bool(test),
            "task_timeout": float(task_timeout or base["task_timeout"]),
            "job_timeout": float(job_timeout or base["job_timeout"]),
            "max_retries": int(max_retries if max_retries is not None else base["max_retries"]),
            "queued_at": now,
        }
        for key in ("task_timeout", "job_timeout"):
            if timing[key] <= 0:
                raise ValueError(f"{key} must be > 0 seconds, got {timing[key]}")
        timing["deadline"] = now + timing["job_timeout"]
        expire = timing["job_timeout"] + base["retention_hours"] * 3600
        if record is None:
            self.store.transition(job_id, JobState.QUEUED, **timing)
            self.store.keep_for(job_id, expire)
        else:
            self.store.create({**record, **timing}, expire_seconds=expire)  # type: ignore[dict-item]
        self.store.set_deadline(job_id, timing["deadline"])
        try:
            task_id = send_partition(self.celery, job_id, tmpl.ref, self.settings.control_queue, timing["deadline"])
            self.store.add_tasks(job_id, [task_id])
        except Exception as exc:
            self.store.transition(
                job_id, JobState.FAILED, strict=False, finished_at=time.time(),
                error={"stage": "submit", "type": type(exc).__name__, "message": f"cannot reach the broker: {exc}"},
            )
            raise
