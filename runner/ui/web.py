"""What every dashboard route shares: who is looking (the session's org and ``Client``),
the CSRF check of posted forms, rendering a page, and the two ways a page fails
(sign in first; an error page such as another org's job, a 404 like any unknown id).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from runner.api.deps import api_state
from runner.client import Client
from runner.errors import JobNotFound
from runner.job import Job
from runner.ui import fmt
from runner.ui.session import SESSION_COOKIE, Session, Sessions, same_token

__all__ = ["Viewer", "CurrentViewer", "OrgViewer", "Posted", "SignInRequired", "UiError", "pages", "sessions", "render",
           "job_or_404", "form_of"]

HERE = Path(__file__).parent
pages = Jinja2Templates(directory=str(HERE / "templates"))
fmt.install(pages.env)


class SignInRequired(Exception):
    """No live session: the browser goes to the sign-in page, then back to ``next``."""

    def __init__(self, next_path: str, message: str | None = None) -> None:
        super().__init__(next_path)
        self.next_path = next_path
        self.message = message


class UiError(Exception):
    """An error page (404 for another org's job, 403 for a post without its CSRF token)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Viewer:
    """The signed-in browser of one request: its session and its org's ``Client``."""

    session: Session
    client: Client

    @property
    def org(self) -> str:
        return self.session.org

    @property
    def job(self) -> str | None:
        """The one job a job's own key may see; None for an org's key."""
        return self.session.job


def sessions(request: Request) -> Sessions:
    return request.app.state.ui_sessions


def viewer(request: Request) -> Viewer:
    """The request's live session (its key checked now), or SignInRequired."""
    found = sessions(request).load(request.cookies.get(SESSION_COOKIE))
    if found is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        revoked = SESSION_COOKIE in request.cookies
        raise SignInRequired(target, "Your session ended (signed out, expired or its key was revoked)."
                             if revoked else None)
    return Viewer(found, api_state(request).client(found.org))


CurrentViewer = Annotated[Viewer, Depends(viewer)]


def org_viewer(request: Request) -> Viewer:
    """A viewer signed in with an org's key: the org-wide pages (templates, schedules,
    fleet) and every action are not for a job's own key."""
    who = viewer(request)
    _org_wide(who)
    return who


def _org_wide(who: Viewer) -> None:
    if who.job is not None:
        raise UiError(403, f"This key belongs to job {who.job} and sees that job only: sign in with an org's key.")


OrgViewer = Annotated[Viewer, Depends(org_viewer)]


async def form_of(request: Request) -> dict[str, str]:
    """A posted ``application/x-www-form-urlencoded`` body (the body size guard applies)."""
    body = (await request.body()).decode("utf-8", "replace")
    return dict(parse_qsl(body, keep_blank_values=True))


async def signed_form(request: Request) -> tuple[dict[str, str], Viewer]:
    """The posted form and its viewer, refused (403) without the session's CSRF token in
    the form's ``csrf`` field or the ``X-CSRF-Token`` header (htmx)."""
    form = await form_of(request)
    who = await run_in_threadpool(viewer, request)
    if not same_token(form.get("csrf") or request.headers.get("x-csrf-token"), who.session.csrf):
        raise UiError(403, "This form was refused: its CSRF token is missing or stale. Reload the page and try again.")
    return form, who


async def posted(request: Request) -> dict[str, str]:
    """A signed form (:func:`signed_form`) posted to act: not from a job's own key (it may
    look, not act)."""
    form, who = await signed_form(request)
    _org_wide(who)
    request.state.ui_viewer = who
    return form


Posted = Annotated[dict[str, str], Depends(posted)]


def posted_viewer(request: Request) -> Viewer:
    """The viewer :func:`posted` checked (declare ``Posted`` first)."""
    return request.state.ui_viewer


def render(request: Request, name: str, context: dict[str, Any], status: int = 200,
           who: Viewer | None = None) -> Response:
    """A page of ``templates/`` with the viewer's org and CSRF token in reach of every form."""
    base = {"who": who, "csrf": who.session.csrf if who else None, "path": request.url.path}
    return pages.TemplateResponse(request, name, {**base, **context}, status_code=status)


def job_or_404(who: Viewer, job_id: str) -> Job:
    """The viewer's org's job ``job_id``; another org's (or no) job is a 404 page, and so
    is every job but its own for a job's key."""
    if who.job is not None and job_id != who.job:
        raise UiError(404, f"No job {job_id} in org {who.org} (it may have expired or been deleted).")
    try:
        return who.client.get(job_id)
    except JobNotFound:
        raise UiError(404, f"No job {job_id} in org {who.org} (it may have expired or been deleted).") from None


def sign_in_url(next_path: str) -> str:
    return "/ui/login?next=" + quote(next_path, safe="")
