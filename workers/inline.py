"""Running a job's next stage in the process that finished the current one.

A Celery task costs a broker round trip: the message is pushed, the worker's main
process pops it, records it as unacknowledged, hands it to a pool process, and acks it
after — several milliseconds on an idle machine, most of a small job's life. So when a
worker serves the queue the next stage would be sent to, the process at hand runs it
itself: the partition task runs the first batch (the others are sent as usual) and the
batch that records the job's last piece runs the assembly.

An inline stage keeps everything a sent one has except its own Celery message: its own
task id, its own lease (so if this process dies, the lease sweep sends it again as an ordinary task
under that id), the same events and log lines, and a retry is sent as an ordinary
delayed task. It is announced with the Celery task events a worker sends for a task it
runs (received, started, succeeded or failed, on this worker), so Flower lists it like
any other task. ``RUNNER_INLINE_STAGES=false`` turns it off.

An inline stage has no Celery hard time limit of its own; it runs under the enclosing
task's. The assembly therefore runs inline only when that limit leaves it a whole
piece's budget; otherwise it is sent. Code stuck past the job's deadline is still stopped
(``workers/stopper.py``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

from celery import Celery, Task
from celery.events import EventDispatcher
from celery.exceptions import Retry
from celery.utils.saferepr import saferepr

from workers import leases, runtime, stopper

__all__ = ["InlineTask", "serves", "run_inline", "has_headroom"]


class InlineTask:
    """What a Runner task function uses of its Celery ``Task``, for a stage run inline:
    its name, id, app, host, and ``retry`` (sent as an ordinary delayed task)."""

    def __init__(self, parent: Task, name: str, task_id: str, queue: str, deadline: float) -> None:
        self.app: Celery = parent.app
        self.name, self.queue, self.deadline = name, queue, deadline
        self.request = SimpleNamespace(id=task_id, hostname=parent.request.hostname, timelimit=None,
                                       delivery_info={})

    def retry(self, args: list[Any], countdown: float, max_retries: int | None = None,
              exc: BaseException | None = None) -> Retry:
        expires = datetime.fromtimestamp(self.deadline, tz=timezone.utc)
        self.app.send_task(self.name, args=args, queue=self.queue, countdown=countdown, expires=expires,
                           task_id=self.request.id, ignore_result=True)
        return Retry(exc=exc, when=countdown)


def serves(celery: Celery, queue: str) -> bool:
    """Whether this worker consumes ``queue`` (and inline stages are on)."""
    if not runtime.settings().inline_stages:
        return False
    consumed = celery.amqp.queues.consume_from
    return bool(consumed) and queue in consumed


def has_headroom(task: Any, budget: float) -> bool:
    """Whether the hard time limit ``task`` runs under — Celery's, or that of the stage
    it runs inline (``stopper.hard_limit``) — leaves ``budget`` seconds more."""
    hard = (getattr(task.request, "timelimit", None) or (None, None))[0]
    celery_left = float("inf") if hard is None else hard - stopper.running_for()
    return min(celery_left, stopper.time_left()) >= budget


def run_inline(parent: Task, name: str, fn: Callable[..., Any], task_id: str, args: list[Any], queue: str,
               deadline: float) -> Any:
    """Run the task function ``fn`` here as task ``task_id`` of ``name``, under its lease."""
    task = InlineTask(parent, name, task_id, queue, deadline)
    announce = _Announcer(parent, task_id, outermost=not isinstance(parent, InlineTask))
    announce("task-received", name=name, args=saferepr(tuple(args)), kwargs="{}", retries=0,
             expires=datetime.fromtimestamp(deadline, tz=timezone.utc).isoformat())
    announce("task-started")
    began = time.monotonic()
    try:
        result = leases.leased(fn)(task, *args)
    except Retry as retry:
        announce("task-retried", exception=saferepr(retry.exc))
        return None  # sent again as an ordinary task, after its backoff
    except Exception as exc:
        announce("task-failed", exception=saferepr(exc))
        raise
    announce("task-succeeded", result=saferepr(result), runtime=time.monotonic() - began)
    return result


_dispatchers: dict[tuple[int, str], EventDispatcher] = {}


class _Announcer:
    """Sends one inline task's Celery task events (when the worker sends task events)."""

    def __init__(self, parent: Task, task_id: str, outermost: bool) -> None:
        self.task_id, self.outermost, self.dispatcher = task_id, outermost, None
        app, hostname = parent.app, parent.request.hostname
        if app.conf.worker_send_task_events and hostname:
            key = (os.getpid(), hostname)  # a pool process forked later makes its own connection
            if key not in _dispatchers:
                _dispatchers[key] = app.events.Dispatcher(  # buffered: one publish per stage, not four
                    app.connection_for_write(), hostname=hostname, enabled=True, buffer_while_offline=False,
                    buffer_group=["task"], buffer_limit=1000)
            self.dispatcher = _dispatchers[key]

    def __call__(self, kind: str, **fields: Any) -> None:
        if self.dispatcher is not None:
            try:
                self.dispatcher.send(kind, uuid=self.task_id, **fields)
                if kind not in ("task-received", "task-started") and self.outermost:
                    self.dispatcher.flush(errors=False)  # once per task that ran stages inline
            except Exception:  # monitoring must never fail a job
                pass
