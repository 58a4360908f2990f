"""ByteNite's file-upload source (the temporary-bucket flow), on Runner's job artifacts.

A job whose ``dataSource`` is ``file`` (or ``bucket``) reads the file its client uploads:
the job as read back carries ``dataSource.params.tempUrl``, a signed link (no token,
``RUNNER_API_LINK_SECONDS``) that takes one ``PUT`` of the file's bytes into the job's
artifacts under ``input/<name>``; ``PATCH /jobs/{id}/uploadcompleted`` (the older layout:
``POST /jobs/uploadcompleted/{id}``) then confirms it, and the job runs on it.

The body is streamed (spooled to disk past a few MiB, never held whole in memory) and
capped at ``RUNNER_API_MAX_UPLOAD_BYTES``: a larger ``Content-Length`` is refused before
reading anything, a longer chunked body as soon as it passes the cap, with nothing
stored (the request-size guard applies that cap to this one route, and the route checks
it again, so it holds whatever is in front).
"""

from __future__ import annotations

import shutil
import tempfile
from typing import IO, Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from runner import joblog
from runner.api.bytenite_models import ERROR_RESPONSES, ByteNiteErrorBody, ByteNiteJob, UploadAnswer
from runner.api.bytenite_views import draft_status, sign, signature_ok, upload_prefix
from runner.api.deps import ApiState, OrgClient, api_state
from runner.api.problems import ApiError
from runner.client import Client
from runner.errors import JobNotFound, SourceError

__all__ = ["router", "UPLOADS", "with_upload_url"]

router = APIRouter(prefix="/v1/customer", tags=["bytenite"], responses=ERROR_RESPONSES)

UPLOADS = "/v1/customer/uploads/"  # where the request-size guard applies RUNNER_API_MAX_UPLOAD_BYTES
JobId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="The job's id.")]
CHUNK = 1024 * 1024
SPOOL = 8 * CHUNK  # bytes held in memory before the spool moves to a temporary file


def _purpose(job_id: str) -> str:
    """What an upload link signs instead of the bare job id, so a result link (which
    signs the job id) can never be replayed as an upload link, nor the other way."""
    return f"upload:{job_id}"


def with_upload_url(job: ByteNiteJob, request: Request) -> ByteNiteJob:
    """``job`` with a fresh signed ``dataSource.params.tempUrl`` when it is a new job that
    reads an upload (ByteNite's clients PUT their file there)."""
    if job.dataSource.dataSourceDescriptor != "file" or job.runnerState != "draft":
        return job
    state = api_state(request)
    name = str(job.dataSource.params.get("name", ""))
    expires, signature = sign(state.keys.link_secret(), _purpose(job.id), name, state.settings.api_link_seconds)
    url = request.url_for("bytenite_upload", jobId=job.id, name=name).include_query_params(
        expires=expires, signature=signature)
    job.dataSource.params["tempUrl"] = str(url)
    return job


def _target(state: ApiState, job_id: str, name: str) -> tuple[Client, str]:
    """The client of the job's org and the URI the upload writes: the job must be new and
    read exactly this upload."""
    try:
        client = state.client(state.store.get(job_id).org)
    except JobNotFound:
        raise ApiError(404, "not_found", f"no job {job_id} (it may have been deleted)") from None
    status = draft_status(client, job_id)
    uri = f"{upload_prefix(client, job_id)}/{name}"
    if status.source != uri:
        raise ApiError(409, "not_the_upload", f"job {job_id} no longer reads upload {name!r}: get a new tempUrl "
                       f"from GET /v1/customer/jobs/{job_id}")
    return client, uri


def _store(client: Client, uri: str, spool: IO[bytes]) -> None:
    with client.storages.backend(uri).open_write(uri) as out:
        shutil.copyfileobj(spool, out, CHUNK)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "upload_too_large", f"the upload is over the limit of {limit} bytes "
                    "(RUNNER_API_MAX_UPLOAD_BYTES); nothing was stored", headers={"Connection": "close"})


@router.put("/uploads/{jobId}/{name:path}", name="bytenite_upload", response_model=UploadAnswer,
            responses={403: {"model": ByteNiteErrorBody, "description": "bad or expired upload link"},
                       415: {"model": ByteNiteErrorBody, "description": "a multipart form instead of the raw file"}})
async def upload(
    jobId: JobId,
    name: Annotated[str, Path(max_length=1024)],
    request: Request,
    expires: Annotated[int, Query(ge=0, le=10**12)],
    signature: Annotated[str, Query(pattern=r"^[0-9a-f]{64}$")],
) -> UploadAnswer:
    """The file a new job reads, PUT to its ``dataSource.params.tempUrl`` (no token: the
    link is signed). Its raw bytes, streamed and size-capped; a second PUT replaces it."""
    state = api_state(request)
    if not signature_ok(state.keys.link_secret(), _purpose(jobId), name, expires, signature):
        raise ApiError(403, "bad_link", f"upload link invalid or expired: get a new tempUrl from "
                       f"GET /v1/customer/jobs/{jobId}")
    if request.headers.get("content-type", "").lower().startswith("multipart/"):
        raise ApiError(415, "multipart_upload", "send the file's raw bytes as the body (requests.put(tempUrl, "
                       "data=f)), not a multipart form (files=...); nothing was stored")
    limit = state.settings.api_max_upload_bytes
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise _too_large(limit)
    client, uri = await run_in_threadpool(_target, state, jobId, name)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL) as spool:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            spool.write(chunk)
        spool.seek(0)
        await run_in_threadpool(_store, client, uri, spool)
    return UploadAnswer(message=f"{size} bytes stored for job {jobId}; confirm with PATCH "
                        f"/v1/customer/jobs/{jobId}/uploadcompleted", bytes=size)


def _completed(client: Client, job_id: str) -> UploadAnswer:
    """Confirm a new job's upload: 409 unless its source is an upload that holds a file."""
    status = draft_status(client, job_id)
    if not status.source.startswith(upload_prefix(client, job_id) + "/"):
        raise ApiError(409, "no_upload", f"job {job_id} does not read an upload: set its dataSource to "
                       '{"dataSourceDescriptor": "file"} first, then PUT the file to dataSource.params.tempUrl')
    try:
        size = client.storages.backend(status.source).size(status.source)
    except (SourceError, OSError):
        raise ApiError(409, "not_uploaded", f"nothing uploaded for job {job_id} yet: PUT the file to the "
                       "job's dataSource.params.tempUrl first") from None
    client.store.add_logs(job_id, [joblog.line(f"upload completed: {size} bytes")])
    return UploadAnswer(message=f"upload of job {job_id} completed ({size} bytes)", bytes=size)


@router.patch("/jobs/{jobId}/uploadcompleted", response_model=UploadAnswer)
def upload_completed(jobId: JobId, client: OrgClient) -> UploadAnswer:
    """Confirm the file PUT to the job's ``tempUrl`` (409 if there is none yet)."""
    return _completed(client, jobId)


@router.post("/jobs/uploadcompleted/{jobId}", response_model=UploadAnswer)
def upload_completed_legacy(jobId: JobId, client: OrgClient) -> UploadAnswer:
    """The older layout of ``PATCH /jobs/{jobId}/uploadcompleted`` (its body, ``{}``, is ignored)."""
    return _completed(client, jobId)
