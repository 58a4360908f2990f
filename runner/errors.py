"""Every error Runner raises on purpose roots in :class:`RunnerError`.

::

    RunnerError
    ├── ConfigError            a RUNNER_* setting is unknown or invalid
    ├── TemplateError          a template, app, partitioner or assembler is ill-defined
    │   └── TemplateNotFound   no template (or function) by that name / version
    ├── InvalidParams          params fail validation; lists every bad field by path
    │   └── InvalidSchedule    a schedule's timing or job fails validation at create
    ├── ScheduleNotFound       no schedule by that name in this org
    ├── SourceError            a source / destination URI cannot be read or written
    ├── JobNotFound            no such job in this org (or it expired)
    ├── IllegalTransition      a state change the state machine forbids
    ├── QuotaExceeded          the org is at a quota (``runner orgs``): e.g. max_queued_jobs
    ├── JobNotFinished         a result was asked of a job that has not ended
    ├── ClusterError           the embedded Redis / worker pool could not start
    ├── EngineError            an executable engine is ill-formed, or its process failed
    ├── SoftTimeLimitExceeded  raised inside a piece at ``task_timeout``; catch it to clean up
    └── JobError               a job ended without a result
        ├── JobFailed          a piece, the partitioner or the assembler failed
        ├── JobTimedOut        the job's deadline passed
        └── JobCancelled       somebody cancelled it

Messages name what was wrong, the offending value, and the fix when one is known.
"""

from __future__ import annotations

from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded as _CelerySoftTimeLimit

__all__ = [
    "RunnerError",
    "ConfigError",
    "TemplateError",
    "TemplateNotFound",
    "InvalidParams",
    "InvalidSchedule",
    "ScheduleNotFound",
    "SourceError",
    "JobNotFound",
    "IllegalTransition",
    "QuotaExceeded",
    "JobNotFinished",
    "ClusterError",
    "EngineError",
    "SoftTimeLimitExceeded",
    "JobError",
    "JobFailed",
    "JobTimedOut",
    "JobCancelled",
]


class RunnerError(Exception):
    """Root of every error Runner raises on purpose.

    :attr:`public` is its message for a remote caller (the HTTP API): the same words
    without what only the installation's operator can see or act on — the server's
    paths, command-line options such as ``-I MODULE``. It is the message itself unless a
    raise site said otherwise with :meth:`for_remote`."""

    _public: str | None = None

    @property
    def public(self) -> str:
        return self._public if self._public is not None else str(self)

    def for_remote(self, public: str) -> "RunnerError":
        """Set :attr:`public`; returns the error (``raise SourceError(…).for_remote(…)``)."""
        self._public = public
        return self


class ConfigError(RunnerError):
    """A ``RUNNER_*`` setting is unknown or has an invalid value."""


class TemplateError(RunnerError):
    """A template or one of its functions is ill-defined or redefined."""


class TemplateNotFound(TemplateError):
    """No template, app, partitioner or assembler is registered under that name."""


class InvalidParams(RunnerError):
    """Params failed validation. ``errors`` lists ``(path, message)`` for every bad field."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        lines = "\n".join(f"  {path}: {message}" for path, message in errors)
        super().__init__(f"invalid params ({len(errors)} error{'s' if len(errors) != 1 else ''}):\n{lines}")


class InvalidSchedule(InvalidParams):
    """A schedule failed validation at create: its cron or interval, time zone, name, or
    the job it would submit. ``errors`` lists ``(field, message)``; nothing was stored."""

    def __init__(self, errors: list[tuple[str, str]]):
        super().__init__(errors)
        lines = "\n".join(f"  {path}: {message}" for path, message in errors)
        self.args = (f"invalid schedule ({len(errors)} error{'s' if len(errors) != 1 else ''}):\n{lines}",)


class ScheduleNotFound(RunnerError):
    """No schedule by that name in this org (``runner schedules`` lists them)."""


class SourceError(RunnerError):
    """A source or destination URI cannot be resolved, read or written."""


class JobNotFound(RunnerError):
    """No job with that id exists in this org (it may have expired)."""


class IllegalTransition(RunnerError):
    """A job state change that the state machine forbids; ``state`` is the job's state
    when it is known (the API returns it with its 409)."""

    def __init__(self, message: str, state: str | None = None) -> None:
        super().__init__(message)
        self.state = state


class QuotaExceeded(RunnerError):
    """The org is at one of its quotas (``runner orgs``), so nothing was written or
    queued. ``quota`` names it (``max_queued_jobs``); ``retry_after`` is a guess in
    seconds at when trying again may succeed (the API's ``Retry-After``)."""

    def __init__(self, message: str, quota: str, org: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.quota, self.org, self.retry_after = quota, org, retry_after


class JobNotFinished(RunnerError):
    """The job's result was asked for while it is still queued or running: wait() first."""


class SoftTimeLimitExceeded(RunnerError, _CelerySoftTimeLimit):
    """A piece ran past ``task_timeout``. Raised inside the app so it can clean up; a hard
    stop follows if it keeps running. Also a Celery ``SoftTimeLimitExceeded``, so code
    written against Celery's class catches it too."""

    __str__ = Exception.__str__  # billiard's says "SoftTimeLimitExceeded('…',)": the type twice in every message


class ClusterError(RunnerError):
    """The embedded cluster (Redis server or worker pool) failed to start."""


class EngineError(RunnerError):
    """An executable engine folder, manifest or template is ill-formed, or its process
    exited with a non-zero status (the message says ``exit status N`` and stderr's tail)."""


class JobError(RunnerError):
    """A job ended without a result. ``status`` is its final :class:`JobStatus`."""

    def __init__(self, message: str, status: Any = None):
        super().__init__(message)
        self.status = status

    @property
    def error(self) -> dict[str, Any] | None:
        """The job's recorded error (piece, type, message, traceback), if any."""
        return getattr(self.status, "error", None)


class JobFailed(JobError):
    """A piece (after its retries), the partitioner or the assembler failed."""


class JobTimedOut(JobError):
    """The job's deadline (``job_timeout``) passed before it completed."""


class JobCancelled(JobError):
    """The job was cancelled."""
