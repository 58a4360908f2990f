"""FastAPI dependencies shared by every route family: who is calling, and a ``Client``
bound to their org.

``principal`` reads ``Authorization: <token>`` (ByteNite's clients send the token bare)
or ``Authorization: Bearer <token>``, checks it and counts the request against the
key's rate limit, in one Redis round trip. ``client_for`` gives the ``Client`` of the
principal's org — one per org, cached for the process — so the org of every read and
write is the key's and never a request body's.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from functools import cached_property
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import APIKeyHeader

from starlette.concurrency import run_in_threadpool

from runner.api.problems import ApiError
from runner.api.keys import ApiKeys, Principal, RateLimit, Unauthorized
from runner.client import Client
from runner.config import Settings
from runner.errors import JobNotFound
from runner.store import LiveReads, StatusStore

__all__ = ["ApiState", "api_state", "principal", "client_for", "metrics_scope", "CurrentPrincipal", "OrgClient",
           "MetricsScope", "JobClient", "job_client", "access_token", "AccessToken", "org_client"]

log = logging.getLogger("runner.api")

SWEEP_AFTER = (5.0, 30.0)  # seconds after a delete, between sweeps of stragglers' writes

# Declares the header in the OpenAPI document (the "Authorize" button of /docs).
_authorization = APIKeyHeader(name="Authorization", auto_error=False,
                              description="An access token from POST /v1/auth/access_token, bare or as `Bearer <token>`.")


class ApiState:
    """What one API process shares between requests: settings, store, keys, clients."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = StatusStore.from_settings(settings)
        self.keys = ApiKeys(self.store, settings.api_token_seconds)
        self.limit = RateLimit.parse(settings.api_rate_limit)
        self._clients: dict[str, Client] = {}
        self._lock = threading.Lock()
        self._sweeps: set[asyncio.Task] = set()

    @cached_property
    def live(self) -> LiveReads:
        """The store's async reads for async routes (server-sent events, ``/healthz``),
        made in the event loop on first use."""
        return self.store.live()

    def sweep_later(self, client: Client, job_id: str) -> None:
        """Delete a deleted job's keys again after ``SWEEP_AFTER`` seconds.

        A task of the job that was running when it was deleted may still write (a log
        line, a result, a failure) before it notices the cancel; such a write would
        recreate a key with no expiry. The sweeps remove what it left.
        """
        task = asyncio.get_running_loop().create_task(self._sweep(client, job_id))
        self._sweeps.add(task)
        task.add_done_callback(self._sweeps.discard)

    async def _sweep(self, client: Client, job_id: str) -> None:
        for delay in SWEEP_AFTER:
            await asyncio.sleep(delay)
            try:
                await run_in_threadpool(client.store.delete_job, job_id, client.org)
            except Exception:  # best effort: the store may be briefly unreachable
                log.warning("could not sweep the keys of deleted job %s", job_id, exc_info=True)

    def client(self, org: str) -> Client:
        """The ``Client`` of ``org`` (made once per process)."""
        with self._lock:
            found = self._clients.get(org)
            if found is None:
                found = self._clients[org] = Client(settings=self.settings, org=org)
            return found


def api_state(request: Request) -> ApiState:
    return request.app.state.api


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization`` header, bare or ``Bearer``; else Unauthorized."""
    value = (header or "").strip()
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "bearer":
        value = rest.strip()
    if not value or " " in value:
        raise Unauthorized("missing access token: send 'Authorization: Bearer <token>' "
                           "(token from POST /v1/auth/access_token)")
    return value


def principal(request: Request, authorization: Annotated[str | None, Depends(_authorization)] = None) -> Principal:
    """The caller, from their token; raises Unauthorized (401) or RateLimited (429)."""
    state = api_state(request)
    found = state.keys.authenticate(bearer_token(authorization), state.limit)
    request.state.principal = found
    return found


CurrentPrincipal = Annotated[Principal, Depends(principal)]


async def access_token(authorization: Annotated[str | None, Depends(_authorization)] = None) -> str:
    """The request's token, not yet checked (401 when there is none): for a route that
    checks it together with its own read, in one round trip and one worker-thread hop
    (``GET /v1/jobs/{id}``). Async: parsing a header needs no thread."""
    return bearer_token(authorization)


AccessToken = Annotated[str, Depends(access_token)]


def metrics_scope(request: Request, authorization: Annotated[str | None, Depends(_authorization)] = None) -> str | None:
    """Whose metrics the caller reads: every org's (``None``) with ``RUNNER_METRICS_TOKEN``
    (what Prometheus is configured with), else only the org of their access token.
    Raises Unauthorized (401) or RateLimited (429): the labels name orgs and templates."""
    state = api_state(request)
    token = bearer_token(authorization)
    expected = state.settings.metrics_token.get_secret_value() if state.settings.metrics_token else ""
    if expected and hmac.compare_digest(token.encode(), expected.encode()):
        return None
    return principal(request, authorization).org


MetricsScope = Annotated[str | None, Depends(metrics_scope)]


def client_for(request: Request, who: CurrentPrincipal) -> Client:
    """A ``Client`` bound to the caller's org; 403 for a job's own key, which may use only
    the routes of its job (``job_client``)."""
    return org_client(api_state(request), who)


def org_client(state: ApiState, who: Principal) -> Client:
    """``client_for`` without FastAPI: for a route that checks its token itself."""
    if who.job is not None:
        raise ApiError(403, "job_key", f"this token is a job's own key (job {who.job}): it may read that job, "
                       "its artifacts and settings, and report on it; use an org key for anything else")
    return state.client(who.org)


OrgClient = Annotated[Client, Depends(client_for)]


def job_client(request: Request, job_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$")],
               who: CurrentPrincipal) -> Client:
    """A ``Client`` bound to the caller's org, for routes on the job ``job_id``: an org's
    key may use them for any of its jobs, a job's own key only for its job (404 for every
    other, as for another org's job)."""
    if who.job is not None and who.job != job_id:
        raise JobNotFound(f"no job {job_id!r} (it may have expired)")
    return api_state(request).client(who.org)


JobClient = Annotated[Client, Depends(job_client)]
