"""Job states, the table of legal transitions, and the job record users read.

Final states are final for every writer but one: ``retry_failed()`` may reopen a
``failed`` or ``timed_out`` job, or a ``completed`` one that went without some pieces
(``partial``: see ``runner/partial.py``), to re-run only its failed pieces.

The transition table is the only authority on state changes: the store checks every
write against it atomically, so two workers racing to finish, fail or time out a job
cannot both win, and an illegal change is refused instead of silently applied.
"""

from __future__ import annotations

import enum
import math
import time
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationError, computed_field

from runner.errors import InvalidParams

__all__ = ["JobState", "JobStatus", "ErrorInfo", "MetricSummary", "LogLine", "RunOptions", "WorkerInfo", "TRANSITIONS",
           "FINAL_STATES", "allowed_sources"]


class JobState(enum.StrEnum):
    """Where a job is in its life. The last four are final."""

    DRAFT = "draft"
    QUEUED = "queued"
    PARTITIONING = "partitioning"
    RUNNING = "running"
    ASSEMBLING = "assembling"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT})

_ENDINGS = {JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT}

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.DRAFT: frozenset({JobState.QUEUED, JobState.CANCELLED, JobState.FAILED}),
    JobState.QUEUED: frozenset({JobState.PARTITIONING} | _ENDINGS),
    JobState.PARTITIONING: frozenset({JobState.RUNNING} | _ENDINGS),
    JobState.RUNNING: frozenset({JobState.ASSEMBLING} | _ENDINGS),
    JobState.ASSEMBLING: frozenset({JobState.COMPLETED} | _ENDINGS),
    # retry_failed() reopens a partial completion (pieces failed, within the job's
    # tolerance) to run its failed pieces, and a failed or timed-out job: back to queued
    # when the partitioner never finished, else straight to running its failed pieces.
    JobState.COMPLETED: frozenset({JobState.RUNNING}),
    JobState.FAILED: frozenset({JobState.QUEUED, JobState.RUNNING}),
    JobState.CANCELLED: frozenset(),
    JobState.TIMED_OUT: frozenset({JobState.QUEUED, JobState.RUNNING}),
}


def allowed_sources(target: JobState) -> list[JobState]:
    """The states from which ``target`` may be entered."""
    return [state for state, targets in TRANSITIONS.items() if target in targets]


class MetricSummary(BaseModel):
    """One metric of a job so far: count, and for numbers sum/min/max/mean; its last value
    and its latest ``[step, value]`` points (the oldest dropped past the cap)."""

    count: int
    sum: float | None = None
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    last: Any = None
    series: list[tuple[float, Any]] = Field(default_factory=list)


class ErrorInfo(BaseModel, extra="allow"):
    """Why a job ended without a result, as its record stores it (a plain object, so the
    record's format and the API's output stay what they were): the stage, the piece (if
    one), the exception's type and message, and whatever else the writer knew
    (``traceback``, ``attempts``, ``pieces``). :meth:`describe` is the one way to say it."""

    stage: str | None = None
    piece: int | None = None
    type: str | None = None
    message: str | None = None

    def describe(self) -> str:
        """``[stage] piece N: Type: message`` — each part only when known."""
        stage = f"[{self.stage}] " if self.stage else ""
        piece = f"piece {self.piece}: " if self.piece is not None else ""
        kind = f"{self.type}: " if self.type else ""
        return f"{stage}{piece}{kind}{self.message if self.message is not None else 'no error recorded'}"

    def as_dict(self) -> dict[str, Any]:
        """The record's form: the known fields only."""
        return self.model_dump(exclude_none=True)


class JobStatus(BaseModel):
    """A snapshot of one job's record in the status store."""

    id: str
    org: str
    template: str
    state: JobState
    name: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    source: str = "bypass:"
    destination: str = "bypass:"
    inputs: dict[str, str] = Field(default_factory=dict)
    test: bool = False
    task_timeout: float
    job_timeout: float
    max_retries: int
    retention_hours: float
    queue: str
    created_at: datetime
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    deadline: datetime | None = None
    pieces_total: int | None = None
    pieces_done: int = 0
    pieces_failed: int = 0
    min_success_ratio: float | None = None  # partial success (runner/partial.py): the share of pieces that must
    max_failed_pieces: int | None = None  # succeed, or how many may fail for good (one of the two, or neither)
    partial: bool = False  # completed without some pieces (pieces_failed of them), within that tolerance
    batches_total: int | None = None
    error: dict[str, Any] | None = None
    result_summary: dict[str, Any] | None = None
    warnings: list[str] = Field(default_factory=list)
    schedule: str | None = None  # the schedule that fired this job (runner/schedules/sweep.py)
    due_at: datetime | None = None  # the due time it fired for
    settings: dict[str, Any] | None = None  # an attached job's settings (free JSON; runner/attached_jobs.py)
    attached: dict[str, Any] | None = None  # an attached job's process: dead_seconds, host, pid, started_at
    seen_at: datetime | None = None  # an attached job's last heartbeat
    metrics: dict[str, "MetricSummary"] = Field(
        default_factory=dict, description="Each metric's summary and latest series, live: in one job's view (GET /v1/jobs/{id}, "
                                           "runner status), not in lists (runner/store/metric_series.py).")

    @property
    def is_final(self) -> bool:
        return self.state.is_final

    @property
    def error_info(self) -> ErrorInfo | None:
        """The recorded error as an :class:`ErrorInfo` (None when there is none)."""
        return ErrorInfo.model_validate(self.error) if self.error else None

    @property
    def duration(self) -> float | None:
        """Seconds from queued to finished (or to now, while running)."""
        if self.queued_at is None:
            return None
        end = self.finished_at or datetime.now(self.queued_at.tzinfo)
        return (end - self.queued_at).total_seconds()


