"""Prediction-API jobs (``/api/v1/jobs``), mapped onto Runner's jobs (issue 11, 21).

``POST /jobs/setup`` makes one Runner job from a source version (``prediction_targets.py``
finds it; sources, versions and inputs are ``prediction_sources.py``'s): ``role_bindings``
become its named ``inputs``, ``active: false`` a draft, ``true`` a queued job. An interval
(``expectedintervalminutes``: the job's, else its source's) is a monitoring hint: with
``active: true`` it makes a standing job, a schedule that runs it again every interval and
is overdue when no run completed within one; ``PUT {"active": false}`` pauses it. A job's
result reads under its version's output roles (``GET /jobs/{id}/outputs``). The org is
always the key's; another org's job is a 404 and in no list. Errors are FastAPI's
``{detail: [{loc, msg, type}]}``, each naming its field; bad input writes and queues nothing.
"""

from __future__ import annotations

from datetime import timezone
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from runner import admission
from runner.admission import JobRequest
from runner.api.deps import CurrentPrincipal, OrgClient, api_state
from runner.api.records import extra_fields, queued_by, requester
from runner.api.prediction_models import (
    ERROR_RESPONSES, RESULT_ROLE, Binding, JobOutputs, JobPut, PredictionJob, RoleBinding, SetupBody,
)
from runner.api.prediction_sources import Loc, api_error
from runner.api.prediction_targets import Bound, Target, bind_inputs, create_records, target_for_setup
from runner.client import Client
from runner.errors import ScheduleNotFound
from runner.job import describe_error
from runner.models import JobState, JobStatus
from runner.schedules.handle import Schedule

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["prediction"], responses=ERROR_RESPONSES)

JobId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="The job's id.")]
# this family's fields on the job record (records.py)
EXTRA = ("schedule_hint", "input_types", "input_ids", "source_ref", "schedule")


# -- reading a job -------------------------------------------------------------------

def _schedule_name(job_id: str) -> str:
    """The schedule of a standing Prediction job (active, with an interval), named after it."""
    return f"prediction-{job_id}"


def _scheduled(client: Client, job_id: str) -> Schedule | None:
    """The job's schedule, when it is a standing configuration."""
    try:
        return client.get_schedule(_schedule_name(job_id))
    except ScheduleNotFound:
        return None


def _active(client: Client, status: JobStatus, extra: dict[str, Any]) -> bool:
    """A standing job is active while its schedule is not paused; a one-off job from the
    moment it is queued, until it is cancelled."""
    if extra.get("schedule"):
        schedule = _scheduled(client, status.id)
        if schedule is not None:
            return not schedule.info().paused
    return status.state not in (JobState.DRAFT, JobState.CANCELLED)


def _view(client: Client, status: JobStatus, extra: dict[str, Any]) -> PredictionJob:
    types, ids = extra.get("input_types") or {}, extra.get("input_ids") or {}
    ref = extra.get("source_ref") or {}
    hint = extra.get("schedule_hint") or {}
    return PredictionJob(
        id=status.id, name=status.name, active=_active(client, status, extra), organisation_id=status.org,
        source_id=ref.get("source_id") or status.template.partition("@")[0],
        source_version_id=ref.get("source_version_id") or status.template,
        role_bindings=[Binding(role=role, input_id=ids.get(role, uri), input_type=types.get(role))
                       for role, uri in status.inputs.items()],
        output_roles=ref.get("output_roles") or [RESULT_ROLE], state=status.state.value,
        created_at=status.created_at.astimezone(timezone.utc).isoformat(),
        retention_hours=status.retention_hours, expectedintervalminutes=hint.get("expected_interval_minutes"),
    )


def _read(client: Client, job_id: str) -> PredictionJob:
    status = client.get(job_id).status()
    return _view(client, status, client.store.fields(job_id, *EXTRA))


