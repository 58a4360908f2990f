"""ByteNite's customer API (``/v1/customer``), mapped onto Runner's jobs (issue 11).

ByteNite shut down; its clients work against Runner with only the base URL changed.
Every route acts through the caller's org's ``Client`` (another org's job is a 404
everywhere and in no list); each ByteNite concept maps onto Runner's own (see
``bytenite_views``): a job is a Runner job, created as a draft, configured, then run.
Bad input is refused with a 4xx naming the field, before anything is written or queued.
Result links are signed (``ApiKeys.link_secret()``), last ``RUNNER_API_LINK_SECONDS``
(48 h) and need no Authorization header. This module serves the staged flow; the
reference's other operations and the older layout are ``bytenite_jobs``'s, the file
upload ``bytenite_uploads``'s.
"""

from __future__ import annotations

import json
import logging
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from runner.api.bytenite_models import (
    ERROR_RESPONSES, ByteNiteErrorBody, DataSourceBody, GenericResponse, JobConfig, JobCreateBody, JobEnvelope,
    JobList, JobParams, LogsBody, LogsResponse, Pagination, ResultLink, Results, RunBody, TemplateInfo,
)
from runner.api.bytenite_views import (
    RESULT_JSON, Descriptor, bytenite_state, content_type, descriptor_uri, group_logs, job_view, output_prefix, sign,
    signature_ok, template_descriptors,
)
from runner.api.bytenite_uploads import with_upload_url
from runner.api.deps import CurrentPrincipal, OrgClient, api_state
from runner.api.problems import ApiError, FieldError, Loc
from runner.api.records import extra_fields, queued_by, requester
from runner.api.templates import template_view
from runner import admission
from runner.admission import JobRequest
from runner.artifacts import check_name
from runner.client import Client
from runner.errors import InvalidParams, JobNotFound, SourceError, TemplateNotFound
from runner.job import Job, describe_error
from runner.models import JobState, JobStatus
from runner.registry import KINDS

__all__ = ["router"]

log = logging.getLogger("runner.api.bytenite")
router = APIRouter(prefix="/v1/customer", tags=["bytenite"], responses=ERROR_RESPONSES)

JobId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="The job's id.")]
OUTPUT = "output/"
CHUNK = 1024 * 1024


# -- helpers ------------------------------------------------------------------------

def _template_info(client: Client, ref: str) -> TemplateInfo:
    try:
        view = template_view(client, ref)
    except TemplateNotFound:  # a job outlives its template's code: still readable
        name = ref.partition("@")[0]
        return TemplateInfo(id=ref, app=name, partitioner=name, assembler=name)
    return TemplateInfo(id=view["ref"], description=view.get("description") or "", app=view["app"],
                        partitioner=view["partitioner"], assembler=view["assembler"])


def _template_ref(client: Client, template_id: str) -> str:
    try:
        return str(template_view(client, template_id)["ref"])
    except TemplateNotFound as exc:
        raise ApiError(422, "unknown_template", exc.public, [FieldError(("templateId",), exc.public, "unknown_template")])


# Admission's field names → ByteNite's (``config.jobTimeout``, ``dataSource``); params
# paths (``app.x``) go under ``params``.
_FIELDS: dict[str, Loc] = {"task_timeout": ("config", "taskTimeout"), "job_timeout": ("config", "jobTimeout"),
                           "test": ("config", "isTestJob"), "source": ("dataSource",),
                           "destination": ("dataDestination",)}


def _loc(path: str) -> Loc:
    parts = tuple(path.split("."))
    return _FIELDS.get(path) or (("params", *parts) if parts[0] in KINDS else parts)


@contextmanager
def _bytenite_fields() -> Iterator[None]:
    """Admission's InvalidParams as a 422 naming each field as ByteNite's clients sent it."""
    try:
        yield
    except InvalidParams as exc:
        fields = [FieldError(_loc(path), message, "invalid_params") for path, message in exc.errors]
        raise ApiError(422, "invalid_params", "; ".join(f"{f.path}: {f.msg}" for f in fields), fields) from None


def _descriptors(client: Client, body: DataSourceBody | JobCreateBody) -> dict[str, Descriptor]:
    found = {}
    for field in ("dataSource", "dataDestination"):
        source = getattr(body, field)
        if source is not None:
            found[field] = descriptor_uri(client, source, field)
    return found


def _draft(client: Client, job_id: str) -> tuple[Job, JobStatus]:
    job = client.get(job_id)
    status = job.status()
    if status.state is not JobState.DRAFT:
        raise ApiError(409, "not_a_draft", f"job {job_id} is {status.state.value}; only a new job "
                       "(JOB_STATE_NEW) can be changed or run")
    return job, status


