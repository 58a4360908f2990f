"""Runner's own routes (``/v1``): jobs and templates, as the ``Client`` sees them.

Bodies take the ``Client``'s arguments; a job reads as ``runner status --json`` shows it.
Every route acts through the caller's org's ``Client``, so another org's job is a 404
everywhere and in no list. Bad input is refused, naming the field, before anything is
written or queued.
"""

from __future__ import annotations

import mimetypes
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from runner.api.fields import check_uris, find_template
from runner.api.deps import AccessToken, ApiState, CurrentPrincipal, JobClient, OrgClient, api_state, org_client
from runner.api.problems import ApiError, FieldError
from runner.api.events import event_stream
from runner.api.keys import Principal
from runner.api.templates import template_view, template_views
from runner.api.v1_models import (
    ERROR_RESPONSES, ArtifactList, JobCreate, JobCreated, JobPage, JobPatch, JobResult, JobRetry, JobRun, LogPage,
)
from runner import admission
from runner.admission import JobRequest
from runner.api.records import queued_by
from runner.artifacts import ArtifactIO, artifact_prefix
from runner.attached_jobs import create_attached
from runner.errors import SourceError
from runner.job import Job
from runner.models import JobState, JobStatus
from runner.store.part import stored_status

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["runner"], responses=ERROR_RESPONSES)

EVENT_ID = r"^\d{1,20}-\d{1,20}$"
JobId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="The job's id.")]


def _uri_fields(source: str | None, destination: str | None, inputs: dict[str, str] | None) -> dict:
    return {("source",): source, ("destination",): destination,
            **{("inputs", name): uri for name, uri in (inputs or {}).items()}}


def _by(who: Principal) -> str:
    """Who cancelled, as the job's error says it: the API key (never the server's user)."""
    return f"API key {who.key_id}"


def _view(job: Job) -> JobStatus:
    return job.status()


def _create_attached(body: JobCreate, client: OrgClient, who: str) -> JobCreated:
    """An attached job (``runner/attached_jobs.py``): 422 for what only a template job takes."""
    wrong = [name for name in ("template", "params", "inputs") if getattr(body, name)] + (["draft"] if body.draft else [])
    if wrong:
        fields = [FieldError((name,), "not for an attached job: its own process does the work") for name in wrong]
        raise ApiError(422, "invalid_attached", "; ".join(f"{f.path}: {f.msg}" for f in fields), fields)
    status, key = create_attached(client.services, client.org, name=body.name, settings=body.settings, job_timeout=body.job_timeout,
                                  retention_hours=body.retention_hours, who=who)
    return JobCreated(**status.model_dump(), apiKey=key)


@router.post("/jobs", status_code=201, response_model=JobCreated)
async def create_job(body: JobCreate, token: AccessToken, request: Request) -> JobStatus:
    """Submit a job (queued at once), or with ``draft: true`` create a draft to configure;
    with ``attach: true`` a job your own process runs (the answer carries its ``apiKey``)."""
    # the token check and the whole submit in one worker-thread hop (not one per dependency)
    return await run_in_threadpool(_authorized_create, body, api_state(request), token, request)


def _authorized_create(body: JobCreate, state: ApiState, token: str, request: Request) -> JobStatus:
    """The caller's principal and org client (as ``principal`` and ``client_for`` give
    them), then the submit."""
    who = state.keys.authenticate(token, state.limit)
    request.state.principal = who
    return _create_job(body, org_client(state, who), who)


def _create_job(body: JobCreate, client: OrgClient, who: CurrentPrincipal) -> JobStatus:
    if body.attach:
        return _create_attached(body, client, queued_by(who))
    if body.template is None or body.settings is not None:
        field, msg = ("template", "field required") if body.template is None else ("settings", "only with attach: true")
        raise ApiError(422, "invalid_job", f"{field}: {msg}", [FieldError((field,), msg)])
    find_template(client, body.template)
    check_uris(client, _uri_fields(body.source, body.destination, body.inputs))
    request = JobRequest(**body.model_dump(exclude={"draft", "attach", "settings"}))
    record = admission.admit_record(client.services, client.org, request, draft=body.draft, who=queued_by(who))
    return stored_status(record)  # as written: no read back


