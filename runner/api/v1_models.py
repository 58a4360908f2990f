"""Request and response bodies of Runner's own routes (``/v1``).

Bodies take the ``Client``'s arguments under the same names and refuse unknown fields
(a misspelt ``job_timout`` would otherwise be silently ignored). There is no ``org``
field anywhere: the org is always the caller's key's.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from runner.models import JobStatus

__all__ = ["JobCreate", "JobCreated", "JobPatch", "JobRun", "JobRetry", "JobPage", "JobResult", "LogPage", "ArtifactList",
           "ErrorBody", "ERROR_RESPONSES"]

# Generous upper bounds: they stop absurd values (and overflows) at the door.
_SECONDS = Field(None, gt=0, le=366 * 24 * 3600)
Params = dict[str, dict[str, Any]]
Uri = Field(None, min_length=1, max_length=4096)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobCreate(_Body):
    """``Client.submit`` (or ``Client.create`` with ``draft: true``) as JSON; with
    ``attach: true``, a job your own process runs (``Client.create_attached``)."""

    template: str | None = Field(None, min_length=1, max_length=200,
                                 description="`name@version`, or `name` for the newest (required unless `attach`).")
    source: str = Field("bypass:", min_length=1, max_length=4096, description="Input URI.")
    destination: str = Field("bypass:", min_length=1, max_length=4096, description="Output URI.")
    params: Params | None = Field(None, description="`{partitioner: {...}, app: {...}, assembler: {...}}`.")
    inputs: dict[str, str] | None = Field(None, description="The template's named inputs bound to URIs.")
    name: str | None = Field(None, max_length=200)
    task_timeout: float | None = _SECONDS
    job_timeout: float | None = _SECONDS
    max_retries: int | None = Field(None, ge=0, le=100)
    retention_hours: float | None = Field(None, gt=0, le=24 * 366)
    test: bool = Field(False, description="Run only the template's first few pieces.")
    min_success_ratio: float | None = Field(None, description="Partial success: the share of pieces (0-1) that "
                                                              "must succeed; the job completes `partial` without "
                                                              "the others. Not with `max_failed_pieces`.")
    max_failed_pieces: int | None = Field(None, description="Partial success: how many pieces may fail for good. "
                                                            "Not with `min_success_ratio`.")
    draft: bool = Field(False, description="Create a draft to configure with PATCH and start with POST .../run.")
    attach: bool = Field(False, description="A job your own process runs (runner.attach.Job): it waits queued "
                                            "until the process starts it; the answer carries its own `apiKey`.")
    settings: dict[str, Any] | None = Field(None, description="An attached job's settings (free JSON).")


class JobCreated(JobStatus):
    """The new job; for an attached job also its own key, shown this once."""

    apiKey: str | None = Field(None, description="An attached job's own API key (scope `job:<id>`): shown once.")


class JobPatch(_Body):
    """A draft's settings; each one given replaces the stored one (params per section)."""

    source: str | None = Uri
    destination: str | None = Uri
    inputs: dict[str, str] | None = None
    params: Params | None = None
    name: str | None = Field(None, max_length=200)


class JobRun(_Body):
    task_timeout: float | None = _SECONDS
    job_timeout: float | None = _SECONDS
    max_retries: int | None = Field(None, ge=0, le=100)
    test: bool = False


class JobRetry(_Body):
    job_timeout: float | None = _SECONDS


class JobPage(BaseModel):
    items: list[JobStatus]
    total: int
    limit: int
    offset: int


class JobResult(BaseModel):
    result: Any = Field(description="The assembled output of the completed job.")


class LogLineOut(BaseModel):
    id: str
    t: str
    level: str
    source: str
    msg: str
    piece: int | None = None
    start: int | None = None
    stop: int | None = None


class LogPage(BaseModel):
    items: list[LogLineOut]
    next: str = Field(description="Pass as `after` to get only newer lines.")


class ArtifactList(BaseModel):
    items: list[str]


class FieldProblem(BaseModel):
    field: str
    message: str
    type: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    description: str
    fields: list[FieldProblem] = []
    request_id: str
    state: str | None = None
    job_error: dict[str, Any] | None = None


class ErrorBody(BaseModel):
    ok: bool = False
    message: str
    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text} for status, text in (
        (401, "missing, bad, expired or revoked token"),
        (403, "a job's own key used on a route for org keys"), (404, "no such job (in this org) or template"),
        (409, "the job's state does not allow this"), (413, "body over RUNNER_API_MAX_BODY_BYTES"),
        (422, "invalid input; `error.fields` names each bad field"), (429, "rate limit; see Retry-After"),
    )
}
