"""How ByteNite's concepts map onto Runner's: one job, another view (issue 11).

- a data source descriptor is a URI (``url`` → ``http(s)://``, ``bypass`` → ``bypass:``,
  ``s3``/``aws`` → ``s3://bucket/name``, a ``bucket`` destination → the job's artifacts
  folder ``output/`` (whatever the assembler writes: each file is one result), a ``file``
  (or ``bucket``) source → an upload location ``input/<name>`` in the job's artifacts),
  and the URI reads back as a descriptor, so nothing ByteNite-specific is stored but a
  job's ``description``;
- a job reads as ByteNite's job object, its state as ``JOB_STATE_*``;
- a job's log lines group by stage, app lines by task id (= piece index);
- result links are signed with an HMAC and an expiry, so they need no token.
"""

from __future__ import annotations

import hashlib
import hmac
import mimetypes
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlparse

from runner.api.bytenite_models import ByteNiteJob, DataSource, DataSourceOut, JobConfigOut, LogEntry
from runner.api.problems import ApiError, FieldError, public
from runner.artifacts import artifact_prefix, check_name
from runner.client import Client
from runner.engines.imports import imported_record
from runner.job import describe_error
from runner.errors import SourceError
from runner.models import JobState, JobStatus, LogLine

__all__ = ["Descriptor", "descriptor_uri", "uri_descriptor", "bytenite_state", "job_view", "output_prefix",
           "upload_prefix", "template_descriptors", "draft_status", "group_logs", "sign", "signature_ok", "content_type", "DEFAULT_UPLOAD_NAME", "RESULT_JSON"]

DEFAULT_UPLOAD_NAME = "upload"
RESULT_JSON = "result.json"
_INPUTS = ("bypass", "url", "s3", "aws", "file", "bucket")  # file/bucket: a file the client uploads
_OUTPUTS = ("bypass", "s3", "aws", "bucket")  # ByteNite's url (HTTP) was input-only, as Runner's http(s) is
_UPLOADS = ("file", "bucket")


class Descriptor:
    """A checked descriptor: its URI (``None`` for ``bucket``, known once the job has an
    id: see :meth:`uri_for`) and warnings to record on the job."""

    def __init__(self, uri: str | None, warnings: list[str], output_name: str | None = None,
                 upload_name: str | None = None) -> None:
        self.uri = uri
        self.warnings = warnings
        self.output_name = output_name  # a bucket destination: "" (the folder), "dir/" or "file"
        self.upload_name = upload_name  # an uploaded source's name under input/

    def uri_for(self, client: Client, job_id: str) -> str:
        if self.uri is not None:
            return self.uri
        if self.upload_name is not None:
            return f"{upload_prefix(client, job_id)}/{self.upload_name}"
        return f"{output_prefix(client, job_id)}/{self.output_name}"


def output_prefix(client: Client, job_id: str) -> str:
    """Where a ``bucket`` destination writes: the job's artifacts, under ``output/``."""
    return f"{artifact_prefix(client.settings, job_id)}/output"


def upload_prefix(client: Client, job_id: str) -> str:
    """Where a ``file`` source's upload lands: the job's artifacts, under ``input/``."""
    return f"{artifact_prefix(client.settings, job_id)}/input"


def _bad(field: tuple[str, ...], message: str, kind: str = "invalid_descriptor") -> ApiError:
    error = FieldError(field, message, kind)
    return ApiError(422, kind, f"{error.path}: {message}", [error])


def _param(params: dict[str, Any], field: tuple[str, ...], *names: str) -> str:
    for name in names:
        value = params.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise _bad((*field, "params", names[0]), f"required: a non-empty string ({names[0]})")


def _name(source: DataSource, field: str, folder: bool) -> str:
    """``params.name`` checked as a relative path ("" when not given); a destination's may
    end in ``/`` (a folder of the assembler's files)."""
    raw = str(source.params.get("name") or "").strip()
    if not raw or (folder and raw == "/"):
        return ""
    try:
        if folder and raw.endswith("/"):
            return check_name(raw.rstrip("/")) + "/"
        return check_name(raw)
    except ValueError as exc:
        raise _bad((field, "params", "name"), str(exc)) from None


