"""Prediction-API-style routes (``/api/v1``): sources, source versions and job setup,
mapped onto Runner's templates and jobs (issue 11).

A *source* is a template name, a *source version* a template ``name@version`` (its
``input_roles`` the template's named inputs, its ``output_roles`` one role, ``result``).
Templates are code the fleet imports, so ``POST /sources`` and ``/source_versions``
never create: they answer with the existing object when the body agrees, else 409 naming
the field. ``POST /jobs/setup`` makes one Runner job: ``role_bindings`` become its
``inputs``, ``active: false`` a draft, ``true`` a queued job. The org is always the key's;
another org's job is a 404 and in no list. Errors are FastAPI's ``{detail: [{loc, msg,
type}]}``, each naming its field; bad input writes and queues nothing.
"""

from __future__ import annotations

from datetime import timezone
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from runner import admission
from runner.admission import JobRequest
from runner.api.deps import CurrentPrincipal, OrgClient, api_state
from runner.api.errors import ApiError, FieldError
from runner.api.records import extra_fields, queued_by, requester
from runner.api.prediction_models import (
    ERROR_RESPONSES, RESULT_ROLE, Binding, JobPut, PredictionJob, Role, RoleBinding, SetupBody, Source, SourceBody,
    SourceVersion, SourceVersionBody,
)
from runner.api.templates import template_view, template_views
from runner.client import Client
from runner.errors import ScheduleNotFound, SourceError, TemplateNotFound
from runner.models import JobState, JobStatus
from runner.recurring import Schedule

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["prediction"], responses=ERROR_RESPONSES)

JobId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="The job's id.")]
Loc = tuple[str | int, ...]
EXTRA = ("schedule_hint", "input_types")  # this family's fields on the job record (records.py)


def _error(status: int, kind: str, loc: Loc, msg: str) -> ApiError:
    return ApiError(status, kind, msg, [FieldError(loc, msg, kind)])


# -- sources and versions -------------------------------------------------------------

def _source(client: Client, views: list[dict[str, Any]]) -> Source:
    newest = views[-1]
    return Source(id=newest["name"], name=newest["name"], description=newest.get("description") or "",
                  retention_hours=client.settings.retention_hours, versions=[v["version"] for v in views])


def _version(view: dict[str, Any]) -> SourceVersion:
    return SourceVersion(id=view["ref"], source_id=view["name"], version=view["version"],
                         input_roles=[Role(role=name) for name in view["inputs"]],
                         output_roles=[Role(role=RESULT_ROLE)])


def _by_name(client: Client) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for view in template_views(client):
        found.setdefault(view["name"], []).append(view)
    return found


def _views_of(client: Client, name: str, loc: Loc) -> list[dict[str, Any]]:
    views = _by_name(client).get(name)
    if not views:
        raise _error(404, "not_found", loc, f"no source {name!r}: sources are the fleet's templates "
                     "(runner templates lists them); they cannot be created over HTTP")
    return views


def _version_view(client: Client, ref: str, loc: Loc, status: int = 404) -> dict[str, Any]:
    try:
        return template_view(client, ref)
    except TemplateNotFound as exc:
        raise _error(status, "not_found" if status == 404 else "unknown_source", loc, str(exc)) from None


@router.get("/sources", response_model=list[Source])
def list_sources(client: OrgClient) -> list[Source]:
    """Every source (template name) with its versions."""
    return [_source(client, views) for views in _by_name(client).values()]


@router.get("/sources/{source_id}", response_model=Source)
def get_source(source_id: Annotated[str, Path(max_length=200)], client: OrgClient) -> Source:
    return _source(client, _views_of(client, source_id, ("source_id",)))


@router.post("/sources", response_model=Source)
def post_source(body: SourceBody, client: OrgClient) -> Source:
    """The existing source if the body agrees with it (never creates one): 404 for an
    unknown name, 409 naming the field that differs."""
    source = _source(client, _views_of(client, body.name, ("name",)))
    if body.id is not None and body.id != source.id:
        raise _error(409, "conflict", ("id",), f"source {source.name!r} has id {source.id!r}, not {body.id!r}")
    return source