def _datasource(client: Client, job_id: str, found: dict[str, Descriptor]) -> dict[str, Any]:
    """The request fields a job's descriptors set: its source and destination URIs."""
    return {field: found[key].uri_for(client, job_id) for key, field in (("dataSource", "source"),
                                                                         ("dataDestination", "destination"))
            if key in found}


def _warnings(job_id: str, status: JobStatus | None, found: dict[str, Descriptor]) -> dict[str, Any]:
    """The record field carrying the descriptors' warnings (logged too), if any."""
    warnings = [w for d in found.values() for w in d.warnings]
    for warning in warnings:
        log.warning("job %s: %s", job_id, warning)
    return {"warnings": [*(status.warnings if status else []), *warnings]} if warnings else {}


def _envelope(client: Client, job_id: str, request: Request | None = None) -> JobEnvelope:
    """The job as ByteNite reads it; with ``request``, an upload source's signed ``tempUrl``."""
    status = client.get(job_id).status()
    description = client.store.fields(job_id, "description")["description"]
    job = job_view(client, status, description)
    return JobEnvelope(job=with_upload_url(job, request) if request else job,
                       templateInfo=_template_info(client, status.template))


# -- jobs ---------------------------------------------------------------------------

def _existing_draft(client: Client, job_id: str, ref: str) -> tuple[Job, JobStatus]:
    """The new job a create names by ``jobId`` (ByteNite updates it): 404 naming ``jobId``
    if there is none in the org (as for every other route; Runner makes the ids), 409 once
    it has run or if its template is not ``templateId``."""
    try:
        job, status = _draft(client, job_id)
    except JobNotFound:
        raise ApiError(404, "not_found", f"jobId: no job {job_id!r} here; omit jobId to create a job",
                       [FieldError(("jobId",), f"no job {job_id!r}; omit jobId to create one", "not_found")]) from None
    if status.template != ref:
        raise ApiError(409, "conflict", f"templateId: job {job_id} runs {status.template}, not {ref}",
                       [FieldError(("templateId",), f"job {job_id} runs {status.template}", "conflict")])
    return job, status


@router.post("/jobs", response_model=JobEnvelope)
def create_job(body: JobCreateBody, client: OrgClient, request: Request) -> JobEnvelope:
    """Create a new job (JOB_STATE_NEW) from a template — or, with ``jobId``, update one not
    yet run; data source, destination, params and config may come now or later (a new
    job starts with its imported template's dataSource/dataDestination).
    Everything is checked before anything is written."""
    ref = _template_ref(client, body.templateId)
    existing = _existing_draft(client, body.jobId, ref)[1] if body.jobId else None
    found = _descriptors(client, body) if existing else {**template_descriptors(client, ref), **_descriptors(client, body)}
    job_id = existing.id if existing else admission.new_job_id()
    config = body.config or JobConfig()
    job_request = JobRequest(template=ref, params=body.params.sections() if body.params else None,
                              name=body.name, task_timeout=config.taskTimeout, job_timeout=config.jobTimeout,
                              test=config.isTestJob, **_datasource(client, job_id, found))
    extra = {**_warnings(job_id, existing, found),
             **({"description": body.description} if "description" in body.model_fields_set or not existing else {})}
    with _bytenite_fields():
        if existing:
            admission.edit_draft(client.services, client.org, job_id, job_request, extra_fields=extra)
        else:
            admission.admit(client.services, client.org, job_request, draft=True, job_id=job_id, extra_fields=extra)
    return _envelope(client, job_id, request)


@router.get("/jobs", response_model=JobList)
def list_jobs(
    client: OrgClient,
    limit: Annotated[int | None, Query(alias="pagination.limit", ge=1, le=500, description="Rows per page.")] = None,
    offset: Annotated[int | None, Query(alias="pagination.offset", ge=0, le=1_000_000,
                                        description="Rows to skip.")] = None,
    plain_limit: Annotated[int | None, Query(alias="limit", ge=1, le=500, description="Rows per page "
                                             "(as `pagination.limit`, which wins).")] = None,
    plain_offset: Annotated[int | None, Query(alias="offset", ge=0, le=1_000_000, description="Rows to skip "
                                              "(as `pagination.offset`, which wins).")] = None,
) -> JobList:
    """The caller's org's jobs, newest first, a page at a time (``limit``/``offset`` or
    ``pagination.limit``/``pagination.offset``: clients send either)."""
    limit = limit or plain_limit or 50
    offset = offset if offset is not None else plain_offset or 0
    items, total = client.store.page_jobs(client.org, None, limit, offset)
    extras = extra_fields(client, [status.id for status in items], "description")
    data = [job_view(client, status, extra["description"]) for status, extra in zip(items, extras)]
    page = Pagination(total=total, offset=offset, hasPrevious=offset > 0, hasNext=offset + len(items) < total)
    return JobList(pagination=page, data=data)