def descriptor_uri(client: Client, source: DataSource, field: str) -> Descriptor:
    """The URI a descriptor names, checked by the fleet's storages; raises a 422 naming the
    field (``dataSource.params.url``) otherwise. ``field`` is ``dataSource`` or
    ``dataDestination``."""
    kind = source.dataSourceDescriptor.strip().lower()
    allowed = _OUTPUTS if field == "dataDestination" else _INPUTS
    if kind not in allowed:
        raise _bad((field, "dataSourceDescriptor"), f"unsupported descriptor {source.dataSourceDescriptor!r}; "
                   f"use one of: {', '.join(allowed)}")
    warnings: list[str] = []
    if kind == "bypass":
        return Descriptor("bypass:", warnings)
    if kind in _UPLOADS and field == "dataSource":
        return Descriptor(None, warnings, upload_name=_name(source, field, folder=False) or DEFAULT_UPLOAD_NAME)
    if kind == "bucket":
        return Descriptor(None, warnings, _name(source, field, folder=True))
    if kind == "url":
        uri = _param(source.params, (field,), "url")
        where: tuple[str, ...] = (field, "params", "url")
        if uri.partition(":")[0].lower() not in ("http", "https"):
            raise _bad(where, f"{uri!r} is not an http(s) URL")
    else:  # s3 / aws, with the fleet's credentials
        bucket = _param(source.params, (field,), "bucketName", "bucket")
        name = _param(source.params, (field,), "name", "key")
        uri, where = f"s3://{bucket}/{name.lstrip('/')}", (field, "params", "name")
        secret = source.params.get("secretId") or source.params.get("secret_id")
        if secret:
            warnings.append(f"{field}: secret {secret!r} ignored; Runner reads S3 with the fleet's credentials "
                            "(RUNNER_S3_*)")
    try:
        return Descriptor(client.storages.check(uri), warnings)
    except (SourceError, ValueError) as exc:  # urlparse raises ValueError ("http://[::1")
        raise _bad(where, public(exc), "invalid_uri") from None


def draft_status(client: Client, job_id: str) -> JobStatus:
    """A new job's record (404 for none in the org); 409 once it has been run."""
    status = client.get(job_id).status()
    if status.state is not JobState.DRAFT:
        raise ApiError(409, "not_a_draft", f"job {job_id} is {status.state.value}; only a new job "
                       "(JOB_STATE_NEW) can be changed or run")
    return status


def template_descriptors(client: Client, ref: str) -> dict[str, Descriptor]:
    """The ``dataSource``/``dataDestination`` an imported ByteNite template carries, as the
    defaults of its new jobs (``runner template import`` keeps them); {} for any other."""
    record = imported_record(client.store, ref)
    found = {}
    for field, raw in (("dataSource", record and record.data_source),
                       ("dataDestination", record and record.data_destination)):
        if raw:
            found[field] = descriptor_uri(client, DataSource.model_validate(raw), field)
    return found


def uri_descriptor(client: Client, job_id: str, uri: str) -> DataSourceOut:
    """A stored URI read back as ByteNite's descriptor."""
    parsed = urlparse(uri)
    out, upload = output_prefix(client, job_id) + "/", upload_prefix(client, job_id) + "/"
    if uri in ("bypass:", "bypass", ""):
        return DataSourceOut(dataSourceDescriptor="bypass")
    if uri.startswith(out):
        return DataSourceOut(dataSourceDescriptor="bucket", params={"name": uri[len(out):]} if uri != out else {})
    if uri.startswith(upload):  # its tempUrl is signed per request (bytenite_uploads.with_upload_url)
        return DataSourceOut(dataSourceDescriptor="file", params={"name": uri[len(upload):]})
    if parsed.scheme in ("http", "https"):
        return DataSourceOut(dataSourceDescriptor="url", params={"url": uri})
    if parsed.scheme == "s3":
        return DataSourceOut(dataSourceDescriptor="s3", params={"bucketName": parsed.netloc,
                                                             "name": parsed.path.lstrip("/")})
    return DataSourceOut(dataSourceDescriptor=parsed.scheme or "uri", params={"uri": uri})


