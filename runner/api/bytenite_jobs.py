"""The rest of ByteNite's customer-API reference, and its older layout (issue 21).

``bytenite.py`` serves the staged flow (create, data source, params, run, results,
abort, delete, logs); this module serves every other operation of the reference —
templates, filter, running tasks, job name, configs, data-source test, info, events —
and the older layout's paths (``POST /jobs/run/{id}`` …), which call the same handlers.
Each acts through the caller's org's ``Client``: another org's job is a 404.

Its router is included before ``bytenite``'s so ``GET /jobs/templates`` is not taken for
a job called ``templates``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

import runner
from runner import admission, guards
from runner.admission import JobRequest
from runner.api import bytenite
from runner.api.bytenite_models import (
    ERROR_RESPONSES, ConfigEnvelope, DataSourceBody, DataSourceInfo, DataSourceOut, DataSourceTestBody,
    DescriptorInfo, EventList, EventOut, FilterBody, GenericResponse, InfoOut, JobEnvelope, JobList, JobNameBody,
    LegacyParams, Pagination, RunBody, RunningTask, RunningTasks, RunningTasksBody, SourceTest, TemplateList,
    TemplateOut,
)
from runner.api.bytenite_views import bytenite_state, descriptor_uri, draft_status, job_view
from runner.api.deps import CurrentPrincipal, OrgClient
from runner.api.problems import ApiError, FieldError
from runner.api.records import extra_fields
from runner.catalog import TemplateInfo
from runner.client import Client
from runner.engines.imports import imported_record
from runner.errors import InvalidParams, SourceError
from runner.models import JobState, JobStatus

__all__ = ["router"]

router = APIRouter(prefix="/v1/customer", tags=["bytenite"], responses=ERROR_RESPONSES)

JobId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="The job's id.")]
FILTER_SCAN = 5000  # newest jobs a filter looks through
_CAMEL = {"task_timeout": "taskTimeout", "job_timeout": "jobTimeout", "test": "isTestJob"}
EVENT_JOBS = 20  # newest jobs whose events GET /events merges when no jobId is given


# -- templates ----------------------------------------------------------------------

def _template_out(client: Client, info: TemplateInfo) -> TemplateOut:
    record = imported_record(client.store, info.ref)
    data = {field: DataSourceOut.model_validate(raw) for field, raw in
            (("dataSource", record and record.data_source), ("dataDestination", record and record.data_destination))
            if raw}
    return TemplateOut(id=info.ref, name=info.name, version=info.version, description=info.description,
                       app=info.app, partitioner=info.partitioner, assembler=info.assembler,
                       params={kind: dict(section) for kind, section in info.defaults.items()},
                       inputs=list(info.inputs), testPieces=info.test_pieces, **data)


@router.get("/jobs/templates", response_model=TemplateList)
def list_templates(
    client: OrgClient,
    limit: Annotated[int, Query(ge=1, le=500, description="Rows per page.")] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="Rows to skip.")] = 0,
) -> TemplateList:
    """The templates a job may name (``id`` is its ``templateId``), by name then version,
    with their default params, test pieces and imported data defaults."""
    infos = client.templates()
    page = infos[offset:offset + limit]
    return TemplateList(data=[_template_out(client, info) for info in page],
                        pagination=Pagination(total=len(infos), offset=offset, hasPrevious=offset > 0,
                                              hasNext=offset + len(page) < len(infos)))


# -- reading jobs ---------------------------------------------------------------------

def _states(wanted: list[str]) -> set[str]:
    """Runner states for ByteNite's (``JOB_STATE_FAILED`` is failed, timed out or
    cancelled) or Runner's own names; 422 naming ``state[i]`` for an unknown one."""
    known = {state.value for state in JobState}
    found: set[str] = set()
    for index, name in enumerate(wanted):
        matches = {value for value in known if name in (value, bytenite_state(JobState(value)))}
        if not matches:
            choices = sorted({bytenite_state(state) for state in JobState})
            raise ApiError(422, "invalid_state", f"state[{index}]: unknown state {name!r}; use one of "
                           f"{', '.join(choices)}", [FieldError(("state", index), "unknown state")])
        found |= matches
    return found


