"""How Runner talks to Celery: the shared configuration, and sending tasks by name.

The client side never imports ``workers/``: it only knows the task names below. Both
sides build their Celery app from :func:`celery_config`, so the serializer, acks and
transport settings can never drift apart between a client and the fleet.
"""

from __future__ import annotations

import secrets
import uuid
from contextlib import nullcontext
from datetime import datetime, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from runner.config import Settings
from runner.redis_connect import is_sentinel

if TYPE_CHECKING:
    from celery import Celery  # imported when a Celery app is made: clients that only read skip it

__all__ = [
    "PARTITION", "APP", "ASSEMBLE", "RESUME", "TASKS",
    "celery_config", "make_celery", "send_partition", "send_partitions",
    "partition_commands_many", "send_resume", "send_assemble", "assemble_task_id", "resend",
    "stop_tasks", "template_queue",
]

PARTITION = "runner.partition"
APP = "runner.app"
ASSEMBLE = "runner.assemble"
RESUME = "runner.resume"
TASKS = (PARTITION, APP, ASSEMBLE, RESUME)


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings every Runner process shares. Why each one matters:

    - JSON only, both ways: with pickle, anyone who can write to the broker runs code.
    - Late acks and reject-on-worker-lost: a piece whose worker dies is redelivered.
    - Prefetch 1: pieces are batched already; prefetching more starves idle workers.
    - Task events on: Flower fills without extra flags.
    - Queues are read in the order a worker lists them, the control queue first
      (``queue_order_strategy`` "priority", not kombu's round robin): a partition task
      starts the moment a process frees, instead of after the app batch that came up
      in the rotation — under fair share, how soon a newly submitted job starts.
    - Publishing retries through a Redis outage of ``redis_outage_seconds``, and workers
      reconnect for as long as it takes: an outage is a pause, not a failure. Tasks a
      worker cancels when its connection drops (they could not be acknowledged) are
      re-run by the lease sweep (``workers/leases.py``) instead of waiting for the
      visibility timeout.
    - No Celery results: every result lives in Runner's store, and the assembly is sent
      by the batch that records the last piece, not by a chord. (The result backend
      setting stays for Celery's own use, e.g. benchmarks of a plain chord.)
    """
    transport: dict[str, Any] = {"visibility_timeout": settings.visibility_timeout,
                                 "queue_order_strategy": "priority"}  # control first: see the worker's queues
    if is_sentinel(settings.broker_url) or is_sentinel(settings.backend_url):
        transport["master_name"] = settings.redis_master_name  # Celery's sentinel:// transport needs it
    publish_retries = max(3, int(settings.redis_outage_seconds / 0.5))
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.backend_url,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "event_serializer": "json",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_default_queue": settings.default_queue,
        "task_routes": {
            PARTITION: {"queue": settings.control_queue},
            ASSEMBLE: {"queue": settings.control_queue},
            RESUME: {"queue": settings.control_queue},
        },
        "broker_transport_options": transport,
        "result_backend_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "task_publish_retry_policy": {"max_retries": publish_retries, "interval_start": 0,
                                      "interval_step": 0.2, "interval_max": 0.5},
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "result_expires": int(settings.retention_hours * 3600),
        "worker_hijack_root_logger": False,
        "enable_utc": True,
    }


def make_celery(settings: Settings, main: str = "runner") -> Celery:
    """A Celery app configured for Runner (no tasks registered: clients send by name)."""
    from celery import Celery

    celery = Celery(main, set_as_current=False, amqp=_amqp_class())
    celery.conf.update(celery_config(settings))
    return celery


@lru_cache(maxsize=1)
def _amqp_class() -> type:
    """Celery's AMQP with a kombu ``Connection`` whose printable URL shows ``:**@`` only
    for a password there is: kombu masks one that is not there too, so the worker banner,
    Flower and connection errors showed ``redis://:**@127.0.0.1:6379/0`` for a Redis
    without a password, as if one were set."""
    from celery.app.amqp import AMQP
    from kombu import Connection

    class _Connection(Connection):  # type: ignore[misc]
        def as_uri(self, include_password: bool = False, mask: str = "**", **kwargs: Any) -> str:
            uri = super().as_uri(include_password, mask, **kwargs)
            if include_password or self.password or f":{mask}@" not in uri:
                return uri
            return uri.replace(f":{mask}@", "@", 1).replace("://@", "://", 1)

    return type("RunnerAMQP", (AMQP,), {"Connection": _Connection, "BrokerConnection": _Connection})


def send_partition(celery: Celery, job_id: str, template: str, queue: str, deadline: float,
                   task_id: str | None = None) -> str:
    """Queue the job's partition task; returns its Celery task id.

    Arguments are positional and short (job id first) so Flower's truncated argument
    column always shows which job a task belongs to.
    """
    return _send_batched(celery, PARTITION, [job_id, template], queue, deadline, task_id)


def partition_commands_many(celery: Celery, queue: str, tasks: list[tuple[str, str, float, str]],
                            ) -> list[list[tuple[str, tuple[Any, ...]]]] | None:
    """What :func:`send_partitions` would send the broker for these jobs' partition tasks,
    ``(job id, template, deadline, task id)`` each, as Redis commands, without sending
    them: each task message's ``LPUSH`` and its ``task-sent`` event's ``PUBLISH``, built
    by Celery and kombu exactly as they send them, through one producer. Admission puts
    them in the transaction that writes the jobs (when the broker is the store's Redis),
    so a submit costs one round trip less and a task exists exactly when its record does.
    Each task's commands, in order, or ``None`` when this kombu or transport cannot hand
    them over (no producer batches, a key prefix it adds in its client): the caller then
    sends the tasks itself."""
    if celery.conf.broker_transport_options.get("global_keyprefix"):
        return None
    with celery.producer_or_acquire() as producer:
        batch = getattr(producer, "batch", None)
        if batch is None or not producer.supports_batch_publish:
            return None
        capture = _Capture(producer.channel)
        found: list[list[tuple[str, tuple[Any, ...]]]] = []
        with batch() as batched:
            state = getattr(batched, "state", None)
            if state is None or getattr(state, "session", False) is not None:
                return None  # not the kombu batch this knows
            state.session = capture  # kombu would make its own pipeline batch here: keep the commands instead
            for n, (job_id, template, deadline, task_id) in enumerate(tasks):
                capture.commands = []
                celery.send_task(PARTITION, producer=producer, **_partition_options(job_id, template, queue, deadline,
                                                                                    task_id, first=n == 0))
                found.append(capture.commands)
    if not all(commands and all(name in ("lpush", "publish") for name, _ in commands) for commands in found):
        return None
    return found


def send_partitions(celery: Celery, queue: str, tasks: list[tuple[str, str, float, str]]) -> None:
    """Queue many jobs' partition tasks, ``(job id, template, deadline, task id)`` each,
    through one producer: where the transport batches publishes (kombu's
    ``Producer.batch``, Redis) every message and its task-sent event go in one pipelined
    round trip, else one publish each on that producer. If the batch's flush fails, each
    task is sent again the ordinary way (with Celery's retries), under its own id, as
    :func:`_send_batched` does; raises if that fails too."""
    if not tasks:
        return
    with celery.producer_or_acquire() as producer:
        batch = getattr(producer, "batch", None)
        try:
            with batch() if batch is not None else nullcontext():
                for n, (job_id, template, deadline, task_id) in enumerate(tasks):
                    celery.send_task(PARTITION, producer=producer,
                                     **_partition_options(job_id, template, queue, deadline, task_id, first=n == 0))
            return
        except _batch_errors():
            pass  # delivery uncertain: sent again below, each with retries (a second copy finds its job claimed)
    for job_id, template, deadline, task_id in tasks:
        _send_batched(celery, PARTITION, [job_id, template], queue, deadline, task_id)


def _task_options(args: list[Any], queue: str, deadline: float, task_id: str) -> dict[str, Any]:
    """A Runner task's ``send_task`` options: its job's deadline as its expiry, no Celery result."""
    return {"args": args, "queue": queue, "task_id": task_id, "ignore_result": True,
            "expires": datetime.fromtimestamp(deadline, tz=timezone.utc)}


def _partition_options(job_id: str, template: str, queue: str, deadline: float, task_id: str,
                       first: bool = True) -> dict[str, Any]:
    """A partition task's ``send_task`` options; after a batch's first message its queue
    is declared already (``declare=[]`` spares kombu the check per message)."""
    options = _task_options([job_id, template], queue, deadline, task_id)
    return options if first else {**options, "declare": []}


class _Capture:
    """Stands in for kombu's Redis publish batch (``PublishBatch``): the transport routes
    and serialises each message as for sending, and hands its final commands to ``add``."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.commands: list[tuple[str, tuple[Any, ...]]] = []

    def publish(self, message: Any, **kwargs: Any) -> Any:
        return self.channel.basic_publish(message, _publish_batch=self, **kwargs)

    def add(self, name: str, *args: Any) -> None:
        self.commands.append((name, args))

    def flush(self) -> None:
        """Nothing to send: the caller sends the commands."""

    def discard(self) -> None:
        self.commands.clear()

    def close(self) -> None:
        """Nothing held."""


def send_resume(celery: Celery, job_id: str, template: str, queue: str, deadline: float) -> str:
    """Queue a task that re-runs the job's pieces that have no result, then assembles."""
    return _send_batched(celery, RESUME, [job_id, template], queue, deadline, None)


def _send_batched(celery: Celery, name: str, args: list[Any], queue: str, deadline: float,
                  task_id: str | None) -> str:
    """Send a task and its ``task-sent`` event (what Flower shows) in ONE round trip: a
    submit's latency is mostly round trips, and Celery otherwise sends the two apart,
    each through a Redis client kombu builds for that one publish. Kombu's producer
    batch (Redis transport, kombu >= 5.7) buffers both in one pipeline; elsewhere the
    send is Celery's own.

    A batch is flushed once, without Celery's publish retries; if that flush fails the
    task is sent again the ordinary way, riding out a broker outage as before. Under the
    same id: should the failed flush have reached Redis after all, the second copy finds
    its job claimed and does nothing, as any redelivered task does."""
    task_id = task_id or str(uuid.uuid4())
    options = _task_options(args, queue, deadline, task_id)
    with celery.producer_or_acquire() as producer:
        batch = getattr(producer, "batch", None)
        if batch is not None:
            try:
                with batch():
                    celery.send_task(name, producer=producer, **options)
                return task_id
            except _batch_errors():
                pass  # the flush failed: delivery uncertain, sent again below with retries
    return celery.send_task(name, **options).id


@lru_cache(maxsize=1)
def _batch_errors() -> tuple[type[BaseException], ...]:
    """What a failed batch flush raises (kombu >= 5.7; none before, which never batches)."""
    try:
        from kombu.exceptions import BatchPublishError
    except ImportError:
        return ()
    return (BatchPublishError,)


def assemble_task_id(job_id: str) -> str:
    """A fresh id for the job's assembly (one per attempt: a retry round assembles again)."""
    return f"{job_id}-assemble-{secrets.token_hex(3)}"


def send_assemble(celery: Celery, job_id: str, deadline: float) -> str:
    """Queue the job's assembly (sent by the batch that recorded the last piece)."""
    return celery.send_task(ASSEMBLE, **_task_options([job_id], _control_queue(celery), deadline,
                                                     assemble_task_id(job_id))).id


def resend(celery: Celery, name: str, task_id: str, args: list[Any], queue: str, deadline: float) -> None:
    """Send a task again under its own id (a dead worker's task, re-run elsewhere): the
    task recognises itself, so a late redelivery of the original finds nothing to do."""
    celery.send_task(name, **_task_options(args, queue, deadline, task_id))


def template_queue(queue: str, ref: str) -> str:
    """The queue of ``queue``'s tasks for template ``ref`` (``name@version``), consumed only
    by workers that registered it: where a task that landed on a worker without its
    template is passed on (``workers/routing.py``)."""
    return f"{queue}:{ref}"


def _control_queue(celery: Celery) -> str:
    return celery.conf.task_routes[ASSEMBLE]["queue"]


def stop_tasks(celery: Celery, task_ids: list[str]) -> None:
    """Revoke a job's tasks: queued ones are dropped when a worker receives them. Running
    ones stop themselves once they see the job ended (``workers/stopper.py``): a terminate
    signalled by pid can land on the next task that process took up."""
    if task_ids:
        celery.control.revoke(task_ids)