def _target(client: Client, status: JobStatus, ref: dict[str, Any]) -> Target:
    """A job's source version again, from its record (its template's named inputs)."""
    info = client.template(status.template)
    return Target(info.ref, list(info.inputs), ref.get("source_id") or info.name, info.name,
                  ref.get("source_version_id") or info.ref, info.version, ref.get("output_roles") or [RESULT_ROLE])


def _fields(bound: Bound) -> dict[str, Any]:
    return {"input_types": bound.types, "input_ids": bound.ids}


def _hint(minutes: int | None) -> dict[str, int] | None:
    return {"expected_interval_minutes": minutes} if minutes else None


def _stand(client: Client, job_id: str, template: str, inputs: dict[str, str], retention: float | None,
           minutes: int) -> None:
    """Make the job standing (its record names the schedule): a schedule runs it again
    every interval, and is overdue when no run completed within one (``runner schedules``,
    metrics, doctor)."""
    every = f"{minutes}m"
    client.schedule(template, name=_schedule_name(job_id), every=every, expected_interval=every,
                    inputs=inputs, retention_hours=retention)


# -- routes ---------------------------------------------------------------------------

def _check_org(body: SetupBody, org: str) -> None:
    for loc, value in ((("organisation_id",), body.organisation_id), (("job", "organisation_id"),
                                                                       body.job.organisation_id)):
        if value is not None and value != org:
            raise api_error(422, "wrong_organisation", loc, f"organisation_id {value!r} is not this API key's "
                            "organisation; leave it out (or null)")


@router.post("/jobs/setup", status_code=201, response_model=PredictionJob)
def setup_job(body: SetupBody, client: OrgClient, who: CurrentPrincipal) -> PredictionJob:
    """Make one job from a source version: ``role_bindings`` → inputs, ``active: false`` →
    a draft, ``true`` → queued (and, with an interval, standing). Everything is checked
    before anything is written."""
    _check_org(body, who.org)
    if body.role_bindings is not None and body.job.role_bindings is not None:
        raise api_error(422, "ambiguous", ("job", "role_bindings"), "give role_bindings once: top-level or in job")
    target, new = target_for_setup(client, body)
    root: Loc = ("job", "role_bindings") if body.job.role_bindings is not None else ("role_bindings",)
    bound = bind_inputs(client, target, body.role_bindings or body.job.role_bindings or [], root, body.job.active)
    retention = (body.job.retention_hours or target.retention_hours or (body.source and body.source.retention_hours)
                 or None)
    request = JobRequest(template=target.template, inputs=bound.inputs or None, name=body.job.name,
                         retention_hours=retention)
    if new is not None:  # checked in full before the records are written
        admission.check(client.services, request, draft=not body.job.active)
        target = create_records(client, new)
    job_id = admission.new_job_id()
    minutes = body.job.expectedintervalminutes or target.interval
    fields = {"schedule_hint": _hint(minutes), "source_ref": target.record, **_fields(bound)}
    standing = body.job.active and minutes  # a standing configuration: it runs again every interval
    if standing:
        fields["schedule"] = _schedule_name(job_id)
    admission.admit(client.services, client.org, request, draft=not body.job.active, job_id=job_id,
                    extra_fields=fields, who=queued_by(who))
    if standing:
        _stand(client, job_id, target.template, bound.inputs, retention, minutes)
    return _read(client, job_id)


