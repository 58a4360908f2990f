"""The jobs pages: the list (``/ui/jobs``), a job's page (``/ui/jobs/{id}``) with its live
fragments and feed, and its actions (cancel, retry failed pieces, delete).

Every action goes through the viewer's org's ``Client`` (``cancel``, ``retry_failed``,
``delete``), exactly as the API's routes do; nothing here writes the store.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from runner.api.deps import api_state
from runner.errors import IllegalTransition, RunnerError
from runner.models import JobState, JobStatus
from runner.ui import jobview
from runner.ui.fmt import pretty
from runner.ui.joblist import JobFilter, JobPage, page_of_jobs
from runner.ui.live import live_stream, parse_cursor
from runner.ui.web import CurrentViewer, Posted, UiError, Viewer, job_or_404, posted_viewer, render

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)
JobId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
PAGE_SIZES = (25, 50, 100)


def _time(value: str | None, field: str, errors: list[str]) -> float | None:
    """``2026-12-02`` or ``2026-12-02T06:30`` (UTC) as epoch seconds; a bad one is named."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        errors.append(f"{field}: {value!r} is not a date (use 2026-12-02 or 2026-12-02T06:30, UTC)")
        return None


def _filter(request: Request) -> tuple[JobFilter, dict[str, str], list[str]]:
    """The list's filter from the query string, the values to refill the form with, and
    what was wrong with them (shown above the list; the bad part is ignored)."""
    q = {k: v.strip() for k, v in request.query_params.items() if k in
         ("state", "template", "schedule", "name", "since", "until", "limit")}
    errors: list[str] = []
    state = None
    if q.get("state"):
        try:
            state = JobState(q["state"])
        except ValueError:
            errors.append(f"state: {q['state']!r} is not one of {', '.join(s.value for s in JobState)}")
    flt = JobFilter(state=state, template=q.get("template") or None, schedule=q.get("schedule") or None,
                    name=q.get("name") or None, since=_time(q.get("since"), "since", errors),
                    until=_time(q.get("until"), "until", errors))
    return flt, q, errors


def _list_context(request: Request, who: Viewer) -> dict[str, Any]:
    flt, query, errors = _filter(request)
    limit = int(query["limit"]) if query.get("limit", "").isdigit() and int(query["limit"]) in PAGE_SIZES else 50
    cursor = request.query_params.get("cursor")
    if who.job is not None:  # a job's own key: its one job
        page = JobPage(jobs=[job_or_404(who, who.job).status()], in_range=1)
    else:
        page = page_of_jobs(who.client.store, who.org, flt, cursor, limit)
    keep = {k: v for k, v in query.items() if v}
    return {"page": page, "query": query, "keep": keep, "errors": errors, "cursor": cursor,
            "states": [s.value for s in JobState], "limit": limit}


@router.get("")
@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/ui/jobs", status_code=303)


@router.get("/jobs")
def jobs_page(request: Request, who: CurrentViewer) -> Response:
    """The org's jobs, newest first, a page at a time; the rows refresh themselves."""
    return render(request, "jobs.html", _list_context(request, who), who=who)


@router.get("/jobs/rows")
def jobs_rows(request: Request, who: CurrentViewer) -> Response:
    """The list's rows alone: what the page fetches every few seconds to stay live."""
    return render(request, "_job_rows.html", _list_context(request, who), who=who)


def _job_context(who: Viewer, status: JobStatus) -> dict[str, Any]:
    store = who.client.store
    failed_count, failed = jobview.failed_pieces(store, status.id)
    return {"job": status, "progress": jobview.progress(status), "timeline": jobview.timeline(store, status),
            "failed_count": failed_count, "failed": failed, "retryable": status.state in
            (JobState.FAILED, JobState.TIMED_OUT) or status.partial, "flower_url": who.client.settings.flower_url}


@router.get("/jobs/{job_id}")
def job_page(job_id: JobId, request: Request, who: CurrentViewer,
             piece: Annotated[int | None, Query(ge=0)] = None) -> Response:
    """A job's page: everything about it, live while it runs."""
    job = job_or_404(who, job_id)
    status, events_cursor = who.client.store.snapshot(job.id, who.org)
    logs = jobview.log_tail(who.client.store, job.id, piece)
    metrics = jobview.metric_series(who.client.store, job.id)
    result, result_size = _result(who, status)
    context = {**_job_context(who, status), "logs": logs, "piece": piece, "metrics": metrics,
               "events_cursor": events_cursor, "logs_cursor": logs[-1]["id"] if logs and piece is None else "0-0",
               "result": result, "result_size": result_size}
    if piece is not None:  # a filtered tail: the feed appends only new lines of that piece
        context["logs_cursor"] = _newest_log(who, job.id)
    return render(request, "job.html", context, who=who)