def _moment(field: str, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(422, "invalid_time", f"{field}: {value!r} is not an ISO 8601 time such as "
                       "2025-01-31T12:00:00Z", [FieldError((field,), "not an ISO 8601 time")]) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def _matches(status: JobStatus, states: set[str], name: str | None, after: float | None,
             before: float | None) -> bool:
    created = status.created_at.timestamp()
    return ((not states or status.state.value in states) and (not name or name.lower() in (status.name or "").lower())
            and (after is None or created >= after) and (before is None or created < before))


@router.post("/jobs/filter", response_model=JobList)
def filter_jobs(body: FilterBody, client: OrgClient) -> JobList:
    """The caller's org's jobs that meet every given criterion, newest first, a page at a
    time (``limit``/``offset`` or ``pagination``); it looks through the newest 5,000."""
    states = _states(body.state)
    after, before = _moment("createdAfter", body.createdAfter), _moment("createdBefore", body.createdBefore)
    template = body.templateId.strip() if body.templateId else None
    found = [status for status in client.store.list_jobs(client.org, None, FILTER_SCAN, template)
             if _matches(status, states, body.name, after, before)]
    page_body = body.pagination
    limit = body.limit or (page_body.limit if page_body else 50)
    offset = body.offset if body.offset is not None else (page_body.offset if page_body else 0)
    page = found[offset:offset + limit]
    extras = extra_fields(client, [status.id for status in page], "description")
    return JobList(data=[job_view(client, status, extra["description"]) for status, extra in zip(page, extras)],
                   pagination=Pagination(total=len(found), offset=offset, hasPrevious=offset > 0,
                                         hasNext=offset + len(page) < len(found)))


@router.post("/jobs/runningTasks", response_model=RunningTasks)
def running_tasks(client: OrgClient, body: RunningTasksBody | None = None) -> RunningTasks:
    """The unfinished tasks (pieces without a result) of the org's running jobs, or of
    ``jobId`` only; a job still splitting its input has none yet."""
    body = body or RunningTasksBody()
    jobs = [client.get(body.jobId).status()] if body.jobId else client.jobs(JobState.RUNNING, limit=FILTER_SCAN)
    tasks: list[RunningTask] = []
    total = 0
    for status in jobs:
        if status.state is not JobState.RUNNING or status.pieces_total is None:
            continue
        missing = client.store.missing_pieces(status.id, status.pieces_total)
        total += len(missing)
        tasks += [RunningTask(jobId=status.id, taskId=str(index), state="TASK_STATE_RUNNING")
                  for index in missing[:max(0, body.limit - len(tasks))]]
    return RunningTasks(tasks=tasks, total=total)


# -- changing jobs --------------------------------------------------------------------

def _admission_fields(exc: InvalidParams) -> ApiError:
    """Admission's errors named as the client sent them (``jobTimeout``, not ``job_timeout``)."""
    fields = [FieldError((_CAMEL.get(field, field),), message) for field, message in exc.errors]
    return ApiError(422, "invalid_config", "; ".join(f"{f.path}: {f.msg}" for f in fields), fields)


@router.patch("/jobs/{jobId}/jobname", response_model=JobEnvelope)
def set_job_name(jobId: JobId, body: JobNameBody, client: OrgClient, request: Request) -> JobEnvelope:
    """Rename a job, in any state (a name is a label: it changes nothing the job does);
    a new job's through admission, as every draft edit."""
    status = client.get(jobId).status()
    if status.state is JobState.DRAFT:
        try:
            admission.edit_draft(client.services, client.org, jobId, JobRequest(name=body.name))
        except InvalidParams as exc:
            raise _admission_fields(exc) from None
    else:
        client.store.update(jobId, name=guards.name("name", body.name))
    return bytenite.get_job(jobId, client, request)


@router.get("/jobs/{jobId}/configs", response_model=ConfigEnvelope)
def get_configs(jobId: JobId, client: OrgClient) -> ConfigEnvelope:
    """A job's ``{taskTimeout, jobTimeout, isTestJob}``."""
    return ConfigEnvelope(config=job_view(client, client.get(jobId).status(), None).config)


@router.patch("/jobs/{jobId}/configs", response_model=JobEnvelope)
def set_configs(jobId: JobId, body: RunBody, client: OrgClient, request: Request) -> JobEnvelope:
    """Set a new job's ``{taskTimeout, jobTimeout, isTestJob}`` (or ``{"config": {...}}``),
    each at most ``RUNNER_MAX_TIMEOUT_SECONDS``; 409 once it has run."""
    config = body.merged()
    draft_status(client, jobId)
    try:
        admission.edit_draft(client.services, client.org, jobId, JobRequest(
            task_timeout=config.taskTimeout, job_timeout=config.jobTimeout, test=config.isTestJob))
    except InvalidParams as exc:
        raise _admission_fields(exc) from None
    return bytenite.get_job(jobId, client, request)


# -- data sources, info, events -------------------------------------------------------

@router.post("/datasource/test", response_model=SourceTest)
def test_datasource(body: DataSourceTestBody, client: OrgClient) -> SourceTest:
    """What a job would read from ``dataSource`` (as ``runner check-source``): its object
    count, bytes and first names; 422 naming the field when it cannot be read."""
    found = descriptor_uri(client, body.dataSource, "dataSource")
    if found.uri is None:
        return SourceTest(message="an upload: the job's file, once PUT to its tempUrl", objects=0, bytes=0, first=[])
    try:
        report = client.check_source(found.uri)
    except SourceError as exc:
        raise ApiError(422, "source_unreadable", f"dataSource: {exc}",
                       [FieldError(("dataSource",), str(exc), "source_unreadable")]) from None
    return SourceTest(message=f"{report.objects} object(s), {report.bytes} bytes", objects=report.objects,
                      bytes=report.bytes, first=report.first)


_SOURCES = [
    DescriptorInfo(dataSourceDescriptor="bypass", params=[], description="no input"),
    DescriptorInfo(dataSourceDescriptor="url", params=["url"], description="an http(s) URL"),
    DescriptorInfo(dataSourceDescriptor="s3", params=["bucketName", "name"],
                   description="an S3 object or prefix, read with the fleet's credentials (also 'aws')"),
    DescriptorInfo(dataSourceDescriptor="file", params=["name"],
                   description="a file PUT to the job's dataSource.params.tempUrl, then PATCH uploadcompleted "
                               "(also 'bucket')"),
]
_DESTINATIONS = [
    DescriptorInfo(dataSourceDescriptor="bypass", params=[], description="the result stays in Runner's store"),
    DescriptorInfo(dataSourceDescriptor="bucket", params=["name"],
                   description="the job's own storage: every file the assembler writes (or params.name, a file "
                               "or 'dir/'), each a signed result link"),
    DescriptorInfo(dataSourceDescriptor="s3", params=["bucketName", "name"],
                   description="an S3 object, or a prefix ending in '/' (also 'aws')"),
]


@router.get("/jobs/datasource/info", response_model=DataSourceInfo)
def datasource_info(client: OrgClient) -> DataSourceInfo:
    """The descriptors a job's ``dataSource`` and ``dataDestination`` take (older layout)."""
    return DataSourceInfo(dataSources=_SOURCES, dataDestinations=_DESTINATIONS)


@router.get("/info", response_model=InfoOut)
def info(client: OrgClient) -> InfoOut:
    """Which API answers: Runner's, serving ByteNite's customer API."""
    return InfoOut(name="runner", version=getattr(runner, "__version__", "1"), api="customer",
                   message=f"ByteNite's customer API, served by Runner for org {client.org}")


def _event(job_id: str, event_id: str, fields: dict[str, str]) -> EventOut:
    moment = datetime.fromtimestamp(int(event_id.partition("-")[0]) / 1000, timezone.utc)
    return EventOut(id=event_id, jobId=job_id, type=fields.get("type", "message"),
                    timestamp=moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    data={k: v for k, v in fields.items() if k != "type"})


@router.get("/events", response_model=EventList)
def events(
    client: OrgClient,
    jobId: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Only this job's.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="The newest this many, oldest first.")] = 100,
) -> EventList:
    """A job's events (state changes, progress), or those of the org's 20 newest jobs."""
    ids = [client.get(jobId).id] if jobId else [status.id for status in client.jobs(limit=EVENT_JOBS)]
    found = [_event(job_id, event_id, fields) for job_id in ids
             for event_id, fields in client.store.read_events(job_id)]
    found.sort(key=lambda event: tuple(int(part) for part in event.id.split("-")))
    return EventList(events=found[-limit:])


# -- the older layout -----------------------------------------------------------------

@router.post("/jobs/run/{jobId}", response_model=GenericResponse)
def run_legacy(jobId: JobId, client: OrgClient, who: CurrentPrincipal, body: RunBody | None = None) -> GenericResponse:
    """``POST /jobs/{jobId}/run`` in the older layout."""
    return bytenite.run_job(jobId, client, who, body)


@router.post("/jobs/datasource/{jobId}", response_model=JobEnvelope)
def datasource_legacy(jobId: JobId, body: DataSourceBody, client: OrgClient, request: Request) -> JobEnvelope:
    """``PATCH /jobs/{jobId}/datasource`` in the older layout."""
    return bytenite.set_datasource(jobId, body, client, request)


@router.post("/jobs/params/{jobId}", response_model=JobEnvelope)
def params_legacy(jobId: JobId, body: LegacyParams, client: OrgClient) -> JobEnvelope:
    """``PATCH /jobs/{jobId}/params`` in the older layout: ``{"data": {...}, "preset"}``,
    ``data`` being the app's params (the three sections are taken too)."""
    return bytenite.set_params(jobId, body, client)