@router.get("/jobs", response_model=list[PredictionJob])
def list_jobs(
    client: OrgClient,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[PredictionJob]:
    """The caller's org's jobs, newest first."""
    items, _ = client.store.page_jobs(client.org, None, limit, offset)
    extras = extra_fields(client, [status.id for status in items], *EXTRA)
    return [_view(client, status, extra) for status, extra in zip(items, extras)]


@router.get("/jobs/{job_id}", response_model=PredictionJob)
def get_job(job_id: JobId, client: OrgClient) -> PredictionJob:
    return _read(client, job_id)


@router.get("/jobs/{job_id}/outputs", response_model=JobOutputs)
def job_outputs(job_id: JobId, client: OrgClient) -> JobOutputs:
    """The job's result under its output roles once it completed (one role: the whole
    result; several: the result's field of each name); null before, with the error after
    a failure."""
    status = client.get(job_id).status()
    if status.state is not JobState.COMPLETED:
        error = describe_error(status) if status.is_final else None
        return JobOutputs(id=job_id, state=status.state.value, error=error)
    roles = (client.store.fields(job_id, "source_ref")["source_ref"] or {}).get("output_roles") or [RESULT_ROLE]
    result = client.store.get_result(job_id)
    if len(roles) == 1:
        outputs = {roles[0]: result}
    else:
        outputs = {role: result.get(role) if isinstance(result, dict) else None for role in roles}
    return JobOutputs(id=job_id, state=status.state.value, outputs=outputs)


def _switch(client: Client, status: JobStatus, active: bool, who: str) -> bool:
    """``PUT {"active": …}`` alone on a job that is not a draft: pause or resume a standing
    job; cancel a one-off job that has not ended (it is active until then). False for a draft."""
    schedule = _scheduled(client, status.id)
    if schedule is not None:
        schedule.resume() if active else schedule.pause()
        return True
    if status.state is JobState.DRAFT:
        return False
    if status.is_final and not (status.state is JobState.CANCELLED and not active):
        raise api_error(409, "ended", ("active",), f"job {status.id} has ended ({status.state.value}); it ran once "
                        "and runs no more")
    if not active and not status.is_final:
        client.cancel(status.id, by=who)
    return True


def _change_draft(client: Client, status: JobStatus, body: JobPut, who: str) -> None:
    """A PUT on a draft: its bindings (kept unless given), name and interval, checked by
    admission; ``active: true`` then queues it, standing when it has an interval."""
    job_id = status.id
    extra = client.store.fields(job_id, *EXTRA)
    target = _target(client, status, extra.get("source_ref") or {})
    bindings = body.role_bindings
    if bindings is None:
        types, ids = extra.get("input_types") or {}, extra.get("input_ids") or {}
        bindings = [RoleBinding(role=r, input_id=ids.get(r, u), input_type=types.get(r))
                    for r, u in status.inputs.items()]
    bound = bind_inputs(client, target, bindings, ("role_bindings",), bool(body.active))
    fields: dict[str, Any] = _fields(bound)
    if "name" in body.model_fields_set:
        fields["name"] = body.name
    hint = extra.get("schedule_hint")
    if "expectedintervalminutes" in body.model_fields_set:
        fields["schedule_hint"] = hint = _hint(body.expectedintervalminutes)
    if body.active and hint:
        fields["schedule"] = _schedule_name(job_id)
    admission.edit_draft(client.services, client.org, job_id, JobRequest(inputs=bound.inputs), extra_fields=fields)
    if body.active:
        admission.queue_draft(client.services, client.org, job_id, who=who)
        if hint:
            _stand(client, job_id, status.template, bound.inputs, status.retention_hours,
                   hint["expected_interval_minutes"])


@router.put("/jobs/{job_id}", response_model=PredictionJob)
def put_job(job_id: JobId, body: JobPut, client: OrgClient, who: CurrentPrincipal) -> PredictionJob:
    """Change a draft (``name``, ``role_bindings``, ``expectedintervalminutes``); ``active:
    true`` runs it (standing, with an interval). ``active`` alone pauses / resumes a
    standing job and cancels a running one-off job; otherwise 409 for a job that is no
    longer a draft."""
    job = client.get(job_id)
    status = job.status()
    if set(body.model_fields_set) <= {"active"} and body.active is not None:
        if _switch(client, status, body.active, requester(who)):
            return _read(client, job_id)
    if status.state is not JobState.DRAFT:
        raise api_error(409, "not_a_draft", ("state",), f"job {job_id} is {status.state.value}; only a draft "
                        "(active: false) job can be changed")
    _change_draft(client, status, body, queued_by(who))
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
