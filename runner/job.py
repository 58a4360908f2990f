"""A handle on one job: the staged flow (set the data source and params, run), following
it (status, wait, events, logs) and reading what it produced (result, artifacts).

Every method reads the store afresh, so a ``Job`` is cheap and never stale; a draft's
edits go through :mod:`runner.admission` (the one writer of drafts), everything else it
changes through its :class:`~runner.client.Client`'s public methods.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import admission
from runner.admission import JobRequest
from runner.artifacts import ArtifactIO, artifact_prefix
from runner.errors import JobCancelled, JobFailed, JobNotFinished, JobNotFound, JobTimedOut
from runner.models import ErrorInfo, JobState, JobStatus, LogLine

if TYPE_CHECKING:
    from runner.client import Client

__all__ = ["Job", "describe_error"]

_ERRORS = {JobState.FAILED: JobFailed, JobState.TIMED_OUT: JobTimedOut, JobState.CANCELLED: JobCancelled}


def describe_error(status: JobStatus) -> str:
    """One line saying why a job ended without a result."""
    info = status.error_info or ErrorInfo()
    return f"job {status.id} {status.state.value}: {info.describe()}"

class Job:
    """A handle on one job. Cheap to create; every method reads the store afresh."""

    def __init__(self, client: "Client", job_id: str, *, known: bool = False) -> None:
        self.client = client
        self.id = job_id
        self.known = known  # the job existed when this handle was made (or last read)

    def __repr__(self) -> str:
        return f"Job({self.id!r})"

    def status(self) -> JobStatus:
        """The job's record: state, counters, timestamps, error, its metrics so far.
        Raises JobNotFound."""
        status = self.client.store.get(self.id, self.client.org)
        status.metrics = self.client.store.metric_series.read(self.id)
        self.known = True
        return status

    # -- the staged flow --------------------------------------------------------------
    def set_datasource(
        self, source: str | None = None, destination: str | None = None, inputs: dict[str, str] | None = None
    ) -> "Job":
        """Set the draft job's source, destination and/or named inputs (checked at once)."""
        self._edit(JobRequest(source=source, destination=destination, inputs=inputs))
        return self

    def set_params(
        self,
        app: dict[str, Any] | None = None,
        partitioner: dict[str, Any] | None = None,
        assembler: dict[str, Any] | None = None,
    ) -> "Job":
        """Set the draft job's params; validated at once (raises InvalidParams)."""
        sections = {kind: section for kind, section in (("app", app), ("partitioner", partitioner),
                                                         ("assembler", assembler)) if section is not None}
        self._edit(JobRequest(params=sections))
        return self

    def run(
        self,
        task_timeout: float | None = None,
        job_timeout: float | None = None,
        test: bool = False,
        max_retries: int | None = None,
    ) -> "Job":
        """Queue the draft job. Raises InvalidParams (nothing queued) or IllegalTransition."""
        self.client.run(self.id, task_timeout=task_timeout, job_timeout=job_timeout, test=test,
                        max_retries=max_retries)
        return self

    def _edit(self, changes: JobRequest) -> None:
        """A draft edit, through the one owner of drafts (:mod:`runner.admission`)."""
        admission.edit_draft(self.client.services, self.client.org, self.id, changes)

    # -- following a job ---------------------------------------------------------------
    def wait(self, timeout: float | None = None, progress: bool = False) -> Any:
        """Block until the job ends and return its assembled result.

        Raises JobFailed, JobTimedOut or JobCancelled (carrying the final status), or
        TimeoutError when ``timeout`` seconds pass first (the job keeps running).
        """
        give_up = None if timeout is None else time.monotonic() + timeout
        if not progress:
            return self._wait_for_ending(timeout, give_up)
        bar = _ProgressBar(self.id)
        try:
            status, cursor = self._snapshot()
            while True:
                bar.update(status)
                if status.is_final:
                    break
                remaining = None if give_up is None else give_up - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"job {self.id} still {status.state.value} after waiting {timeout}s")
                block = 500 if remaining is None else max(1, min(500, int(remaining * 1000)))
                self.client.store.read_events(self.id, cursor, block_ms=block)  # returns at the next event
                status, cursor = self._snapshot()  # the bar shows every change
        finally:
            bar.close()
        return self.result(status)

    def _wait_for_ending(self, timeout: float | None, give_up: float | None) -> Any:
        """``wait`` without a progress bar: read the record (and result) once, block on the
        job's ending — woken by the final move itself, not by each event on the way — and
        return the result it carries (a small one), else read them once more. The record
        is read again every 500 ms of quiet (a job that vanished is told apart from a long one)."""
        status, result, cursor = self._read(self.client.store.jobs.outcome)
        while not status.is_final:
            remaining = None if give_up is None else give_up - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"job {self.id} still {status.state.value} after waiting {timeout}s")
            block = 500 if remaining is None else max(1, min(500, int(remaining * 1000)))
            ending = self.client.store.jobs.wait_ending(self.id, cursor, block)
            if ending and ending.get("state") == JobState.COMPLETED.value and "result" in ending:
                return json.loads(ending["result"])
            status, result, cursor = self._read(self.client.store.jobs.outcome)
        if status.state is JobState.COMPLETED:
            return result
        return self.result(status)  # raises what the ending says

    def _snapshot(self) -> tuple[JobStatus, str]:
        """The record and the id of its newest event (see ``StatusStore.snapshot``)."""
        return self._read(self.client.store.snapshot)

    def _read(self, read: Any) -> Any:
        """``read(job id, org)``, a read of the record; a job that vanished while this
        handle knew it is told apart from one that never was."""
        try:
            snapshot = read(self.id, self.client.org)
        except JobNotFound:
            if not self.known:
                raise
            raise JobNotFound(f"job {self.id} vanished from the store while it ran: it was deleted, or the "
                              f"store lost its data (store lost: Redis restarted without persistence, or "
                              f"flushed); submit it again") from None
        self.known = True
        return snapshot

    def result(self, status: JobStatus | None = None) -> Any:
        """The assembled result of a completed job; raises like :meth:`wait` otherwise."""
        status = status or self.status()
        if status.state is JobState.COMPLETED:
            return self.client.store.get_result(self.id)
        if status.state in _ERRORS:
            raise _ERRORS[status.state](describe_error(status), status)
        raise JobNotFinished(f"job {self.id} is still {status.state.value}; wait() for it first")

    def cancel(self) -> bool:
        """Cancel the job. Returns False (and changes nothing) if it had already ended."""
        return self.client.cancel(self.id)

    def retry_failed(self, job_timeout: float | None = None) -> "Job":
        """Re-run only the failed pieces of a failed or timed-out job, or of a partial
        completion (``status().partial``), then assemble."""
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