class LogLine(BaseModel):
    """One line of a job's log: from user code (``ctx.log``) or Runner itself (``runner``)."""

    id: str
    t: datetime
    level: str
    source: str
    msg: str
    piece: int | None = None
    start: int | None = None
    stop: int | None = None

    def concerns(self, piece: int) -> bool:
        """Whether the line is about ``piece``: logged by it, or by the task that ran it."""
        if self.piece is not None:
            return self.piece == piece
        return self.start is not None and self.stop is not None and self.start <= piece < self.stop

    def render(self) -> str:
        where = f"piece {self.piece}" if self.piece is not None else (
            f"pieces {self.start}..{self.stop - 1}" if self.start is not None and self.stop is not None else "job")
        return f"{self.t:%H:%M:%S.%f}"[:-3] + f" {self.level:<7} {self.source:<11} {where:<16} {self.msg}"


class WorkerInfo(BaseModel):
    """One worker as its heartbeat describes it (``seen``: when, epoch seconds), plus what
    it is running when asked (``active``, from Celery's remote control)."""

    hostname: str
    queues: list[str] = Field(default_factory=list)
    concurrency: int = 1
    pid: int | None = None
    templates: list[str] = Field(default_factory=list)  # name@version of each template it registered
    file_roots: list[str] | None = None  # where its file:// URIs may point ([]: anywhere; None: not said)
    artifacts: str | None = None  # its artifacts location (RUNNER_ARTIFACTS_URL, else <data dir>/artifacts)
    seen: float = 0.0
    active: list[dict[str, Any]] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def seen_seconds_ago(self) -> float:
        return round(max(0.0, time.time() - self.seen), 1)

    def serves(self, queue: str) -> bool:
        return queue in self.queues


_OPTION_HINTS = {
    "min_success_ratio": "must be a number from 0 to 1: the share of pieces that must succeed (e.g. 0.9)",
    "max_failed_pieces": "must be a whole number >= 0: how many pieces may fail for good (e.g. 5)",
}


def _option_error(error: Any) -> tuple[str, str]:
    """One bad option as ``(field, what is wrong and the value)``, in its own words if it has some."""
    field = ".".join(map(str, error["loc"]))
    return field, f"{_OPTION_HINTS.get(field, error['msg'])}, got {error.get('input')!r}"


class RunOptions(BaseModel):
    """How a job runs once queued; ``None`` keeps the template's (else the settings') value.
    ``min_success_ratio`` and ``max_failed_pieces`` are one tolerance, said two ways: at
    most one of them is given (``runner/partial.py``)."""

    task_timeout: float | None = Field(None, gt=0, allow_inf_nan=False)
    job_timeout: float | None = Field(None, gt=0, allow_inf_nan=False)
    max_retries: int | None = Field(None, ge=0, le=100)
    test: bool = Field(False, strict=True)
    min_success_ratio: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    max_failed_pieces: int | None = Field(None, ge=0)

    @classmethod
    def checked(cls, limit: float = math.inf, **values: Any) -> "RunOptions":
        """The options, or :class:`InvalidParams` naming each bad one and its value
        (timeouts must be finite, > 0 and at most ``limit`` seconds)."""
        try:
            options = cls.model_validate(values)
        except ValidationError as exc:
            raise InvalidParams([_option_error(e) for e in exc.errors()]) from None
        too_long = [(field, f"must be at most {limit:g} seconds (RUNNER_MAX_TIMEOUT_SECONDS), got {value:g}")
                    for field in ("task_timeout", "job_timeout") if (value := getattr(options, field)) and value > limit]
        if too_long:
            raise InvalidParams(too_long)
        if options.min_success_ratio is not None and options.max_failed_pieces is not None:
            raise InvalidParams([("max_failed_pieces", "give min_success_ratio or max_failed_pieces, not both: "
                                                       "drop one of them")])
        return options