@router.get("/jobs", response_model=JobPage)
def list_jobs(
    client: OrgClient,
    state: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> JobPage:
    """The caller's org's jobs, newest first, a page at a time."""
    items, total = client.store.page_jobs(client.org, state, limit, offset)
    return JobPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/jobs/{job_id}", response_model=JobStatus)
async def get_job(job_id: JobId, token: AccessToken, request: Request) -> JobStatus:
    """A job of the caller's org, as ``runner status --json`` shows it, metrics included;
    404 for any other (a job's own key reads only its job)."""
    # the token check, the rate count and the read in one round trip, in one thread hop
    state = api_state(request)
    who, status = await run_in_threadpool(state.keys.read_job, token, state.limit, job_id)
    request.state.principal = who
    return status


@router.patch("/jobs/{job_id}", response_model=JobStatus)
def patch_job(job_id: JobId, body: JobPatch, client: OrgClient) -> JobStatus:
    """Change a draft's source, destination, inputs, params (validated at once) or name; 409
    for a job that is no longer a draft."""
    client.get(job_id)
    check_uris(client, _uri_fields(body.source, body.destination, body.inputs))
    extra = {"name": None} if "name" in body.model_fields_set and body.name is None else None
    admission.edit_draft(client.services, client.org, job_id, JobRequest(**body.model_dump()), extra_fields=extra)
    return client.store.get(job_id, client.org)


@router.post("/jobs/{job_id}/run", response_model=JobStatus)
def run_job(job_id: JobId, client: OrgClient, body: JobRun | None = None) -> JobStatus:
    """Queue a draft (its params and inputs checked first); 409 for any other state."""
    body = body or JobRun()
    job = client.get(job_id)
    job.run(task_timeout=body.task_timeout, job_timeout=body.job_timeout, test=body.test,
            max_retries=body.max_retries)
    return _view(job)


@router.post("/jobs/{job_id}/cancel", response_model=JobStatus)
def cancel_job(job_id: JobId, client: OrgClient, who: CurrentPrincipal) -> JobStatus:
    """Cancel a job; one that has already ended is returned unchanged."""
    job = client.get(job_id)
    client.cancel(job_id, by=_by(who))
    return _view(job)


@router.post("/jobs/{job_id}/retry", response_model=JobStatus)
def retry_job(job_id: JobId, client: OrgClient, body: JobRetry | None = None) -> JobStatus:
    """Re-run only the failed pieces of a failed or timed-out job, or of a partial completion
    (409 otherwise)."""
    return _view(client.retry_failed(client.get(job_id).id, (body or JobRetry()).job_timeout))


@router.delete("/jobs/{job_id}", status_code=204, response_class=Response)
async def delete_job(job_id: JobId, client: OrgClient, who: CurrentPrincipal, request: Request) -> Response:
    """Cancel the job if it has not ended, then delete its record, results, logs and
    artifacts; afterwards it is a 404."""
    await run_in_threadpool(client.get, job_id)
    await run_in_threadpool(client.delete, job_id, _by(who))
    api_state(request).sweep_later(client, job_id)
    return Response(status_code=204)


@router.get("/jobs/{job_id}/result", response_model=JobResult)
def job_result(job_id: JobId, client: OrgClient) -> JobResult:
    """The assembled result once the job completed; else 409 with its state and error."""
    status = client.get(job_id).status()
    if status.state is not JobState.COMPLETED:
        error = status.error or {}
        why = f": {error.get('message')}" if error.get("message") else ""
        raise ApiError(409, "not_completed", f"job {job_id} is {status.state.value}{why}",
                       extra={"state": status.state.value, "job_error": status.error})
    return JobResult(result=client.store.get_result(job_id))


@router.get("/jobs/{job_id}/logs", response_model=LogPage)
def job_logs(
    job_id: JobId,
    client: OrgClient,
    piece: Annotated[int | None, Query(ge=0, description="Only the lines about this piece.")] = None,
    after: Annotated[str | None, Query(pattern=EVENT_ID, description="A line id: only newer lines.")] = None,
) -> LogPage:
    """The job's log lines in order: its code's ``ctx.log`` lines and Runner's own."""
    lines = client.get(job_id).logs(piece=piece, after=after or "-")
    items = [line.model_dump(mode="json") for line in lines]
    return LogPage(items=items, next=lines[-1].id if lines else (after or "0-0"))


@router.get("/jobs/{job_id}/artifacts", response_model=ArtifactList)
def job_artifacts(job_id: JobId, client: JobClient) -> ArtifactList:
    """Names of the job's artifacts (``output.json`` once it has ended)."""
    return ArtifactList(items=client.get(job_id).artifacts())


@router.get("/jobs/{job_id}/artifacts/{name:path}", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}}})
def job_artifact(job_id: JobId, name: str, client: JobClient) -> Response:
    """One artifact's content, streamed (a big model file never sits in memory)."""
    job = client.get(job_id)
    try:
        stream = ArtifactIO(client.storages, artifact_prefix(client.settings, job.id)).open_read(name)
    except ValueError as exc:
        raise ApiError(422, "invalid_name", str(exc), [FieldError(("name",), str(exc))]) from None
    except SourceError:
        raise ApiError(404, "not_found", f"job {job_id} has no artifact {name!r}") from None
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return StreamingResponse(_chunks(stream), media_type=kind)


def _chunks(stream: Any, size: int = 1024 * 1024) -> Any:
    """The stream's bytes a chunk at a time, closing it at the end (or when the client goes)."""
    with stream:
        while chunk := stream.read(size):
            yield chunk


@router.get("/jobs/{job_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
def job_events(
    job_id: JobId,
    client: OrgClient,
    request: Request,
    last_event_id: Annotated[str | None, Header(pattern=EVENT_ID)] = None,
    after: Annotated[str | None, Query(pattern=EVENT_ID, description="Resume after this event id.")] = None,
) -> StreamingResponse:
    """Server-sent events from the job's events stream (state changes, progress), resuming
    after ``Last-Event-ID`` (or ``after``); the stream ends after the job's final state."""
    client.get(job_id)
    return event_stream(api_state(request).live, job_id, last_event_id or after)


@router.get("/templates")
def list_templates(client: OrgClient) -> list[dict[str, Any]]:
    """Every template, with a JSON Schema of each kind's params."""
    return template_views(client)


@router.get("/templates/{ref}")
def get_template_route(ref: Annotated[str, Path(max_length=200)], client: OrgClient) -> dict[str, Any]:
    """One template (``name@version``, or ``name`` for the newest)."""
    return template_view(client, ref)
