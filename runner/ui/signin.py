"""Signing in to the dashboard with an API key, and out again.

The key is checked as the API's token exchange checks it (``ApiKeys.verify``: argon2,
counted against the key's rate limit before hashing) and never stored or echoed; the
browser gets a session cookie (HttpOnly, SameSite=Strict, Secure over https, path
``/ui``). ``next`` only ever leads to a path under ``/ui`` (no open redirect).
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from runner.api.deps import api_state
from runner.api.keys import RateLimited, Unauthorized
from runner.ui.session import LOGIN_COOKIE, SESSION_COOKIE, same_token
from runner.ui.web import UiError, form_of, render, sessions, signed_form

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)


def safe_next(value: str | None) -> str:
    """A path under ``/ui`` to return to after signing in; anything else is ``/ui/jobs``."""
    if value and value.startswith("/ui") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui/jobs"


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/ui", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


def _form(request: Request, next_path: str, error: str | None = None, status: int = 200,
          notice: str | None = None) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", {"next": next_path, "login_csrf": token, "error": error,
                                              "notice": notice}, status=status)
    _cookie(response, request, LOGIN_COOKIE, token, 3600)
    return response


@router.get("/login")
def login_page(request: Request, next: Annotated[str | None, Query(max_length=2000)] = None,
               ended: bool = False) -> Response:
    """The sign-in form (an API key from ``runner keys create --org X``)."""
    notice = "Your session ended (signed out, expired, or its key was revoked). Sign in again." if ended else None
    return _form(request, safe_next(next), notice=notice)


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the key, open a session, go to ``next``; a bad key re-shows the form with why."""
    form = await form_of(request)
    next_path = safe_next(form.get("next"))
    if not same_token(form.get("csrf"), request.cookies.get(LOGIN_COOKIE) or ""):
        raise UiError(403, "This form was refused: its CSRF token is missing or stale. Reload the page and try again.")
    state = api_state(request)
    try:
        who = await run_in_threadpool(state.keys.verify, form.get("api_key", "").strip(), state.limit)
    except Unauthorized:
        return _form(request, next_path, "That API key is not valid (or was revoked). Keys look like "
                                         "rk_<id>_<secret>: make one with `runner keys create --org X`.", 401)
    except RateLimited as exc:
        return _form(request, next_path, f"Too many attempts with this key: try again in {exc.retry_after}s.", 429)
    sid = await run_in_threadpool(sessions(request).open, who)
    response = RedirectResponse(next_path, status_code=303)
    _cookie(response, request, SESSION_COOKIE, sid, state.settings.ui_session_seconds)
    response.delete_cookie(LOGIN_COOKIE, path="/ui")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Forget the session (in the store and in the browser); any key may sign out."""
    await signed_form(request)
    await run_in_threadpool(sessions(request).close, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/ui")
    return response
