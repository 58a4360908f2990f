"""Request and response bodies of ByteNite's customer API (``/v1/customer``).

Field names are ByteNite's (camelCase), so their clients work with only the base URL
changed. Bodies refuse unknown top-level fields (a misspelt ``taskTimout`` would
otherwise be silently ignored); a descriptor's ``params`` is an open object, as in
ByteNite's API (``@type`` and provider fields Runner does not use are ignored).
Timeouts are ints or numeric strings: ByteNite's API is protobuf JSON, whose int64
fields travel as strings.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "DataSource", "JobParams", "JobConfig", "JobCreateBody", "DataSourceBody", "RunBody", "LogsBody",
    "ByteNiteJob", "DataSourceOut", "JobConfigOut", "TemplateInfo", "JobEnvelope", "Pagination", "JobList", "ResultLink", "Results",
    "GenericResponse", "LogEntry", "StageLogs", "LogsResponse", "ByteNiteErrorBody", "ERROR_RESPONSES",
    "FilterBody", "PageBody", "RunningTasksBody", "JobNameBody", "LegacyParams", "DataSourceTestBody",
    "TemplateOut", "TemplateList", "ConfigEnvelope", "RunningTask", "RunningTasks", "SourceTest", "InfoOut",
    "EventOut", "EventList", "DescriptorInfo", "DataSourceInfo", "UploadAnswer",
]


def _int_string(value: Any) -> Any:
    """``"30"`` → 30 (protobuf int64 as JSON); anything else is left to pydantic's checks."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return value


Seconds = Annotated[int, BeforeValidator(_int_string), Field(gt=0, le=366 * 24 * 3600)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSource(_Body):
    """``{dataSourceDescriptor, params}``: ``bypass``, ``url`` (``params.url``, input only), ``s3``/``aws``
    (``params.bucketName``, ``params.name``), ``bucket`` for output (the job's artifacts folder
    ``output/``: every file the assembler writes, or only ``params.name``, a file or a
    ``dir/``), or ``file`` (also ``bucket``) for input: a file the client uploads to
    ``params.tempUrl`` of the job as read back."""

    dataSourceDescriptor: str = Field(..., min_length=1, max_length=40)
    params: dict[str, Any] = Field(default_factory=dict)


class JobParams(_Body):
    """``{partitioner, app, assembler}``; ``preset`` is accepted and ignored."""

    partitioner: dict[str, Any] | None = None
    app: dict[str, Any] | None = None
    assembler: dict[str, Any] | None = None
    preset: str | None = Field(None, max_length=200)

    def sections(self) -> dict[str, dict[str, Any]]:
        return {kind: section for kind in ("partitioner", "app", "assembler")
                if (section := getattr(self, kind)) is not None}


class JobConfig(_Body):
    taskTimeout: Seconds | None = None
    jobTimeout: Seconds | None = None
    isTestJob: bool | None = None


class JobCreateBody(_Body):
    jobId: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{0,64}$",
                              description="An existing new job of yours to update; omit (or null) to create one.")
    templateId: str = Field(..., min_length=1, max_length=200, description="`name@version`, or `name` for the newest.")
    name: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=2000)
    dataSource: DataSource | None = None
    dataDestination: DataSource | None = None
    params: JobParams | None = None
    config: JobConfig | None = None


class DataSourceBody(_Body):
    dataSource: DataSource | None = None
    dataDestination: DataSource | None = None


class RunBody(JobConfig):
    """``{taskTimeout, jobTimeout, isTestJob}`` or ``{"config": {...}}`` (the latter wins)."""

    config: JobConfig | None = None

    def merged(self) -> JobConfig:
        top = JobConfig(taskTimeout=self.taskTimeout, jobTimeout=self.jobTimeout, isTestJob=self.isTestJob)
        if self.config is None:
            return top
        return top.model_copy(update=self.config.model_dump(exclude_none=True))


class PageBody(_Body):
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=1_000_000)


class FilterBody(_Body):
    """``POST /jobs/filter``: every given criterion must hold. ``state`` takes ByteNite's
    (``JOB_STATE_COMPLETE``) or Runner's (``completed``) names."""

    state: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(default_factory=list, max_length=20)
    templateId: str | None = Field(None, max_length=200, description="`name` or `name@version`.")
    name: str | None = Field(None, max_length=200, description="A part of the job's name.")
    createdAfter: str | None = Field(None, max_length=40, description="ISO 8601.")
    createdBefore: str | None = Field(None, max_length=40, description="ISO 8601.")
    pagination: PageBody | None = None
    limit: int | None = Field(None, ge=1, le=500)
    offset: int | None = Field(None, ge=0, le=1_000_000)


class RunningTasksBody(_Body):
    jobId: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Only this job's (else all).")
    limit: int = Field(100, ge=1, le=1000)


class JobNameBody(_Body):
    name: str = Field(..., min_length=1, max_length=200)