@router.get("/jobs/{jobId}", response_model=JobEnvelope)
def get_job(jobId: JobId, client: OrgClient, request: Request) -> JobEnvelope:
    """A job of the caller's org; 404 for any other."""
    return _envelope(client, jobId, request)


@router.patch("/jobs/{jobId}/datasource", response_model=JobEnvelope)
def set_datasource(jobId: JobId, body: DataSourceBody, client: OrgClient, request: Request) -> JobEnvelope:
    """Set a new job's data source and/or destination (409 once it has run); a ``file``
    source reads back with the ``tempUrl`` to PUT the file to."""
    status = client.get(jobId).status()
    found = _descriptors(client, body)
    with _bytenite_fields():
        admission.edit_draft(client.services, client.org, jobId, JobRequest(**_datasource(client, jobId, found)),
                             extra_fields=_warnings(jobId, status, found))
    return _envelope(client, jobId, request)


@router.patch("/jobs/{jobId}/params", response_model=JobEnvelope)
def set_params(jobId: JobId, body: JobParams, client: OrgClient) -> JobEnvelope:
    """Set a new job's params, validated at once against the template."""
    client.get(jobId)
    with _bytenite_fields():
        admission.edit_draft(client.services, client.org, jobId, JobRequest(params=body.sections()))
    return _envelope(client, jobId)


@router.post("/jobs/{jobId}/run", response_model=GenericResponse)
def run_job(jobId: JobId, client: OrgClient, who: CurrentPrincipal, body: RunBody | None = None) -> GenericResponse:
    """Queue a new job, with ``{taskTimeout, jobTimeout, isTestJob}`` or ``{"config": {...}}``."""
    config = (body or RunBody()).merged()
    client.get(jobId)
    options = JobRequest(task_timeout=config.taskTimeout, job_timeout=config.jobTimeout, test=config.isTestJob)
    with _bytenite_fields():
        admission.queue_draft(client.services, client.org, jobId, options, who=queued_by(who))
    return GenericResponse(message=f"job {jobId} queued")


@router.post("/jobs/{jobId}/abort", response_model=GenericResponse)
def abort_job(jobId: JobId, client: OrgClient, who: CurrentPrincipal) -> GenericResponse:
    """Delete a job that never ran; cancel any other (one that has ended is left as it is)."""
    status = client.get(jobId).status()
    if status.state is JobState.DRAFT:
        client.delete(jobId, requester(who))  # a draft has no tasks: nothing to sweep later
        return GenericResponse(message=f"job {jobId} deleted (it had not run)")
    if client.cancel(jobId, by=requester(who)):
        return GenericResponse(message=f"job {jobId} cancelled")
    return GenericResponse(message=f"job {jobId} had already ended ({status.state.value})")


@router.delete("/jobs/{jobId}", response_model=GenericResponse)
async def delete_job(jobId: JobId, client: OrgClient, who: CurrentPrincipal, request: Request) -> GenericResponse:
    """Cancel the job if it has not ended, then delete it and everything it wrote (swept
    again shortly after, as ``DELETE /v1/jobs/{id}`` does)."""
    await run_in_threadpool(client.get, jobId)
    await run_in_threadpool(client.delete, jobId, requester(who))
    api_state(request).sweep_later(client, jobId)
    return GenericResponse(message=f"job {jobId} deleted")


# -- results ------------------------------------------------------------------------

def _result_names(client: Client, job: Job, status: JobStatus) -> list[str]:
    """What the job wrote: for a ``bypass:`` destination, the files an engine assembler
    left under its artifacts' ``output/``, else ``result.json`` (the result itself); for ``bucket``, every file the assembler wrote under its artifacts'
    ``output/`` (or only the one ``params.name`` names), each by its own name; else the
    destination file."""
    if status.destination == "bypass:":  # an engine assembler's files stay as artifacts under output/
        return [name[len(OUTPUT):] for name in job.artifacts() if name.startswith(OUTPUT)] or [RESULT_JSON]
    out = output_prefix(client, job.id) + "/"
    if status.destination.startswith(out):
        wanted = OUTPUT + status.destination[len(out):]
        return [name[len(OUTPUT):] for name in job.artifacts()
                if name == wanted or (wanted.endswith("/") and name.startswith(wanted))]
    return [posixpath.basename(status.destination.rstrip("/")) or RESULT_JSON]