@router.get("/source_versions", response_model=list[SourceVersion])
def list_source_versions(
    client: OrgClient, source_id: Annotated[str | None, Query(max_length=200)] = None,
) -> list[SourceVersion]:
    """Every source version (template ``name@version``), or those of one source."""
    views = template_views(client) if source_id is None else _views_of(client, source_id, ("source_id",))
    return [_version(view) for view in views]


@router.get("/source_versions/{version_id}", response_model=SourceVersion)
def get_source_version(version_id: Annotated[str, Path(max_length=200)], client: OrgClient) -> SourceVersion:
    if "@" not in version_id:
        raise _error(404, "not_found", ("version_id",), f"no source version {version_id!r}: ids are name@version")
    return _version(_version_view(client, version_id, ("version_id",)))


def _roles_conflict(mine: list[Role], theirs: list[Role] | None, field: str) -> None:
    if theirs is None:
        return
    if sorted(r.role for r in theirs) != sorted(r.role for r in mine):
        raise _error(409, "conflict", (field,), f"{field} differ: this version has "
                     f"{[r.role for r in mine]}, the body {[r.role for r in theirs]}")
    for index, role in enumerate(theirs):
        if not role.required:
            raise _error(409, "conflict", (field, index, "required"), f"role {role.role!r} is required here")


@router.post("/source_versions", response_model=SourceVersion)
def post_source_version(body: SourceVersionBody, client: OrgClient) -> SourceVersion:
    """The existing version if the body agrees (version, input and output roles); never
    creates one: 404 for an unknown source or version, 409 naming the field that differs."""
    _views_of(client, body.source_id, ("source_id",))
    found = _version(_version_view(client, f"{body.source_id}@{body.version}", ("version",)))
    if body.id is not None and body.id != found.id:
        raise _error(409, "conflict", ("id",), f"source version {found.id!r} cannot be called {body.id!r}")
    _roles_conflict(found.input_roles, body.input_roles, "input_roles")
    _roles_conflict(found.output_roles, body.output_roles, "output_roles")
    return found


# -- jobs -----------------------------------------------------------------------------

def _setup_template(client: Client, body: SetupBody) -> dict[str, Any]:
    """The template a setup names: ``job.source_version_id`` (or ``source_version.id``), or
    a source (``job.source_id``, ``source.id``/``name``, ``source_version.source_id``) at
    ``source_version.version``, else its newest version."""
    version_ids = [(loc, value) for loc, value in ((("job", "source_version_id"), body.job.source_version_id),
                   (("source_version", "id"), body.source_version and body.source_version.id)) if value]
    source_ids = [(loc, value) for loc, value in (
        (("job", "source_id"), body.job.source_id), (("source", "id"), body.source and body.source.id),
        (("source", "name"), body.source and body.source.name),
        (("source_version", "source_id"), body.source_version and body.source_version.source_id)) if value]
    if version_ids:
        loc, ref = version_ids[0]
        if "@" not in ref:
            raise _error(422, "unknown_source", loc, f"{ref!r} is not a source version id (name@version)")
        view = _version_view(client, ref, loc, 422)
    elif source_ids:
        loc, name = source_ids[0]
        version = body.source_version and body.source_version.version
        if version:
            loc, ref = ("source_version", "version"), f"{name}@{version}"
        else:
            ref = name
        view = _version_view(client, ref, loc, 422)
    else:
        raise _error(422, "missing", ("job", "source_version_id"),
                     "field required: job.source_version_id, or job.source_id (newest version)")
    for loc, value in version_ids:
        if value != view["ref"]:
            raise _error(422, "conflict", loc, f"{value!r} disagrees with source version {view['ref']!r}")
    for loc, value in source_ids:
        if value != view["name"]:
            raise _error(422, "conflict", loc, f"{value!r} disagrees with source {view['name']!r}")
    return view