class LegacyParams(JobParams):
    """The older layout's ``POST /jobs/params/{id}``: ``{"data": {...}, "preset": ...}``,
    ``data`` being the app's params (or the three sections, as the newer layout)."""

    data: dict[str, Any] | None = None

    def sections(self) -> dict[str, dict[str, Any]]:
        found = super().sections()
        if self.data is not None:
            found["app"] = {**self.data, **found.get("app", {})}
        return found


class DataSourceTestBody(_Body):
    dataSource: DataSource


class LogsBody(_Body):
    jobId: str = Field(..., pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    taskIds: list[Annotated[int, BeforeValidator(_int_string), Field(ge=0)]] = Field(default_factory=list,
                                                                                     max_length=10_000)
    levels: list[str] = Field(default_factory=list, max_length=10)


# -- responses ----------------------------------------------------------------------

class TemplateInfo(BaseModel):
    id: str
    owner: str = ""
    description: str = ""
    app: str
    partitioner: str
    assembler: str


class DataSourceOut(BaseModel):
    """A descriptor as read back (unconstrained: a response never fails validation)."""

    dataSourceDescriptor: str
    params: dict[str, Any] = Field(default_factory=dict)


class JobConfigOut(BaseModel):
    taskTimeout: int
    jobTimeout: int
    isTestJob: bool


class ByteNiteJob(BaseModel):
    """A Runner job as ByteNite's clients read it (``runnerState`` is Runner's own state)."""

    id: str
    templateId: str
    name: str | None = None
    description: str | None = None
    state: str
    runnerState: str
    config: JobConfigOut
    dataSource: DataSourceOut
    dataDestination: DataSourceOut
    params: dict[str, dict[str, Any]]
    createdAt: str
    startedAt: str | None = None
    endedAt: str | None = None
    numChunks: int | None = None
    errorMessage: str | None = None


class JobEnvelope(BaseModel):
    job: ByteNiteJob
    templateInfo: TemplateInfo


class Pagination(BaseModel):
    total: int
    offset: int
    hasPrevious: bool
    hasNext: bool


class JobList(BaseModel):
    pagination: Pagination
    data: list[ByteNiteJob]


class ResultLink(BaseModel):
    name: str
    link: str = Field(description="A signed link (48 h); needs no Authorization header.")
    contentType: str = Field("application/octet-stream", description="The file's media type, by its name.")


class Results(BaseModel):
    results: list[ResultLink]
    message: str | None = Field(None, description="Why there are no results yet (with a 202).")


class GenericResponse(BaseModel):
    ok: bool = True
    message: str


class LogEntry(BaseModel):
    log: str
    timestamp: str
    level: str
    container: str


class StageLogs(BaseModel):
    logs: list[LogEntry]


class LogsResponse(BaseModel):
    partitioner: StageLogs
    assembler: StageLogs
    taskrunner: dict[str, StageLogs]


class TemplateOut(BaseModel):
    id: str = Field(description="`name@version`: a job's templateId.")
    name: str
    version: str
    description: str = ""
    app: str
    partitioner: str
    assembler: str
    params: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Default params by kind.")
    inputs: list[str] = Field(default_factory=list)
    testPieces: int
    dataSource: DataSourceOut | None = None
    dataDestination: DataSourceOut | None = None


class TemplateList(BaseModel):
    pagination: Pagination
    data: list[TemplateOut]


class ConfigEnvelope(BaseModel):
    config: JobConfigOut


class RunningTask(BaseModel):
    jobId: str
    taskId: str = Field(description="The piece index.")
    state: str = Field(description="TASK_STATE_RUNNING: a piece of a running job without a result yet.")


class RunningTasks(BaseModel):
    tasks: list[RunningTask]
    total: int = Field(description="Unfinished tasks in all (the list stops at `limit`).")


class SourceTest(BaseModel):
    ok: bool = True
    message: str
    objects: int
    bytes: int
    first: list[str]


class InfoOut(BaseModel):
    name: str
    version: str
    api: str
    message: str


class EventOut(BaseModel):
    id: str
    jobId: str
    type: str
    timestamp: str
    data: dict[str, str]


class EventList(BaseModel):
    events: list[EventOut]


class DescriptorInfo(BaseModel):
    dataSourceDescriptor: str
    params: list[str]
    description: str


class DataSourceInfo(BaseModel):
    dataSources: list[DescriptorInfo]
    dataDestinations: list[DescriptorInfo]


class UploadAnswer(BaseModel):
    ok: bool = True
    message: str
    bytes: int


class ByteNiteError(BaseModel):
    code: int
    message: str
    description: str


class ByteNiteErrorBody(BaseModel):
    ok: bool = False
    message: str
    error: ByteNiteError


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ByteNiteErrorBody, "description": text} for status, text in (
        (400, "the job ended failed, timed out or cancelled"), (401, "missing, bad, expired or revoked token"), (404, "no such job (in this org)"),
        (409, "the job's state does not allow this"), (413, "body over RUNNER_API_MAX_BODY_BYTES"),
        (422, "invalid input; `error.description` names each bad field"), (429, "rate limit; see Retry-After"),
    )
}
