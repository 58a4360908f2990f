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

import json
import logging
import os
import threading
from typing import Any

import redis

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger, worker_ready, worker_shutdown

from runner.catalog import TemplateInfo, publish
from runner.config import Settings
from runner.errors import ClusterError
from runner.dispatch import make_celery
from runner.models import WorkerInfo
from runner.registry import load_plugins, templates
from runner.store import StatusStore
from workers import leases, runtime
from workers.tasks import register_tasks
from workers.watchdog import start_watchdog

__all__ = ["create_app", "run_worker", "HEARTBEAT_SECONDS"]

HEARTBEAT_SECONDS = leases.RENEW_SECONDS  # the heartbeat also vouches for the tasks the pool runs
_stopping = threading.Event()


def create_app(settings: Settings | None = None) -> Celery:
    """The worker's Celery app: Runner's tasks plus every template module imported."""
    if settings is not None:
        runtime.configure(settings)
    settings = runtime.settings()
    load_plugins(settings.include)
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
    return WorkerInfo(hostname=consumer.hostname, queues=sorted(consumer.app.amqp.queues.consume_from),
                      concurrency=consumer.controller.concurrency, pid=os.getpid())


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


@worker_ready.connect
def _start_background(sender: Any = None, **_: Any) -> None:
    info = _worker_info(sender)
    store = runtime.store()

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
    start_watchdog(sender.app, _stopping)


@worker_shutdown.connect
def _stop(sender: Any = None, **_: Any) -> None:
    _stopping.set()
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
    """Run a worker in this process until it is told to stop (SIGTERM: warm shutdown)."""
    base = settings or runtime.settings()
    settings = base.model_copy(update={"include": [*base.include, *(include or [])]})
    celery = create_app(settings)
    queues = list(queues or [settings.default_queue])
    if settings.control_queue not in queues:
        queues.append(settings.control_queue)
    argv = ["worker", "--pool", "prefork", "--queues", ",".join(queues)]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    celery.worker_main([*argv, *(extra or [])])
