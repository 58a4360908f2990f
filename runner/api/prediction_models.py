"""Request and response bodies of the Prediction-API-style routes (``/api/v1``).

Their names (snake_case, ``organisation_id``, ``expectedintervalminutes``) are kept so
existing clients work unchanged. Bodies refuse unknown fields: a misspelt field would
otherwise be silently ignored.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Binding", "Role", "Source", "SourceVersion", "SourceBody", "SourceVersionBody", "RoleBinding", "SetupJob",
           "SetupSource", "SetupSourceVersion", "SetupBody", "JobPut", "PredictionJob", "JobOutputs", "InputBody",
           "Input", "ERROR_RESPONSES", "RESULT_ROLE"]

RESULT_ROLE = "result"  # the one output role of a job set up straight from a template
_Name = Field(None, min_length=1, max_length=200)
_Text = Field(None, max_length=2000)
_Hours = Field(None, gt=0, le=24 * 366)
_Minutes = Field(None, ge=1, le=366 * 24 * 60, description="How often the job is expected to run (a monitoring "
                 "hint): the job's overdue check; with active true, a schedule runs it again every interval "
                 "(PUT active pauses / resumes it).")
_Roles = Field(..., max_length=100)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Role(_Body):
    """An input or output role of a source version, stored and read back as given."""

    role: str = Field(..., min_length=1, max_length=200)
    input_kind: str | None = Field(None, max_length=100)
    metric: str | None = Field(None, max_length=100)
    unit: str | None = Field(None, max_length=100)
    required: bool = True
    description: str | None = _Text


class Source(BaseModel):
    """A runnable model: a record of the org (``POST /api/v1/sources``)."""

    id: str
    name: str
    description: str | None = None
    expectedintervalminutes: int | None = None
    retention_hours: float | None = None
    created_at: str
    versions: list[str] = Field(description="Its versions' version strings, oldest first.")


class SourceVersion(BaseModel):
    """One immutable version of a source, bound to a Runner template."""

    id: str
    source_id: str
    version: str
    description: str | None = None
    input_roles: list[Role]
    output_roles: list[Role]
    template: str = Field(description="The Runner template it runs (name@version).")
    created_at: str


class SourceBody(_Body):
    name: str = Field(..., min_length=1, max_length=200, pattern=r"^[^@/]+$")
    description: str | None = _Text
    expectedintervalminutes: int | None = _Minutes
    retention_hours: float | None = _Hours


class SourceVersionBody(_Body):
    source_id: str = Field(..., min_length=1, max_length=200, description="The source's id (or its name).")
    version: str = Field(..., min_length=1, max_length=100, pattern=r"^[^@/]+$")
    description: str | None = _Text
    input_roles: list[Role] = _Roles
    output_roles: list[Role] = _Roles
    template: str | None = Field(None, min_length=1, max_length=200, description="The Runner template to run "
                                 "(name@version); default: the template named like the source, at this version.")


class InputBody(_Body):
    uri: str = Field(..., min_length=1, max_length=4096)
    kind: str | None = Field(None, max_length=100)
    description: str | None = _Text


class Input(BaseModel):
    """An input registered by id: a role binding's ``input_id`` may name it."""

    id: str
    uri: str
    kind: str | None = None
    description: str | None = None
    created_at: str


class RoleBinding(_Body):
    role: str = Field(..., min_length=1, max_length=200)
    input_id: str = Field(..., min_length=1, max_length=4096,
                          description="The input's URI, or the id of an input registered with POST /api/v1/inputs.")
    input_type: str | None = Field(None, max_length=100)


class SetupJob(_Body):
    name: str | None = Field(None, max_length=200)
    active: bool = False
    organisation_id: str | None = Field(None, max_length=64, description="null (the top-level one counts), or "
                                        "the key's org.")
    source_id: str | None = _Name
    source_version_id: str | None = _Name
    retention_hours: float | None = _Hours
    expectedintervalminutes: int | None = _Minutes
    role_bindings: list[RoleBinding] | None = Field(None, max_length=100)


class SetupSource(_Body):
    """A source by ``id`` or ``name``: what ``GET /api/v1/sources/{id}`` returned is accepted as is."""

    id: str | None = _Name
    name: str | None = _Name
    description: str | None = _Text
    expectedintervalminutes: int | None = _Minutes
    retention_hours: float | None = _Hours
    created_at: str | None = Field(None, max_length=100)
    versions: list[str] | None = Field(None, max_length=10_000)


class SetupSourceVersion(_Body):
    """A version by ``id``, or ``version`` of the source: a version as read back is accepted as is."""

    id: str | None = _Name
    source_id: str | None = _Name
    version: str | None = Field(None, min_length=1, max_length=100)
    description: str | None = _Text
    input_roles: list[Role] | None = Field(None, max_length=100)
    output_roles: list[Role] | None = Field(None, max_length=100)
    template: str | None = _Name
    created_at: str | None = Field(None, max_length=100)


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
    output_roles: list[str] = Field(description="Names its result is read under (GET /api/v1/jobs/{id}/outputs).")
    state: str = Field(description="Runner's state: draft, queued, running, ..., completed, failed.")
    created_at: str
    retention_hours: float
    expectedintervalminutes: int | None = None


class JobOutputs(BaseModel):
    """A job's result under its output roles: null until it completed; ``error`` if it ended otherwise."""

    id: str
    state: str
    outputs: dict[str, Any] | None = None
    error: str | None = None


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
