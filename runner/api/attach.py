"""The routes an attached job's process uses (``runner.attach.Job`` calls them): upload
artifacts, add metrics, start, heartbeat, complete, fail.

Each takes an org's key or the job's own key (``deps.job_client``: 404 for any other
job) and refuses a job that has ended with 409. An artifact upload is streamed to the
artifact storage a megabyte at a time — never the whole body in memory — and the body
size is capped by ``RUNNER_ATTACH_MAX_ARTIFACT_BYTES`` before any of it is read
(``guards.BodySizeLimit``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from runner import attached_jobs
from runner.api.deps import JobClient, api_state
from runner.api.problems import ApiError, BodyTooLarge, FieldError
from runner.api.v1 import JobId
from runner.api.v1_models import ERROR_RESPONSES
from runner.artifacts import ArtifactIO, artifact_prefix, check_name
from runner.client import Client
from runner.errors import IllegalTransition, JobNotFound, SourceError
from runner.models import JobState, JobStatus

__all__ = ["router"]

router = APIRouter(prefix="/v1/jobs", tags=["attached jobs"], responses=ERROR_RESPONSES)

WRITE_CHUNK = 1024 * 1024  # bytes handed to the storage writer at a time
MAX_METRICS = 10_000  # values per POST .../metrics


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricValue(_Body):
    name: str = Field(..., min_length=1, max_length=200)
    value: float = Field(..., allow_inf_nan=False)
    step: int | None = Field(None, ge=0, le=2**53)


class MetricsAdded(BaseModel):
    added: int


class ArtifactStored(BaseModel):
    name: str
    bytes: int


class JobStart(_Body):
    host: str | None = Field(None, max_length=255, description="Where the process runs.")
    pid: int | None = Field(None, ge=0, le=2**31)


class Heartbeat(BaseModel):
    state: JobState


class JobComplete(_Body):
    model: str | None = Field(None, min_length=1, max_length=1024, description="The model's artifact name.")


class JobFail(_Body):
    error: str = Field(..., min_length=1, max_length=100_000, description="What went wrong.")
    type: str | None = Field(None, max_length=200, description="The exception's type, e.g. ValueError.")
    traceback: str | None = Field(None, max_length=1_000_000)


def _open_job(client: Client, job_id: str) -> JobState:
    """The job's state (404 if it is not the caller's org's); 409 once it has ended. Two
    fields are read, not the record: these routes run once per metric or heartbeat."""
    fields = client.store.fields(job_id, "org", "state")
    if fields["org"] != client.org or fields["state"] is None:
        raise JobNotFound(f"no job {job_id!r} in org {client.org!r} (it may have expired)")
    state = JobState(fields["state"])
    if state.is_final:
        raise ApiError(409, "job_ended", f"job {job_id} has already ended ({state.value}); create a new job",
                       extra={"state": state.value})
    return state


def _name(name: str) -> str:
    try:
        return check_name(name)
    except ValueError as exc:
        raise ApiError(422, "invalid_name", str(exc), [FieldError(("name",), str(exc))]) from None


@router.put("/{job_id}/artifacts/{name:path}", response_model=ArtifactStored, openapi_extra={"requestBody": {
    "required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
async def put_artifact(job_id: JobId, name: str, client: JobClient, request: Request) -> ArtifactStored:
    """Store the body as artifact ``name``, streamed to the artifact storage (multipart on
    S3); it replaces one of that name only once the whole body has arrived."""
    name = _name(name)
    await run_in_threadpool(_open_job, client, job_id)
    io = ArtifactIO(client.storages, artifact_prefix(client.settings, job_id))
    limit = api_state(request).settings.attach_max_artifact_bytes
    writer = await run_in_threadpool(io.open_write, name)
    size, buffer = 0, bytearray()
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"artifact is over the limit of {limit} bytes (RUNNER_ATTACH_MAX_ARTIFACT_BYTES)")
            buffer += chunk
            if len(buffer) >= WRITE_CHUNK:
                await run_in_threadpool(writer.write, bytes(buffer))
                buffer.clear()
        if buffer:
            await run_in_threadpool(writer.write, bytes(buffer))
        await run_in_threadpool(writer.close)
    except BaseException:
        await run_in_threadpool(writer.abort)
        raise
    return ArtifactStored(name=name, bytes=size)


@router.post("/{job_id}/metrics", response_model=MetricsAdded)
def post_metrics(job_id: JobId, client: JobClient,
                 body: Annotated[list[MetricValue], Body(max_length=MAX_METRICS)]) -> MetricsAdded:
    """Add metric values (``[{name, value, step?}]``); live in ``GET /v1/jobs/{id}`` at once."""
    _open_job(client, job_id)
    items = [{"name": m.name, "value": m.value, **({"step": m.step} if m.step is not None else {})} for m in body]
    return MetricsAdded(added=client.store.metric_series.add(job_id, items))


@router.post("/{job_id}/start", response_model=JobStatus)
def start_job(job_id: JobId, client: JobClient, body: JobStart | None = None) -> JobStatus:
    """The attached process starts the job: ``running``, watched by its heartbeats."""
    body = body or JobStart()
    _open_job(client, job_id)
    _act(attached_jobs.start, client.store, job_id, body.host, body.pid)
    return client.get(job_id).status()


@router.post("/{job_id}/heartbeat", response_model=Heartbeat)
def heartbeat(job_id: JobId, client: JobClient) -> Heartbeat:
    """The attached process is alive; without one for ``RUNNER_ATTACH_DEAD_SECONDS`` the
    job ends ``failed``."""
    _open_job(client, job_id)
    return Heartbeat(state=_act(attached_jobs.heartbeat, client.store, job_id))


@router.post("/{job_id}/complete", response_model=JobStatus)
def complete_job(job_id: JobId, client: JobClient, body: JobComplete | None = None) -> JobStatus:
    """End the job ``completed``; ``model`` names the artifact holding its model (uploaded
    first), recorded in its result and ``output.json``."""
    body = body or JobComplete()
    _open_job(client, job_id)
    if body.model is not None:
        _require_artifact(client, job_id, _name(body.model))
    _act(attached_jobs.complete, client.services, job_id, body.model)
    return client.get(job_id).status()


@router.post("/{job_id}/fail", response_model=JobStatus)
def fail_job(job_id: JobId, client: JobClient, body: JobFail) -> JobStatus:
    """End the job ``failed`` with the process's error (type, message, traceback)."""
    _open_job(client, job_id)
    _act(attached_jobs.fail, client.services, job_id, body.error, body.type, body.traceback)
    return client.get(job_id).status()


def _require_artifact(client: Client, job_id: str, name: str) -> None:
    io = ArtifactIO(client.storages, artifact_prefix(client.settings, job_id))
    try:
        io.open_read(name).close()
    except SourceError:
        msg = f"job {job_id} has no artifact {name!r}: upload it first (PUT /v1/jobs/{job_id}/artifacts/{name})"
        raise ApiError(422, "no_such_artifact", msg, [FieldError(("model",), msg)]) from None


def _act(action: Any, *args: Any) -> Any:
    """Run a state change of ``attached_jobs``; one that raced an ending is a 409."""
    try:
        return action(*args)
    except IllegalTransition as exc:
        raise ApiError(409, "job_state", str(exc)) from None
