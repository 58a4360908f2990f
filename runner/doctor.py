"""``runner doctor``: check an installation and say how to fix what is wrong.

Each check returns a :class:`Check`; one failing check makes the command exit non-zero.
They test the facts that silently break a Celery fleet: an evicting Redis drops queued
pieces, a visibility timeout shorter than a task redelivers it while it still runs, a
queue nobody consumes leaves jobs waiting forever.
"""

from __future__ import annotations

import time
from urllib.parse import urlparse

import httpx
import redis
from pydantic import BaseModel

from runner.config import Settings
from runner.fleet import start_hint
from runner.redis_connect import connect
from runner.registry import templates
from runner.storage import redact_url
from runner.schedules.sweep import last_success, overdue_since
from runner.store import StatusStore

__all__ = ["Check", "run_checks", "check_flower"]


class Check(BaseModel):
    """One row of the report; ``fix`` is said only when the check failed, and no field
    ever carries a credential (URLs are shown with ``***``)."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def model_post_init(self, _: object) -> None:
        if self.ok:
            self.fix = ""


def _redis(url: str, settings: Settings) -> redis.Redis:
    return connect(url, settings.redis_master_name, outage_seconds=0, socket_timeout=3)


def check_broker(settings: Settings) -> Check:
    try:
        info = _redis(settings.broker_url, settings).info("server")
    except redis.RedisError as exc:
        return Check(name="broker", ok=False, detail=f"cannot reach the broker at {redact_url(settings.broker_url)}: {exc}",
                     fix="start Redis or point RUNNER_BROKER_URL at it")
    return Check(name="broker", ok=True, detail=f"Redis {info.get('redis_version')} reachable")


def check_eviction(settings: Settings) -> list[Check]:
    checks = []
    targets = {settings.broker_url: "broker"}
    targets.setdefault(settings.status_store_url, "store")
    for url, role in targets.items():
        try:
            policy = _redis(url, settings).config_get("maxmemory-policy").get("maxmemory-policy", "?")
        except redis.ResponseError:
            checks.append(Check(name=f"{role} eviction", ok=True,
                                detail="CONFIG is disabled, so the policy cannot be verified: make sure "
                                       "maxmemory-policy is noeviction"))
            continue
        except redis.RedisError as exc:
            checks.append(Check(name=f"{role} eviction", ok=False, detail=str(exc)))
            continue
        ok = policy == "noeviction"
        checks.append(Check(
            name=f"{role} eviction", ok=ok, detail=f"maxmemory-policy is {policy}",
            fix="" if ok else "an evicting Redis silently drops queued pieces and results: "
                              "set `maxmemory-policy noeviction` (redis.conf or CONFIG SET)"))
    return checks


def check_visibility(settings: Settings) -> Check:
    longest = max([settings.job_timeout, *(t.job_timeout or 0 for t in templates())])
    ok = settings.visibility_timeout > longest
    return Check(
        name="visibility timeout", ok=ok,
        detail=f"RUNNER_VISIBILITY_TIMEOUT={settings.visibility_timeout}s, longest job timeout in use {longest:g}s",
        fix="" if ok else f"set RUNNER_VISIBILITY_TIMEOUT above {longest:g}: a task running longer is redelivered "
                          f"and runs twice")


def check_queues(settings: Settings, store: StatusStore) -> list[Check]:
    needed = {settings.control_queue, settings.default_queue, *(t.queue for t in templates() if t.queue)}
    live = store.fleet.live_workers()
    checks = []
    for queue in sorted(needed):
        serving = [name for name, worker in live.items() if worker.serves(queue)]
        checks.append(Check(
            name=f"queue {queue}", ok=bool(serving),
            detail=f"consumed by {', '.join(serving)}" if serving else "no live worker consumes it",
            fix="" if serving else "start one: " + start_hint(queue, settings.control_queue, settings.default_queue)))
    return checks


def check_schedules(settings: Settings, store: StatusStore) -> list[Check]:
    """One failing row per overdue schedule of the org (no run completed within its
    ``expected_interval``); nothing when the org has no schedules."""
    schedules, now_ms = store.schedules, round(time.time() * 1000)
    found = [schedules.get(settings.org, name) for name in schedules.names(settings.org)]
    late = [spec.name for spec, state in found
            if overdue_since(spec, state, last_success(store, schedules, spec), now_ms) is not None]
    if not found:
        return []
    if not late:
        return [Check(name="schedules", ok=True, detail=f"{len(found)} schedule(s), none overdue")]
    return [Check(name=f"schedule {name}", ok=False, detail="overdue: no run completed within its expected_interval",
                  fix=f"see its runs: runner jobs --schedule {name}") for name in late]


def _reachable(name: str, url: str, fix: str) -> Check:
    shown = redact_url(url)
    try:
        answer = httpx.get(url, timeout=3)
    except httpx.HTTPError as exc:
        secret = urlparse(url).password
        reason = str(exc).replace(secret, "***") if secret else str(exc)
        return Check(name=name, ok=False, detail=f"{shown} unreachable: {reason}", fix=fix)
    return Check(name=name, ok=answer.status_code < 500, detail=f"{shown} answered HTTP {answer.status_code}", fix=fix)


FLOWER_FIX = ("start it (runner flower), and give the user:password it runs with (RUNNER_FLOWER_BASIC_AUTH) in "
              "RUNNER_FLOWER_URL=http://user:password@host:5555")


def check_flower(settings: Settings) -> Check:
    """Flower answers, and accepts our credentials. ``/healthcheck`` needs none, so it
    alone says "ok" to a wrong password: an authenticated page is asked too."""
    if not settings.flower_url:
        return Check(name="flower", ok=True, detail="not checked: RUNNER_FLOWER_URL is unset (set it to Flower's URL, "
                                                    "e.g. http://user:password@127.0.0.1:5555, to check it)")
    base = settings.flower_url.rstrip("/")
    reachable = _reachable("flower", base + "/healthcheck", FLOWER_FIX)
    if not reachable.ok:
        return reachable
    parsed = urlparse(base)
    auth = None
    if not parsed.password and settings.flower_basic_auth:
        user, _, password = settings.flower_basic_auth.get_secret_value().partition(":")
        auth = (user, password)
    try:
        answer = httpx.get(base + "/api/task/types", auth=auth, timeout=3)
    except httpx.HTTPError as exc:
        return Check(name="flower", ok=False, detail=f"{redact_url(base)} failed: {type(exc).__name__}", fix=FLOWER_FIX)
    if answer.status_code in (401, 403):
        given = "rejected the credentials" if parsed.password or auth else "needs credentials and none were given"
        return Check(name="flower", ok=False, detail=f"{redact_url(base)} {given} (HTTP {answer.status_code})",
                     fix=FLOWER_FIX)
    return Check(name="flower", ok=answer.status_code < 400,
                 detail=f"{redact_url(base)} answered HTTP {answer.status_code}, credentials accepted", fix=FLOWER_FIX)


def run_checks(settings: Settings) -> list[Check]:
    """Every check that applies to this configuration, in order."""
    broker = check_broker(settings)
    if not broker.ok:
        return [broker]
    store = StatusStore.from_settings(settings)
    checks = [broker, *check_eviction(settings), check_visibility(settings), *check_queues(settings, store),
              *check_schedules(settings, store)]
    checks.append(check_flower(settings))
    if settings.s3_endpoint_url:
        checks.append(_reachable("s3 endpoint", settings.s3_endpoint_url, "check RUNNER_S3_ENDPOINT_URL"))
    return checks
