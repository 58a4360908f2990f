"""The schedules and fleet pages.

Schedules are the viewer's org's (``Client.schedules``), with pause, resume and run-now
through the ``Schedule`` handle. The fleet is shared by every org, so its page shows
workers, queues and processes, but of what each process runs only the viewer's own jobs
(another org's job appears as "another org's job", without its id).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response

from runner.errors import InvalidParams, RunnerError, ScheduleNotFound
from runner.fleet import live_workers
from runner.schedules import NAME_PATTERN
from runner.ui.web import OrgViewer, Posted, UiError, Viewer, posted_viewer, render

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)
Name = Annotated[str, Path(pattern=NAME_PATTERN)]
INSPECT_SECONDS = 2.0  # a busy worker may answer remote control late


@router.get("/schedules")
def schedules_page(request: Request, who: OrgViewer) -> Response:
    """The org's schedules: timing, next and last run, overdue, and their controls."""
    return render(request, "schedules.html", {"schedules": who.client.schedules()}, who=who)


def _schedule(who: Viewer, name: str):  # type: ignore[no-untyped-def]
    try:
        return who.client.get_schedule(name)
    except ScheduleNotFound:
        raise UiError(404, f"No schedule {name!r} in org {who.org}.") from None


@router.get("/schedules/{name}")
def schedule_page(name: Name, request: Request, who: OrgViewer) -> Response:
    """One schedule: its state, its events (fired, skipped, overdue…) and its jobs."""
    handle = _schedule(who, name)
    return render(request, "schedule.html", {"info": handle.info(), "spec": handle.spec(),
                                              "events": list(reversed(handle.events()))[:200],
                                              "jobs": handle.jobs(limit=50)}, who=who)


@router.post("/schedules/{name}/{action}")
def schedule_action(name: Name, action: Annotated[str, Path(pattern=r"^(pause|resume|run-now)$")], form: Posted,
                    request: Request) -> Response:
    """Pause, resume or fire a schedule now (a run-now job opens its page)."""
    handle = _schedule(posted_viewer(request), name)
    try:
        if action == "pause":
            handle.pause()
        elif action == "resume":
            handle.resume()
        else:
            return RedirectResponse(f"/ui/jobs/{handle.run_now().id}", status_code=303)
    except (InvalidParams, RunnerError) as exc:
        raise UiError(409, str(exc)) from None
    return RedirectResponse(form.get("back") if form.get("back") == f"/ui/schedules/{name}" else "/ui/schedules",
                            status_code=303)


def _own_jobs(who: Viewer, job_ids: set[str]) -> set[str]:
    """Which of ``job_ids`` belong to the viewer's org (one round trip)."""
    ids = sorted(job_ids)
    orgs = who.client.store.dashboard.orgs_of(ids)
    return {job_id for job_id, org in zip(ids, orgs) if org is not None and json.loads(org) == who.org}


def _fleet(who: Viewer) -> dict[str, Any]:
    workers = live_workers(who.client.store, who.client.celery, INSPECT_SECONDS)
    mine = _own_jobs(who, {str(a["job"]) for w in workers for a in w.active if a.get("job")})
    rows = []
    for worker in workers:
        running = [{**a, "job": a["job"] if a.get("job") in mine else None,
                    "other": bool(a.get("job")) and a["job"] not in mine} for a in worker.active]
        rows.append({"worker": worker, "running": running})
    queues = sorted({q for w in workers for q in w.queues})
    broker = who.client.store.broker(who.client.settings.broker_url)
    depths = {q: broker.depth(q) for q in queues}
    processes = {q: sum(w.concurrency for w in workers if w.serves(q)) for q in queues}
    return {"rows": rows, "queues": queues, "depths": depths, "processes": processes,
            "flower_url": who.client.settings.flower_url}


@router.get("/fleet")
def fleet_page(request: Request, who: OrgViewer) -> Response:
    """Live workers (host, queues, processes, heartbeat), queue depths, what runs where."""
    return render(request, "fleet.html", _fleet(who), who=who)


@router.get("/fleet/rows")
def fleet_rows(request: Request, who: OrgViewer) -> Response:
    """The fleet page's live part alone (refreshed every few seconds)."""
    return render(request, "_fleet_body.html", _fleet(who), who=who)
