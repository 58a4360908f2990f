"""``create_app``: the FastAPI app behind ``runner api``.

One app, three route families over the same ``Client``, store and orgs; guards (request
id, body size) in front; every error rendered in its family's shape (``errors.py``).
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from runner.api import attach, auth, bytenite, bytenite_jobs, bytenite_uploads, prediction, prediction_sources, v1
from runner.api.deps import ApiState, MetricsScope
from runner.api.problems import install_error_handlers
from runner.api.middleware import BodySizeLimit, RequestId
from runner.api.v1_models import ERROR_RESPONSES
from runner.config import Settings, get_settings
from runner.metrics import CONTENT_TYPE, render
from runner.registry import load_plugins

__all__ = ["create_app"]

HEALTH_TIMEOUT = 2.0

DESCRIPTION = """Runner's HTTP API. Get a key with `runner keys create --org X`, exchange it at
`POST /v1/auth/access_token` for a token, and send `Authorization: Bearer <token>`.

Three route families serve the same jobs: Runner's own (`/v1`), ByteNite's customer API
(`/v1/customer`) and Prediction-API-style setup (`/api/v1`)."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API app for ``settings`` (default: from ``RUNNER_*``)."""
    settings = settings or get_settings()
    app = FastAPI(title="Runner", version="1", description=DESCRIPTION)
    load_plugins(settings.include)  # a module that cannot be imported fails the start, not requests
    app.state.api = ApiState(settings)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes,
                       artifact_max_bytes=settings.attach_max_artifact_bytes,
                       uploads=(bytenite_uploads.UPLOADS, settings.api_max_upload_bytes))
    app.add_middleware(RequestId)  # added last: outermost, so every response carries the id
    # ByteNite's fixed paths (/jobs/templates) before its /jobs/{jobId}, which would catch them
    for module in (auth, v1, attach, bytenite_jobs, bytenite_uploads, bytenite, prediction_sources, prediction):
        app.include_router(module.router)
    if settings.ui:
        from runner.ui import mount  # Jinja2 and the dashboard's routes only when served

        mount(app)

    @app.get("/metrics", tags=["health"], response_class=Response,
             summary="Prometheus metrics of the store: every org's with RUNNER_METRICS_TOKEN, else the token's org's",
             responses={code: ERROR_RESPONSES[code] for code in (401, 429)})
    def metrics(org: MetricsScope) -> Response:
        # counts only, but labelled with org, template and schedule names: a token is
        # required, and an org's own token reads that org's jobs and schedules only
        return Response(render(app.state.api.store, settings.broker_url, org), media_type=CONTENT_TYPE)

    @app.get("/healthz", tags=["health"], summary="Liveness and store reachability (no auth)")
    async def healthz() -> JSONResponse:
        # the async client does not ride out outages (RUNNER_REDIS_OUTAGE_SECONDS): a health
        # check must answer at once, 503 while the store is unreachable
        try:
            ok = await asyncio.wait_for(app.state.api.live.ping(), HEALTH_TIMEOUT)
        except Exception:
            ok = False
        return JSONResponse({"ok": ok}, status_code=200 if ok else 503)

    return app