def _inputs(client: Client, view: dict[str, Any], bindings: list[RoleBinding], root: Loc,
            complete: bool) -> tuple[dict[str, str], dict[str, str]]:
    """Role bindings as the job's ``inputs`` and their ``input_type`` by role; 422 naming
    ``role_bindings[i].role`` / ``.input_id`` for an unknown or repeated role or a bad URI,
    or ``role_bindings`` for a missing required role when ``complete``."""
    inputs: dict[str, str] = {}
    types: dict[str, str] = {}
    declared = view["inputs"]
    for index, binding in enumerate(bindings):
        if binding.role not in declared:
            raise _error(422, "unknown_role", (*root, index, "role"), f"unknown role {binding.role!r}; source "
                         f"version {view['ref']} has input roles: {', '.join(declared) or 'none'}")
        if binding.role in inputs:
            raise _error(422, "duplicate_role", (*root, index, "role"), f"role {binding.role!r} is bound twice")
        try:
            inputs[binding.role] = client.storages.check(binding.input_id)
        except (SourceError, ValueError) as exc:  # urlparse raises ValueError ("http://[::1")
            raise _error(422, "invalid_uri", (*root, index, "input_id"), f"{binding.input_id!r}: {exc}") from None
        if binding.input_type:
            types[binding.role] = binding.input_type
    missing = [role for role in declared if role not in inputs]
    if complete and missing:
        raise _error(422, "missing_role", root, f"required input roles not bound: {', '.join(missing)}")
    return inputs, types


def _view(status: JobStatus, extra: dict[str, Any]) -> PredictionJob:
    types = extra.get("input_types") or {}
    hint = extra.get("schedule_hint") or {}
    return PredictionJob(
        id=status.id, name=status.name, active=status.state is not JobState.DRAFT, organisation_id=status.org,
        source_id=status.template.partition("@")[0], source_version_id=status.template,
        role_bindings=[Binding(role=role, input_id=uri, input_type=types.get(role))
                       for role, uri in status.inputs.items()],
        state=status.state.value, created_at=status.created_at.astimezone(timezone.utc).isoformat(),
        retention_hours=status.retention_hours, expectedintervalminutes=hint.get("expected_interval_minutes"),
    )


def _read(client: Client, job_id: str) -> PredictionJob:
    status = client.get(job_id).status()
    return _view(status, client.store.fields(job_id, *EXTRA))


@router.post("/jobs/setup", status_code=201, response_model=PredictionJob)
def setup_job(body: SetupBody, client: OrgClient, who: CurrentPrincipal) -> PredictionJob:
    """Make one job from a source version: ``role_bindings`` → inputs, ``active: false`` →
    a draft, ``true`` → queued. Everything is checked before anything is written."""
    if body.organisation_id is not None and body.organisation_id != who.org:
        raise _error(422, "wrong_organisation", ("organisation_id",),
                     f"organisation_id {body.organisation_id!r} is not this API key's organisation")
    if body.role_bindings is not None and body.job.role_bindings is not None:
        raise _error(422, "ambiguous", ("job", "role_bindings"), "give role_bindings once: top-level or in job")
    view = _setup_template(client, body)
    root: Loc = ("job", "role_bindings") if body.job.role_bindings is not None else ("role_bindings",)
    inputs, types = _inputs(client, view, body.role_bindings or body.job.role_bindings or [], root, body.job.active)
    retention = body.job.retention_hours or (body.source and body.source.retention_hours) or None
    job_id = admission.new_job_id()
    minutes = body.job.expectedintervalminutes
    fields: dict[str, Any] = {"schedule_hint": {"expected_interval_minutes": minutes} if minutes else None,
                              "input_types": types}
    if body.job.active and minutes:  # a standing configuration: it runs again every interval
        fields["schedule"] = _schedule_name(job_id)
    request = JobRequest(template=view["ref"], inputs=inputs or None, name=body.job.name, retention_hours=retention)
    admission.admit(client.services, client.org, request, draft=not body.job.active, job_id=job_id,
                    extra_fields=fields, who=queued_by(who))
    if "schedule" in fields:
        every = f"{minutes}m"
        client.schedule(view["ref"], name=fields["schedule"], every=every, expected_interval=every,
                        inputs=inputs, retention_hours=retention)
    return _read(client, job_id)