def _newest_log(who: Viewer, job_id: str) -> str:
    return who.client.store.dashboard.newest_log_id(job_id)


def _result(who: Viewer, status: JobStatus) -> tuple[str | None, int]:
    """The result as pretty JSON when small enough to show, and its size in bytes."""
    if status.state is not JobState.COMPLETED:
        return None, 0
    raw = who.client.store.dashboard.raw_result(status.id) or ""
    if len(raw) > jobview.RESULT_INLINE_BYTES:
        return None, len(raw)
    return pretty(json.loads(raw)) if raw else None, len(raw)


@router.get("/jobs/{job_id}/summary")
def job_summary(job_id: JobId, request: Request, who: CurrentViewer) -> Response:
    """The page's live part (state, timeline, progress, failed pieces, actions), alone."""
    status = job_or_404(who, job_id).status()
    return render(request, "_job_summary.html", _job_context(who, status), who=who)


@router.get("/jobs/{job_id}/metrics.json")
def job_metrics(job_id: JobId, who: CurrentViewer) -> JSONResponse:
    """The job's metrics as tables and series (the page redraws its charts from it)."""
    job = job_or_404(who, job_id)
    return JSONResponse(jobview.metric_series(who.client.store, job.id))


@router.get("/jobs/{job_id}/metrics-table")
def job_metrics_table(job_id: JobId, request: Request, who: CurrentViewer) -> Response:
    """The metrics' summary table alone (redrawn as new values arrive)."""
    job = job_or_404(who, job_id)
    return render(request, "_metrics_table.html", {"metrics": jobview.metric_series(who.client.store, job.id)},
                  who=who)


@router.get("/jobs/{job_id}/result.json")
def job_result(job_id: JobId, who: CurrentViewer) -> Response:
    """The assembled result, as stored, for download."""
    job = job_or_404(who, job_id)
    raw = who.client.store.dashboard.raw_result(job.id)
    if raw is None:
        raise UiError(404, f"Job {job_id} has no result (yet).")
    return Response(raw, media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{job.id}-result.json"'})


@router.get("/jobs/{job_id}/live")
async def job_live(job_id: JobId, request: Request, who: CurrentViewer,
                   last_event_id: Annotated[str | None, Header()] = None,
                   events: Annotated[str, Query(pattern=r"^\d{1,20}-\d{1,20}$")] = "0-0",
                   logs: Annotated[str, Query(pattern=r"^\d{1,20}-\d{1,20}$")] = "0-0") -> Response:
    """Server-sent events of the job's events and new log lines (see ``live.py``)."""
    job = await run_in_threadpool(job_or_404, who, job_id)
    final = (await run_in_threadpool(job.status)).is_final
    cursor = parse_cursor(last_event_id, events, logs)
    return live_stream(api_state(request).live, job_id, cursor, who.session, final)


def _act(who: Viewer, job_id: str, action: str) -> str:
    """Run one action through the Client; returns the message the page shows."""
    job = job_or_404(who, job_id)
    by = f"API key {who.session.key_id} (dashboard)"
    try:
        if action == "cancel":
            return "Cancelled." if who.client.cancel(job.id, by=by) else "The job had already ended."
        if action == "retry":
            who.client.retry_failed(job.id)
            return "Retrying the failed pieces."
        who.client.delete(job.id, by=by)
        return "Deleted."
    except IllegalTransition as exc:
        raise UiError(409, str(exc)) from None
    except RunnerError as exc:
        raise UiError(400, str(exc)) from None


@router.post("/jobs/{job_id}/cancel")
def cancel(job_id: JobId, form: Posted, request: Request) -> Response:
    _act(posted_viewer(request), job_id, "cancel")
    return RedirectResponse(f"/ui/jobs/{job_id}", status_code=303)


@router.post("/jobs/{job_id}/retry")
def retry(job_id: JobId, form: Posted, request: Request) -> Response:
    _act(posted_viewer(request), job_id, "retry")
    return RedirectResponse(f"/ui/jobs/{job_id}", status_code=303)


@router.post("/jobs/{job_id}/delete")
async def delete(job_id: JobId, form: Posted, request: Request) -> Response:
    who = posted_viewer(request)
    await run_in_threadpool(_act, who, job_id, "delete")
    api_state(request).sweep_later(who.client, job_id)  # as the API's delete: stragglers' writes go too
    return RedirectResponse("/ui/jobs", status_code=303)
