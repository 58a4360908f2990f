"""Job admission: the one door by which a job enters Runner.

Every way to make a job — ``Client.submit``/``create``/``run``, a ``Job`` handle's draft
edits, a schedule's firing, the three HTTP API families and whatever comes next — states
what it wants as a :class:`JobRequest` and comes through here. So each check runs once,
in one order (guards → template → options → params → inputs → source/destination →
retention), and a new caller cannot forget one: the 200-day ByteNite ``jobTimeout`` that
slipped past ``RUNNER_MAX_TIMEOUT_SECONDS`` was a check one door had and another lacked.

Only this module writes a new job record (``store.create``) and sends a partition task
(``send_partition``); ``tests/test_boundaries.py`` holds it to that. It takes the
lifecycle's :class:`~runner.lifecycle.Services`, never a ``Client``: a worker's scheduler
admits through the worker's own Celery app and store.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runner import guards, job_fields, joblog
from runner.catalog import TemplateInfo, find_template
from runner.checks import check_destination, check_source, param_warnings
from runner.dispatch import partition_commands_many, send_partition, send_partitions, send_resume
from runner.errors import IllegalTransition, InvalidParams, QuotaExceeded, SourceError, TemplateNotFound
from runner.fleet import check_worker_roots, start_hint, unserved_queues
from runner.lifecycle import Services, end_job
from runner.models import ErrorInfo, JobState, RunOptions
from runner.params import validate_params
from runner.job_request import OPTIONS, JobRequest
from runner.store.job_records import NewJob

__all__ = ["JobRequest", "Checked", "check", "admit", "admit_record", "Admission", "admit_many", "admit_attached",
           "edit_draft", "queue_draft", "retry_failed", "new_job_id"]

@dataclass
class Checked:
    """A request that passed :func:`check`: its template and its values, normalised."""

    template: TemplateInfo
    values: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    options: RunOptions = field(default_factory=RunOptions)


def new_job_id() -> str:
    """A fresh job id (a caller that must name the job before admitting it, e.g. to build
    an upload URI from it, asks here)."""
    return secrets.token_hex(8)


# -- checking ---------------------------------------------------------------------------

def check(services: Services, request: JobRequest, *, draft: bool = False, collect: bool = False) -> Checked:
    """Every check a job must pass, in order; with ``collect`` every error (as one
    :class:`InvalidParams` naming each field), else the first error as raised.

    A ``draft`` may lack what it needs to run (a source its partitioner reads, required
    inputs): those are checked by :func:`queue_draft` on the merged record.
    """
    checked = Checked(template=None)  # type: ignore[arg-type]
    errors: list[tuple[str, str]] = []
    for where, step in _steps(services, request, checked, draft):
        try:
            step()
        except InvalidParams as exc:
            if not collect:
                raise
            errors += exc.errors
        except (SourceError, TemplateNotFound) as exc:
            if not collect:
                raise
            errors.append((where, str(exc)))
        if where == "template" and checked.template is None:
            break  # nothing past the template can be checked without it
    if errors:
        raise InvalidParams(list(dict.fromkeys(errors)))
    return checked


def _steps(services: Services, req: JobRequest, out: Checked, draft: bool) -> list[tuple[str, Callable[[], Any]]]:
    """The ordered checks, each ``(field it reports under, check)``, filling ``out``."""
    settings, storages, values = services.settings, services.storages, out.values

    def name() -> None:
        values["name"] = guards.name("name", req.name)

    def template() -> None:
        out.template = find_template(guards.ref(req.template), services.store)

    def options() -> None:
        out.options = RunOptions.checked(settings.max_timeout_seconds, task_timeout=req.task_timeout,
                                         job_timeout=req.job_timeout, max_retries=req.max_retries,
                                         test=req.test if req.test is not None else False,
                                         min_success_ratio=req.min_success_ratio,
                                         max_failed_pieces=req.max_failed_pieces)

    def params() -> None:
        values["raw_params"] = guards.params(req.params, settings.max_params_bytes)
        if not draft or values["raw_params"]:
            out.params = validate_params(out.template, values["raw_params"])

    def on_workers(field: str, uri: str) -> None:  # the workers' file roots decide: they read the files
        if not draft:
            check_worker_roots(services.store, out.template.ref, field, uri)

    def inputs() -> None:
        values["inputs"] = _inputs(services, out.template, req.inputs, required=not draft)
        for name, uri in values["inputs"].items():
            on_workers(f"inputs.{name}", uri)

    def source() -> None:
        values["source"] = guards.uri(storages, "source", req.source)
        if not draft:  # a draft's file may not exist yet (a ByteNite upload comes after its dataSource)
            check_source(storages, out.template, values["source"])
        on_workers("source", values["source"])

    def destination() -> None:
        values["destination"] = guards.uri(storages, "destination", req.destination)
        check_destination(storages, out.template, values["destination"])
        on_workers("destination", values["destination"])

    def retention() -> None:
        values["retention_hours"] = guards.retention(req.retention_hours)

    def priority() -> None:
        values["priority"] = guards.priority(req.priority)

    return [("name", name), ("template", template), ("options", options), ("params", params),
            ("inputs", inputs), ("source", source), ("destination", destination), ("retention_hours", retention),
            ("priority", priority)]


def _inputs(services: Services, tmpl: TemplateInfo, given: Any, required: bool) -> dict[str, str]:
    """The job's named inputs, checked against the template's declared names (all of
    them ``required`` to run; a draft may fill them in later)."""
    inputs = guards.inputs(services.storages, given, services.settings.max_inputs)
    errors = [(f"inputs.{name}", "required input missing") for name in tmpl.inputs
              if required and name not in inputs]
    declared = ", ".join(tmpl.inputs) or "none"
    errors += [(f"inputs.{name}", f"unknown input; template {tmpl.ref} declares: {declared}")
               for name in inputs if name not in tmpl.inputs]
    if errors:
        raise InvalidParams(errors)
    return inputs


# -- admitting --------------------------------------------------------------------------

def admit(services: Services, org: str, request: JobRequest, *, draft: bool = False, who: str | None = None,
          extra_fields: dict[str, Any] | None = None, job_id: str | None = None) -> str:
    """Check ``request``, write the job's record and (unless ``draft``) send its partition
    task; returns the job's id. ``extra_fields`` are stored with the record (an API
    family's own fields, a schedule's name); ``who`` is named in the "queued by" line.

    If the broker refuses the task, the job ends ``failed`` (as every job ends) and the
    error propagates.
    """
    return admit_record(services, org, request, draft=draft, who=who, extra_fields=extra_fields, job_id=job_id)["id"]


def admit_record(services: Services, org: str, request: JobRequest, *, draft: bool = False, who: str | None = None,
                 extra_fields: dict[str, Any] | None = None, job_id: str | None = None) -> dict[str, Any]:
    """:func:`admit`, returning the job's record as written: a caller that shows the new
    job (``POST /v1/jobs``) needs no read of it."""
    checked = check(services, request, draft=draft)
    record = job_fields.record(services.settings, org, checked, job_id or new_job_id())
    record.update(extra_fields or {})
    if draft:
        record["state"] = JobState.DRAFT.value
        services.store.create(record, expire_seconds=record["retention_hours"] * 3600)
        return record
    job = _queued_job(services, org, checked, record, who, {})  # over max_queued_jobs: QuotaExceeded, nothing kept
    (job.send,) = _send_commands(services, [(record["id"], checked.template.ref, record["deadline"], job.tasks[0])])
    services.store.org_quotas.entered(org, services.store.create(
        record, expire_seconds=job.expire_seconds, deadline=job.deadline, tasks=job.tasks, logs=job.logs,
        then=job.then, send=job.send))
    if job.send is None:
        _send(services, record["id"], checked.template.ref, record["deadline"], job.tasks[0])
    return record


@dataclass
class Admission:
    """One job of :func:`admit_many`: what :func:`admit` takes for a job to queue."""

    org: str
    request: JobRequest
    who: str | None = None
    extra_fields: dict[str, Any] | None = None


def admit_many(services: Services, admissions: list[Admission]) -> list[str | Exception]:
    """:func:`admit` of many jobs (a scheduler sweep's firings), each answered by its id or
    its own error, the others going on: each checked alone, every record written in one
    transaction — with its partition task when the broker is the store's Redis, else the
    tasks published after it through one producer (``dispatch.send_partitions``). If
    the broker cannot take those, each such job ends ``failed`` and answers the error."""
    answers: list[str | Exception] = [RuntimeError("not admitted")] * len(admissions)
    jobs: dict[int, tuple[NewJob, str]] = {}
    unserved: dict[str, list[str]] = {}  # each queue's warnings, read once for the whole batch
    for i, item in enumerate(admissions):
        try:
            checked = check(services, item.request)
            record = job_fields.record(services.settings, item.org, checked, new_job_id())
            record.update(item.extra_fields or {})
            jobs[i] = (_queued_job(services, item.org, checked, record, item.who, unserved), checked.template.ref)
        except Exception as exc:  # this job's answer; the others go on
            answers[i] = exc
    tasks = [(job.record["id"], ref, job.record["deadline"], job.tasks[0]) for job, ref in jobs.values()]
    for (job, _), send in zip(jobs.values(), _send_commands(services, tasks)):
        job.send = send
    try:
        replies = services.store.jobs.create_many([job for job, _ in jobs.values()])
    except Exception as exc:
        return [exc if i in jobs else answer for i, answer in enumerate(answers)]
    unsent = []
    for (i, (job, ref)), reply in zip(jobs.items(), replies):
        try:
            services.store.org_quotas.entered(job.record["org"], reply)
            answers[i] = job.record["id"]
            if job.send is None:
                unsent.append((i, job, ref))
        except QuotaExceeded as exc:  # the quota's script deleted what its transaction wrote (and sent nothing)
            answers[i] = exc
    try:
        send_partitions(services.celery, services.settings.control_queue,
                        [(job.record["id"], ref, job.record["deadline"], job.tasks[0]) for _, job, ref in unsent])
    except Exception as exc:
        for i, job, _ in unsent:
            _broker_failed(services, job.record["id"], exc)
            answers[i] = exc
    return answers


def admit_attached(services: Services, record: dict[str, Any], lifetime: float, who: str | None = None) -> str:
    """Write the record of an attached job (``runner/attached_jobs.py`` builds and checks
    it: no template, free-JSON settings): queued, with its deadline, and no partition
    task — the job's own process does the work. Returns the job's id."""
    services.store.create(record, expire_seconds=lifetime, deadline=record["deadline"],
                          logs=[joblog.line(f"created for an attached process by {who or joblog.who()}")])
    return record["id"]


def edit_draft(services: Services, org: str, job_id: str, changes: JobRequest,
               extra_fields: dict[str, Any] | None = None) -> None:
    """Change a draft: the fields ``changes`` gives, checked against the record they merge
    into (params merge by section). Raises IllegalTransition for a job that is no longer
    a draft, and the checks' errors, writing nothing."""
    status = _draft(services, org, job_id, "changed")
    merged = _merged(status, changes)
    checked = check(services, merged, draft=True)
    values = checked.values
    kept = ("source", "destination", "inputs", "name", "retention_hours", "priority")
    normal = {**{key: values[key] for key in kept},
              "params": merged.params or {}, **checked.options.model_dump()}
    fields = {key: normal[key] for key in changes.given()}
    services.store.update(job_id, **fields, **(extra_fields or {}))


def queue_draft(services: Services, org: str, job_id: str, options: JobRequest | None = None,
                who: str | None = None) -> None:
    """Queue a draft — the staged flow's last step — with every check ``admit`` makes, run
    on the merged record (the timeouts a draft was given included). Raises InvalidParams
    or SourceError (nothing queued) or IllegalTransition (not a draft)."""
    status = _draft(services, org, job_id, "run")
    merged = _merged(status, options or JobRequest())
    checked = check(services, merged)
    timing = job_fields.timing(status.model_dump(), checked)
    timing["inputs"] = checked.values["inputs"]
    store = services.store
    store.org_quotas.enter_queue(org, job_id, timing["deadline"])  # QuotaExceeded: still a draft
    store.transition(job_id, JobState.QUEUED, expect=[JobState.DRAFT], **timing)
    task_id = str(uuid.uuid4())
    store.set_deadline(job_id, timing["deadline"])
    store.add_tasks(job_id, [task_id], logs=[_queued_line(who)])
    store.keep_for(job_id, job_fields.lifetime({**status.model_dump(), **timing}))  # its tasks set too, made just now
    _send(services, job_id, checked.template.ref, timing["deadline"], task_id)


def retry_failed(services: Services, org: str, job_id: str, job_timeout: float | None = None) -> None:
    """Reopen a failed or timed-out job, or a partial completion (``completed`` without its
    failed pieces), to re-run only its pieces without a result (every stored result is
    reused; the failed pieces' records are reset), then assemble, under a new deadline
    (checked as a submit's). Raises IllegalTransition for a job in any other state."""
    store = services.store
    status = store.get(job_id, org)
    if status.state not in (JobState.FAILED, JobState.TIMED_OUT) and not _partial(status):
        raise IllegalTransition(f"job {job_id} is {status.state.value}; only a failed or timed_out job, or a "
                                "completed one that went without failed pieces (partial), can retry its failed "
                                "pieces", state=status.state.value)
    options = RunOptions.checked(services.settings.max_timeout_seconds, job_timeout=job_timeout)
    timeout = float(options.job_timeout or status.job_timeout)
    deadline = time.time() + timeout
    partitioned = status.pieces_total is not None
    round_ = int(store.fields(job_id, "round")["round"] or 0) + 1
    store.reset_failures(job_id)
    store.transition(job_id, JobState.RUNNING if partitioned else JobState.QUEUED, expect=[status.state],
                     error=None, finished_at=None, pieces_failed=0, deadline=deadline, job_timeout=timeout,
                     round=round_, **({"partial": False, "result_summary": None} if _partial(status) else {}))
    store.keep_for(job_id, timeout + status.retention_hours * 3600)
    store.set_deadline(job_id, deadline)
    if partitioned:  # no partition task to pass its org's gate (workers/org_gate.py): it counts as running at once
        store.org_quotas.note_running(org, job_id)
    send = send_resume if partitioned else send_partition
    task_id = send(services.celery, job_id, status.template, services.settings.control_queue, deadline)
    store.add_tasks(job_id, [task_id], logs=[joblog.line(f"retry round {round_}: re-running the pieces without a "
                                                         "result")])


def _partial(status: Any) -> bool:
    """Whether the job completed without some pieces (a retry may still run them)."""
    return status.state is JobState.COMPLETED and bool(status.partial)


def _draft(services: Services, org: str, job_id: str, verb: str) -> Any:
    """The job's record, if it is a draft of ``org`` (JobNotFound otherwise)."""
    status = services.store.get(job_id, org)
    if status.state is not JobState.DRAFT:
        raise IllegalTransition(f"job {job_id} is {status.state.value}; only a draft job can be {verb}",
                                state=status.state.value)
    return status


def _merged(status: Any, changes: JobRequest) -> JobRequest:
    """The draft's record with ``changes`` over it: what the job would be."""
    params = dict(status.params or {})
    if isinstance(changes.params, dict):
        params.update(changes.params)
    base = {"template": status.template, "source": status.source, "destination": status.destination,
            "params": params if params or changes.params is not None else None,
            "inputs": status.inputs or None, "name": status.name, "retention_hours": status.retention_hours,
            "priority": status.priority,
            **{key: getattr(status, key) for key in OPTIONS}}
    given = changes.given()
    if "params" in given:
        given["params"] = params if isinstance(changes.params, dict) else changes.params
    return JobRequest(**{**base, **given})


def _queued_job(services: Services, org: str, checked: Checked, record: dict[str, Any], who: str | None,
                unserved: dict[str, list[str]]) -> NewJob:
    """The record made ready to queue (warnings, deadline) and what its transaction writes
    with it: its partition task's id, the "queued by" line, the org's queued-jobs quota.
    ``unserved``: the queue warnings a batch already read, by queue (filled here)."""
    if record["queue"] not in unserved:
        unserved[record["queue"]] = _queue_warnings(services, record["queue"])
    record["warnings"] = [*record.get("warnings", []), *unserved[record["queue"]],
                          *param_warnings(checked.template, checked.values.get("raw_params"))]
    record.update(job_fields.timing(record, checked))
    quotas, job_id, deadline = services.store.org_quotas, record["id"], record["deadline"]
    return NewJob(record, job_fields.lifetime(record), deadline, [str(uuid.uuid4())], [_queued_line(who)],
                  lambda pipe: quotas.enter_queue_in(pipe, org, job_id, deadline))


def _queued_line(who: str | None) -> dict[str, Any]:
    return joblog.line(f"queued by {who or joblog.who()}")


def _queue_warnings(services: Services, queue: str) -> list[str]:
    """Say so when no live worker serves the job's queues, instead of hanging silently."""
    control, default = services.settings.control_queue, services.settings.default_queue
    return [f"no live worker consumes queue {q!r}: the job waits until one starts ({start_hint(q, control, default)})"
            for q in unserved_queues(services.store, [control, queue])]


def _send_commands(services: Services, tasks: list[tuple[str, str, float, str]],
                   ) -> list[list[tuple[str, tuple[Any, ...]]] | None]:
    """The broker commands that send each job's partition task (``(job id, template,
    deadline, task id)``), for the transaction that writes the records — when the broker
    is the store's Redis (the usual deployment): then a task is queued exactly when its
    job is, in the same round trip. ``None`` each when the broker is elsewhere (or kombu
    cannot say): the tasks are sent after the records (:func:`_send`, ``send_partitions``)."""
    settings = services.settings
    found = (partition_commands_many(services.celery, settings.control_queue, tasks)
             if tasks and settings.broker_url == settings.status_store_url else None)
    return found or [None] * len(tasks)


def _send(services: Services, job_id: str, template: str, deadline: float, task_id: str) -> None:
    """Send the job's partition task as ``task_id`` (its id, deadline and first log line
    are stored already). If the broker cannot take it, the job ends ``failed``."""
    try:
        send_partition(services.celery, job_id, template, services.settings.control_queue, deadline,
                       task_id=task_id)
    except Exception as exc:
        _broker_failed(services, job_id, exc)
        raise


def _broker_failed(services: Services, job_id: str, exc: Exception) -> None:
    end_job(services, job_id, JobState.FAILED, error=ErrorInfo(
        stage="submit", type=type(exc).__name__, message=f"cannot reach the broker: {exc}").as_dict())