def _not_ready(job_id: str, status: JobStatus) -> JSONResponse:
    """202 for a job that has not ended (ByteNite's clients wait on it); 400 with its
    ``errorMessage`` for one that ended without results (its clients stop there)."""
    if status.state in (JobState.FAILED, JobState.TIMED_OUT, JobState.CANCELLED):
        raise ApiError(400, "job_failed", describe_error(status))
    hint = f"; run it with POST /v1/customer/jobs/{job_id}/run" if status.state is JobState.DRAFT else ""
    message = (f"job {job_id} is {bytenite_state(status.state)} ({status.state.value}){hint}; "
               "results exist once it is JOB_STATE_COMPLETE")
    return JSONResponse(Results(results=[], message=message).model_dump(), status_code=202)


@router.get("/jobs/{jobId}/results", response_model=Results,
            responses={202: {"model": Results, "description": "not complete yet: `results` is empty, `message` "
                             "says the state"},
                       400: {"model": ByteNiteErrorBody, "description": "the job ended failed, timed out or "
                             "cancelled: `message` is its errorMessage"}})
def job_results(jobId: JobId, request: Request, client: OrgClient) -> Any:
    """Signed links to what the completed job wrote, each with its content type; 202 with
    no results while it has not completed, 400 once it has failed."""
    job = client.get(jobId)
    status = job.status()
    if status.state is not JobState.COMPLETED:
        return _not_ready(jobId, status)
    state = api_state(request)
    secret, seconds = state.keys.link_secret(), state.settings.api_link_seconds
    links = []
    for name in _result_names(client, job, status):
        expires, signature = sign(secret, jobId, name, seconds)
        url = request.url_for("bytenite_result", jobId=jobId, name=name).include_query_params(
            expires=expires, signature=signature)
        links.append(ResultLink(name=name, link=str(url), contentType=content_type(name)))
    return Results(results=links)


def _open_result(client: Client, job: Job, status: JobStatus, name: str) -> Response:
    """Result ``name`` as a response, streamed from storage (a job's output may be large);
    raises SourceError (or ValueError for a bad name) if there is none."""
    bypass = status.destination == "bypass:"
    if bypass and name == RESULT_JSON and OUTPUT + RESULT_JSON not in job.artifacts():
        return Response(json.dumps(client.store.get_result(job.id)), media_type="application/json")
    if bypass or status.destination.startswith(output_prefix(client, job.id) + "/"):
        uri = f"{output_prefix(client, job.id)}/{check_name(name)}"
    elif name == posixpath.basename(status.destination.rstrip("/")):
        uri = status.destination
    else:
        raise SourceError(name)
    stream = client.storages.backend(uri).open_read(uri)  # opened here: a missing file is a 404, not a broken 200

    def chunks() -> Iterator[bytes]:
        with stream:
            while block := stream.read(CHUNK):
                yield block

    return StreamingResponse(chunks(), media_type=content_type(name))


@router.get("/results/{jobId}/{name:path}", name="bytenite_result", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}}, 403: {"description": "bad or expired link"}})
def download_result(
    jobId: JobId,
    name: Annotated[str, Path(max_length=1024)],
    request: Request,
    expires: Annotated[int, Query(ge=0, le=10**12)],
    signature: Annotated[str, Query(pattern=r"^[0-9a-f]{64}$")],
) -> Response:
    """One result of a job, by a signed link from ``GET /jobs/{jobId}/results`` (no token)."""
    state = api_state(request)
    if not signature_ok(state.keys.link_secret(), jobId, name, expires, signature):
        raise ApiError(403, "bad_link", "result link invalid or expired: get a new one from "
                       f"GET /v1/customer/jobs/{jobId}/results")
    try:
        client = state.client(state.store.get(jobId).org)
        job = client.get(jobId)
        return _open_result(client, job, job.status(), name)
    except (JobNotFound, SourceError, ValueError):
        raise ApiError(404, "not_found", f"job {jobId} has no result {name!r} (it may have been deleted)") from None


# -- logs ---------------------------------------------------------------------------

@router.post("/logs", response_model=LogsResponse)
def job_logs(body: LogsBody, client: OrgClient) -> LogsResponse:
    """A job's log lines by stage; app lines by task id (= piece index), filtered by
    ``taskIds`` and ``levels`` when given."""
    lines = client.get(body.jobId).logs()
    return LogsResponse.model_validate(group_logs(lines, body.taskIds, body.levels))
