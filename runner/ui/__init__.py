"""The jobs dashboard at ``/ui``: served by ``runner api`` (same process, port and keys;
``runner api --no-ui`` leaves it out).

Server-rendered pages (Jinja2) with two small libraries vendored under ``static/vendor``
(htmx for live fragments, uPlot for metric charts): no CDN, no Node build, nothing loaded
from outside the package. A browser signs in with an org's API key and sees that org
only; every action goes through the org's ``Client``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runner.ui.session import Sessions
from runner.ui.web import HERE, SignInRequired, UiError, render, sign_in_url

__all__ = ["mount", "SECURITY_HEADERS"]

SECURITY_HEADERS = {
    # scripts only from the package; styles inline too (bar widths, uPlot); nothing framed
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


_RELOAD = ('<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0">'
           '<title>Runner</title><p>Opening…</p>')


def mount(app: FastAPI) -> None:
    """Add the dashboard's routes, static files and error pages to the API app."""
    from runner.ui import artifacts, catalog_pages, fleet_pages, jobs, signin

    state = app.state.api
    app.state.ui_sessions = Sessions(state.store, state.settings.ui_session_seconds)
    for module in (signin, jobs, artifacts, catalog_pages, fleet_pages):
        app.include_router(module.router)
    app.mount("/ui/static", StaticFiles(directory=str(HERE / "static")), name="ui-static")
    app.add_exception_handler(SignInRequired, _sign_in)
    app.add_exception_handler(UiError, _error_page)

    app.add_middleware(SecureHeaders)


class SecureHeaders:
    """Adds :data:`SECURITY_HEADERS` to every dashboard response (pure ASGI: the live
    feeds stream through untouched; the API's routes are not affected)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith("/ui") or path.startswith("/ui/static"):
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_secured)


async def _sign_in(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    target = sign_in_url(exc.next_path) + ("&ended=1" if exc.message else "")
    if request.headers.get("hx-request"):  # a live fragment: send the whole page to sign in
        return Response(status_code=401, headers={"HX-Redirect": target})
    if request.method == "GET" and request.headers.get("sec-fetch-site") == "cross-site" and not exc.message:
        # a link from another site (a chat, a mail, Brevetti's model-page address): SameSite=Strict
        # kept the cookie back, so reload from here, where it is sent; no session then signs in
        return Response(_RELOAD, media_type="text/html", headers={"Cache-Control": "no-store"})
    return RedirectResponse(target, status_code=303)


async def _error_page(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UiError)
    return render(request, "error.html", {"status": exc.status, "message": exc.message}, status=exc.status)