def _schedule_name(job_id: str) -> str:
    """The schedule of an active Prediction job with an interval, named after the job."""
    return f"prediction-{job_id}"


def _scheduled(client: Client, job_id: str) -> Schedule | None:
    """The job's schedule, when it is a standing (active, interval) configuration."""
    try:
        return client.get_schedule(_schedule_name(job_id))
    except ScheduleNotFound:
        return None


@router.get("/jobs", response_model=list[PredictionJob])
def list_jobs(
    client: OrgClient,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[PredictionJob]:
    """The caller's org's jobs, newest first."""
    items, _ = client.store.page_jobs(client.org, None, limit, offset)
    extras = extra_fields(client, [status.id for status in items], *EXTRA)
    return [_view(status, extra) for status, extra in zip(items, extras)]


@router.get("/jobs/{job_id}", response_model=PredictionJob)
def get_job(job_id: JobId, client: OrgClient) -> PredictionJob:
    return _read(client, job_id)


@router.put("/jobs/{job_id}", response_model=PredictionJob)
def put_job(job_id: JobId, body: JobPut, client: OrgClient, who: CurrentPrincipal) -> PredictionJob:
    """Change a draft (``name``, ``role_bindings``, ``expectedintervalminutes``); ``active:
    true`` runs it. 409 for a job that is no longer a draft."""
    job = client.get(job_id)
    status = job.status()
    schedule = _scheduled(client, job_id)
    if schedule is not None and set(body.model_fields_set) <= {"active"} and body.active is not None:
        schedule.resume() if body.active else schedule.pause()  # a standing job: active pauses/resumes it
        return _read(client, job_id)
    if status.state is not JobState.DRAFT:
        raise _error(409, "not_a_draft", ("state",), f"job {job_id} is {status.state.value}; only a draft "
                     "(active: false) job can be changed")
    view = _version_view(client, status.template, ("source_version_id",), 409)
    bindings = body.role_bindings
    if bindings is None:
        types = client.store.fields(job_id, "input_types")["input_types"] or {}
        bindings = [RoleBinding(role=r, input_id=u, input_type=types.get(r)) for r, u in status.inputs.items()]
    inputs, types = _inputs(client, view, bindings, ("role_bindings",), bool(body.active))
    fields: dict[str, Any] = {"input_types": types}
    if "name" in body.model_fields_set:
        fields["name"] = body.name
    if "expectedintervalminutes" in body.model_fields_set:
        minutes = body.expectedintervalminutes
        fields["schedule_hint"] = {"expected_interval_minutes": minutes} if minutes else None
    admission.edit_draft(client.services, client.org, job_id, JobRequest(inputs=inputs), extra_fields=fields)
    if body.active:
        admission.queue_draft(client.services, client.org, job_id, who=queued_by(who))
    return _read(client, job_id)


@router.delete("/jobs/{job_id}", status_code=204, response_class=Response)
async def delete_job(job_id: JobId, client: OrgClient, who: CurrentPrincipal, request: Request) -> Response:
    """Cancel the job if it has not ended, then delete it and everything it wrote (swept
    again shortly after, as ``DELETE /v1/jobs/{id}`` does)."""
    await run_in_threadpool(client.get, job_id)
    schedule = await run_in_threadpool(_scheduled, client, job_id)
    if schedule is not None:  # its future firings go; past jobs keep their own retention
        await run_in_threadpool(schedule.delete)
    await run_in_threadpool(client.delete, job_id, requester(who))
    api_state(request).sweep_later(client, job_id)
    return Response(status_code=204)
