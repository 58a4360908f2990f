"""Booting a worker: the Celery app with Runner's tasks, user modules, and a heartbeat.

``runner worker`` is a thin layer over ``celery worker``: it adds Runner's defaults
(prefork pool, the control queue, task events) and passes every other option through.
Each worker writes a heartbeat to the store so clients can tell which queues have live
workers and how many processes they have (the canvas sizes batches from that), and runs
the deadline watchdog (``workers/watchdog.py``).

At boot, before consuming anything, a worker publishes every template it registered
(``runner/catalog.py``) so that clients need no import of user code; a worker whose
``name@version`` means something else than the published one refuses to start.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import sys
import threading
from typing import Any

import redis

from celery import Celery
from celery.utils.nodenames import host_format
from celery.signals import (after_setup_logger, after_setup_task_logger, task_received, worker_init,
                            worker_process_init, worker_ready, worker_shutdown, worker_shutting_down)

from runner.catalog import TemplateInfo, publish
from runner.config import Settings
from runner.errors import ClusterError
from runner.dispatch import make_celery
from runner.engines.imports import load_imported
from runner.models import WorkerInfo
from runner.redis_connect import require_reachable
from runner.registry import add_template_loader, load_plugins, templates
from runner.store import StatusStore
from workers import leases, lookout, runtime
from workers.routing import local_templates, template_queues
from workers.tasks import register_tasks
from workers.watchdog import start_watchdog

__all__ = ["create_app", "run_worker", "HEARTBEAT_SECONDS"]

HEARTBEAT_SECONDS = leases.RENEW_SECONDS  # the heartbeat also vouches for the tasks the pool runs
_stopping = threading.Event()
_background: list[threading.Thread] = []  # the watchdog: joined at shutdown, so a sweep is never cut in half
SWEEP_GRACE_SECONDS = 15.0  # how long shutdown waits for a sweep under way (a sweep's budget is 5 s)


def create_app(settings: Settings | None = None) -> Celery:
    """The worker's Celery app: Runner's tasks plus every template module imported, and the
    loader of templates imported into the store (``runner template import``), which may
    appear after this worker started."""
    if settings is not None:
        runtime.configure(settings)
    settings = runtime.settings()
    load_plugins(settings.include)
    add_template_loader(load_imported)
    publish_templates(settings)
    celery = make_celery(settings, main="runner")
    register_tasks(celery)
    celery.set_default()
    celery.set_current()
    return celery


def publish_templates(settings: Settings) -> None:
    """Publish every registered template. The store's client rides out a Redis that is
    not up yet for ``RUNNER_REDIS_OUTAGE_SECONDS`` (a fleet may start before its Redis).
    Raises TemplateError on a conflicting definition, ClusterError if the store stays
    unreachable."""
    infos = [TemplateInfo.from_template(t) for t in templates()]
    store = StatusStore.from_settings(settings, patient=True)  # its own client: the pool forks later
    try:
        publish(store, infos)
    except redis.ConnectionError as exc:
        raise ClusterError(f"cannot publish templates: status store unreachable ({exc})") from exc
    finally:
        store.close()


def _worker_info(consumer: Any) -> WorkerInfo:
    """What the heartbeat says: the queues jobs name (template queues are implied by
    ``templates``, see ``workers/routing.py``), the templates this worker runs, and where
    its files may be and its artifacts are (so a client can check a job's file:// URIs
    against the workers' roots, and say where artifacts went)."""
    queues = sorted(q for q in consumer.app.amqp.queues.consume_from if ":" not in q)
    settings = runtime.settings()
    return WorkerInfo(hostname=consumer.hostname, queues=queues, concurrency=consumer.controller.concurrency,
                      pid=os.getpid(), templates=local_templates(), artifacts=settings.artifacts_root,
                      file_roots=[str(root.resolve()) for root in settings.allowed_roots])


def ready_line(info: WorkerInfo) -> str:
    """The one line a started worker prints at any log level: a newcomer's sign that it runs."""
    names = ", ".join(info.templates) or "none (start it with --include MODULE to run your templates)"
    return (f"runner worker {info.hostname} ready: queues {', '.join(info.queues)}; "
            f"{info.concurrency} process{'es' if info.concurrency != 1 else ''}; templates {names}")


def _say_ready(info: WorkerInfo) -> None:
    line = ready_line(info)
    if runtime.settings().log_format == "json":
        line = json.dumps({"level": "INFO", "logger": "runner.worker", "msg": line, "worker": info.hostname,
                           "queues": info.queues, "processes": info.concurrency, "templates": info.templates})
    with contextlib.suppress(OSError, ValueError, AttributeError):  # a detached worker has no stderr
        print(line, file=sys.__stderr__, flush=True)  # not Celery's redirected stderr, which would say WARNING


class JsonLogFormatter(logging.Formatter):
    """One JSON object a line, for log shippers (``RUNNER_LOG_FORMAT=json``)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "t": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname,
            "logger": record.name,
            "process": record.processName,
            "msg": record.getMessage(),
        }
        for key in ("job_id", "piece"):
            if getattr(record, key, None) is not None:
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


@after_setup_logger.connect
@after_setup_task_logger.connect
def _log_format(logger: logging.Logger | None = None, **_: Any) -> None:
    if logger is not None and runtime.settings().log_format == "json":
        for handler in logger.handlers:
            handler.setFormatter(JsonLogFormatter())


@worker_init.connect
def _freeze_heap(**_: Any) -> None:
    """Move every object alive once the worker has started (modules, the Celery app,
    templates: hundreds of thousands) out of the cyclic collector's reach. A full
    collection otherwise walks them all: 40–70 ms on the 2-core machine, in the main
    process while it hands out messages, or in a pool process between two batches. The
    main process does it before the pool forks: its processes inherit the frozen heap."""
    gc.collect()
    gc.freeze()


@worker_process_init.connect
def _freeze_pool_process_heap(**_: Any) -> None:
    """What a pool process's own start added is frozen too (no collection first: it would
    touch, and so copy, every page the process shares with the main one)."""
    gc.freeze()


@task_received.connect
def _lease_on_receipt(request: Any = None, **_: Any) -> None:
    with contextlib.suppress(Exception):  # a lease is a safety net: never let it stop a task's delivery
        leases.received(request)


@worker_ready.connect
def _start_background(sender: Any = None, **_: Any) -> None:
    info = _worker_info(sender)
    store = runtime.store()
    with contextlib.suppress(Exception):  # the beat thread retries; ready means `runner workers` lists it
        store.heartbeat_worker(info)
    _say_ready(info)

    def beat() -> None:
        while True:
            try:
                store.fleet.heartbeat_worker(info)
                leases.renew()
            except Exception:  # the broker may be restarting; the next beat retries
                pass
            if _stopping.wait(HEARTBEAT_SECONDS):
                return

    threading.Thread(target=beat, name="runner-heartbeat", daemon=True).start()
    _background.append(start_watchdog(sender.app, _stopping))
    if runtime.settings().fair_share:
        lookout.start(_stopping)  # before the pool's processes run batches: they read what it sees


@worker_shutting_down.connect
def _stop_sweeping(**_: Any) -> None:
    """Shutdown begins: no new sweep starts (a sweep under way runs to its end)."""
    _stopping.set()


@worker_shutdown.connect
def _stop(sender: Any = None, **_: Any) -> None:
    """Wait for a sweep under way before the process exits: its firings were admitted as
    jobs and are recorded on the schedule only at the end of their batch (a job no schedule
    lists, and a gap in ``catch_up="all"``, otherwise)."""
    _stopping.set()
    for thread in _background:
        thread.join(SWEEP_GRACE_SECONDS)
    try:
        runtime.store().fleet.forget_worker(sender.hostname)
    except Exception:
        pass


def run_worker(
    include: list[str] | None = None,
    queues: list[str] | None = None,
    concurrency: int | None = None,
    extra: list[str] | None = None,
    settings: Settings | None = None,
) -> None:
    """Run a worker in this process until it is told to stop (SIGTERM: warm shutdown).

    Raises ``redis.ConnectionError`` within seconds when the broker or the store cannot be
    reached at start, with the line every client says: a worker started by hand against
    a wrong URL must say so, not wait in silence (Compose starts workers once Redis is
    healthy, and restarts them). Once started, a worker rides out Redis outages."""
    base = settings or runtime.settings()
    require_reachable(base.broker_url, base.status_store_url, base.redis_master_name)
    settings = base.model_copy(update={"include": [*base.include, *(include or [])]})
    celery = create_app(settings)
    queues = [settings.control_queue, *(q for q in (queues or [settings.default_queue]) if q != settings.control_queue)]
    argv = ["worker", "--pool", "prefork", "--queues", ",".join([*queues, *template_queues(queues)])]
    name = _given_name(extra or [])
    if name is None:
        name = default_name()
        argv += ["--hostname", name]
    runtime.set_name(host_format(name))
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    celery.worker_main([*argv, *(extra or [])])


def default_name() -> str:
    """A worker's name unless ``--hostname`` gives one: unique per process, so two workers
    on one host never share Celery's ``celery@<host>`` (one would hide the other)."""
    return f"runner-{os.getpid()}@%h"


def _given_name(extra: list[str]) -> str | None:
    """The ``--hostname`` / ``-n`` among celery's options, if any."""
    for i, arg in enumerate(extra):
        if arg in ("-n", "--hostname") and i + 1 < len(extra):
            return extra[i + 1]
        if arg.startswith("--hostname="):
            return arg.split("=", 1)[1]
        if arg.startswith("-n") and not arg.startswith("--") and len(arg) > 2:
            return arg[2:].lstrip("=")
    return None
