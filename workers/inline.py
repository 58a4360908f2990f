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
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

from celery import Celery, Task
from celery.events import EventDispatcher
from celery.exceptions import Retry
from celery.utils.saferepr import saferepr

from workers import leases, runtime, stopper

__all__ = ["InlineTask", "Stage", "serves", "stage", "has_headroom"]


class InlineTask:
    """What a Runner task function uses of its Celery ``Task``, for a stage run inline:
    its name, id, app, host, and ``retry`` (sent as an ordinary delayed task)."""

    def __init__(self, parent: Task, name: str, task_id: str, queue: str, deadline: float) -> None:
        self.app: Celery = parent.app
        self.name, self.queue, self.deadline = name, queue, deadline
        self.request = SimpleNamespace(id=task_id, hostname=parent.request.hostname, delivery_info={},
                                       timelimit=getattr(parent.request, "timelimit", None))  # the limit it runs under

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


class Stage:
    """A stage being run inline: the task its code is given, what it returned, and whether
    another stage follows it here at once (``follows``: a chain's next batch), whose
    events then carry its own (see :class:`_Announcer`)."""

    def __init__(self, task: InlineTask) -> None:
        self.task, self.result, self.follows = task, None, False


@contextmanager
def stage(parent: Task, name: str, task_id: str, args: list[Any], queue: str, deadline: float, *,
          leased: bool = False, release: bool = False) -> Iterator[Stage]:
    """Run the block here as task ``task_id`` of ``name`` — ``args`` as its message would
    carry them — under its lease (``leased``: taken already, when it was handed out),
    announced as the worker announces a task. A retry the block raises is sent as an
    ordinary delayed task, and ends the block quietly. With ``release``, its lease is
    dropped when it ends, not with the parent's (a chain of batches, ``workers/chain.py``,
    must not keep every finished batch's lease)."""
    running = Stage(InlineTask(parent, name, task_id, queue, deadline))
    announce = _Announcer(parent, task_id, outermost=not isinstance(parent, InlineTask))
    announce("task-received", name=name, args=saferepr(tuple(args)), kwargs="{}", retries=0,
             expires=datetime.fromtimestamp(deadline, tz=timezone.utc).isoformat())
    announce("task-started")
    began = time.monotonic()
    try:
        with leases.held(name, task_id, args, taken=leased, release=release):
            yield running
    except Retry as retry:
        announce("task-retried", exception=saferepr(retry.exc))
        return  # sent again as an ordinary task, after its backoff
    except Exception as exc:
        announce("task-failed", exception=saferepr(exc))
        raise
    announce("task-succeeded", last=not running.follows, result=saferepr(running.result),
             runtime=time.monotonic() - began)


_dispatchers: dict[tuple[int, str], EventDispatcher] = {}
_flushed_at: dict[tuple[int, str], float] = {}  # when each dispatcher last published its buffer
FLUSH_EVERY = 0.5  # a chain of stages publishes its events at least this often (Flower stays current)


class _Announcer:
    """Sends one inline task's Celery task events (when the worker sends task events),
    buffered: the outermost stage publishes them when it ends (one publish for its four
    events and those of the stages inside it). In a chain of stages the next one's end
    publishes them, unless ``FLUSH_EVERY`` has passed: a chain of short batches costs one
    publish per ``FLUSH_EVERY``, not one per batch."""

    def __init__(self, parent: Task, task_id: str, outermost: bool) -> None:
        self.task_id, self.outermost, self.dispatcher = task_id, outermost, None
        app, hostname = parent.app, parent.request.hostname
        self.key = (os.getpid(), hostname)  # a pool process forked later makes its own connection
        if app.conf.worker_send_task_events and hostname:
            if self.key not in _dispatchers:
                _dispatchers[self.key] = app.events.Dispatcher(  # buffered: one publish per task, not four a stage
                    app.connection_for_write(), hostname=hostname, enabled=True, buffer_while_offline=False,
                    buffer_group=["task"], buffer_limit=1000)
            self.dispatcher = _dispatchers[self.key]

    def __call__(self, kind: str, last: bool = True, **fields: Any) -> None:
        if self.dispatcher is not None:
            try:
                self.dispatcher.send(kind, uuid=self.task_id, **fields)
                now = time.monotonic()
                if (kind not in ("task-received", "task-started") and self.outermost
                        and (last or now - _flushed_at.get(self.key, 0.0) >= FLUSH_EVERY)):
                    self.dispatcher.flush(errors=False)
                    _flushed_at[self.key] = now
            except Exception:  # monitoring must never fail a job; the next stage connects afresh
                _dispatchers.pop(self.key, None)
                self.dispatcher = None