def bytenite_state(state: JobState) -> str:
    """draft → JOB_STATE_NEW, completed → JOB_STATE_COMPLETE, failed, timed out and
    cancelled → JOB_STATE_FAILED (their clients poll until COMPLETE or FAILED)."""
    if state is JobState.DRAFT:
        return "JOB_STATE_NEW"
    if state is JobState.COMPLETED:
        return "JOB_STATE_COMPLETE"
    if state in (JobState.FAILED, JobState.TIMED_OUT, JobState.CANCELLED):
        return "JOB_STATE_FAILED"
    return f"JOB_STATE_{state.value.upper()}"


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def job_view(client: Client, status: JobStatus, description: str | None) -> ByteNiteJob:
    """``status`` as ByteNite's job object."""
    ended = status.state.is_final
    return ByteNiteJob(
        id=status.id, templateId=status.template, name=status.name, description=description,
        state=bytenite_state(status.state), runnerState=status.state.value,
        config=JobConfigOut(taskTimeout=max(1, round(status.task_timeout)), jobTimeout=max(1, round(status.job_timeout)),
                         isTestJob=status.test),
        dataSource=uri_descriptor(client, status.id, status.source),
        dataDestination=uri_descriptor(client, status.id, status.destination),
        params={kind: dict(status.params.get(kind, {})) for kind in ("partitioner", "app", "assembler")},
        createdAt=_iso(status.created_at) or "", startedAt=_iso(status.started_at or status.queued_at),
        endedAt=_iso(status.finished_at) if ended else None, numChunks=status.pieces_total,
        errorMessage=describe_error(status) if status.state in (JobState.FAILED, JobState.TIMED_OUT,
                                                                JobState.CANCELLED) else None,
    )


def _entry(line: LogLine) -> LogEntry:
    return LogEntry(log=line.msg, timestamp=_iso(line.t) or "", level=line.level.lower(), container=line.source)


def group_logs(lines: list[LogLine], task_ids: list[int], levels: list[str]) -> dict[str, Any]:
    """Lines by stage: ``partitioner`` (and Runner's job-level lines), ``assembler``, and
    ``taskrunner`` by task id (piece index), each a list of ``{log, timestamp, level,
    container}``. ``task_ids`` and ``levels`` filter when not empty."""
    wanted_levels = {level.lower() for level in levels}
    wanted_tasks = set(task_ids)
    out: dict[str, Any] = {"partitioner": {"logs": []}, "assembler": {"logs": []}, "taskrunner": {}}
    for line in lines:
        if wanted_levels and line.level.lower() not in wanted_levels:
            continue
        if line.piece is not None or line.start is not None:
            pieces = [line.piece] if line.piece is not None else range(line.start or 0, line.stop or 0)
            for piece in pieces:
                if not wanted_tasks or piece in wanted_tasks:
                    out["taskrunner"].setdefault(str(piece), {"logs": []})["logs"].append(_entry(line))
        elif not wanted_tasks:
            stage = "assembler" if line.source == "assembler" else "partitioner"
            out[stage]["logs"].append(_entry(line))
    return out


def _mac(secret: bytes, job_id: str, name: str, expires: int) -> str:
    return hmac.new(secret, f"{job_id}\n{name}\n{expires}".encode(), hashlib.sha256).hexdigest()


def sign(secret: bytes, job_id: str, name: str, seconds: int) -> tuple[int, str]:
    """``(expires, signature)`` of a link to result ``name`` of ``job_id``."""
    expires = int(time.time()) + seconds
    return expires, _mac(secret, job_id, name, expires)


def signature_ok(secret: bytes, job_id: str, name: str, expires: int, signature: str) -> bool:
    """Whether a link's signature is ours and it has not expired (compared in constant time)."""
    return expires >= time.time() and hmac.compare_digest(_mac(secret, job_id, name, expires), signature)


def content_type(name: str) -> str:
    """A result's media type, by its name (``results_archive.zip`` → ``application/zip``)."""
    return mimetypes.guess_type(name)[0] or "application/octet-stream"
