"""Request and response bodies of the Prediction-API-style routes (``/api/v1``).

Their names (snake_case, ``organisation_id``, ``expectedintervalminutes``) are kept so
existing clients work unchanged. Bodies refuse unknown fields: a misspelt field would
otherwise be silently ignored.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Binding", "Role", "Source", "SourceVersion", "SourceBody", "SourceVersionBody", "RoleBinding", "SetupJob",
           "SetupSource", "SetupSourceVersion", "SetupBody", "JobPut", "PredictionJob", "ERROR_RESPONSES",
           "RESULT_ROLE"]

RESULT_ROLE = "result"
_Name = Field(None, min_length=1, max_length=200)
_Hours = Field(None, gt=0, le=24 * 366)
_Minutes = Field(None, ge=1, le=366 * 24 * 60, description="How often the job is expected to run: with "
                 "active true, a schedule runs it again every interval (PUT active pauses / resumes it).")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Role(_Body):
    role: str = Field(..., min_length=1, max_length=200)
    required: bool = True
    description: str | None = Field(None, max_length=2000)


class Source(BaseModel):
    """A runnable model: a template name."""

    id: str
    name: str
    description: str = ""
    retention_hours: float
    versions: list[str]


class SourceVersion(BaseModel):
    """One version of a source, which never changes: a template ``name@version``."""

    id: str
    source_id: str
    version: str
    input_roles: list[Role]
    output_roles: list[Role]


class SourceBody(_Body):
    id: str | None = _Name
    name: str = Field(..., min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    retention_hours: float | None = _Hours


class SourceVersionBody(_Body):
    id: str | None = _Name
    source_id: str = Field(..., min_length=1, max_length=200)
    version: str = Field(..., min_length=1, max_length=100)
    input_roles: list[Role] | None = Field(None, max_length=100)
    output_roles: list[Role] | None = Field(None, max_length=100)


class RoleBinding(_Body):
    role: str = Field(..., min_length=1, max_length=200)
    input_id: str = Field(..., min_length=1, max_length=4096, description="The input's URI.")
    input_type: str | None = Field(None, max_length=100)


class SetupJob(_Body):
    name: str | None = Field(None, max_length=200)
    active: bool = False
    source_id: str | None = _Name
    source_version_id: str | None = _Name
    retention_hours: float | None = _Hours
    expectedintervalminutes: int | None = _Minutes
    role_bindings: list[RoleBinding] | None = Field(None, max_length=100)


class SetupSource(_Body):
    id: str | None = _Name
    name: str | None = _Name
    retention_hours: float | None = _Hours


class SetupSourceVersion(_Body):
    id: str | None = _Name
    source_id: str | None = _Name
    version: str | None = Field(None, min_length=1, max_length=100)


class SetupBody(_Body):
    organisation_id: str | None = Field(None, max_length=64, description="If given, must be the key's org.")
    source: SetupSource | None = None
    source_version: SetupSourceVersion | None = None
    job: SetupJob
    role_bindings: list[RoleBinding] | None = Field(None, max_length=100)


class JobPut(_Body):
    name: str | None = Field(None, max_length=200)
    active: bool | None = None
    role_bindings: list[RoleBinding] | None = Field(None, max_length=100)
    expectedintervalminutes: int | None = _Minutes


class Binding(BaseModel):
    """A role binding as read back (unconstrained: a response never fails validation)."""

    role: str
    input_id: str
    input_type: str | None = None


class PredictionJob(BaseModel):
    id: str
    name: str | None = None
    active: bool
    organisation_id: str
    source_id: str
    source_version_id: str
    role_bindings: list[Binding]
    state: str = Field(description="Runner's state: draft, queued, running, ..., completed, failed.")
    created_at: str
    retention_hours: float
    expectedintervalminutes: int | None = None


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    detail: list[ErrorItem]


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text} for status, text in (
        (401, "missing, bad, expired or revoked token"), (404, "no such job (in this org), source or version"),
        (409, "the body disagrees with the existing object, or the job is no longer a draft"),
        (413, "body over RUNNER_API_MAX_BODY_BYTES"), (422, "invalid input; `loc` names each bad field"),
        (429, "rate limit; see Retry-After"),
    )
}
