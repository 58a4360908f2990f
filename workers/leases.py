"""Leases: how the fleet notices work that nobody is doing any more, and runs it again
within seconds instead of after the broker's visibility timeout (hours).

Every Runner task holds a lease while a worker has it — a member ``[name, id, args]`` of
one sorted set, scored by when its worker last vouched for it. The worker takes the lease
when it receives the task's message (and again when the task starts) and the task drops
it when its code returns or raises an ``Exception`` (a retry, a bug
already reported); a task that is killed or terminated — SIGKILL, Celery terminating it
on a lost connection, its host gone — keeps it. The worker's main process renews the leases of
the tasks its pool is running every couple of seconds. A lease that goes unrenewed for
``RUNNER_WORKER_DEAD_SECONDS`` means the task is gone: its worker died or lost its host,
or Celery cancelled it because the connection to Redis dropped (such a task cannot be
acknowledged, and its message would otherwise sit unacknowledged until the visibility
timeout). Every worker's watchdog sweeps for stale leases; one sweeper claims each (an
atomic ``ZREM``) and sends the task again under its own id. A batch handed out under fair share (``workers/share.py``) is leased the moment it
is handed out, so one whose sender died before sending it is re-sent too; one that only
waits its turn in the broker past the limit is found there and vouched for instead. Tasks are replay-safe — a
batch skips pieces that already have results, partition and assemble claim the job with
their task id — so a late redelivery of the original finds nothing left to do, and a
worker that comes back after being given up for dead counts nothing twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import wraps
from typing import Any

from celery import Celery, Task

from runner.dispatch import APP, TASKS, resend, template_queue
from runner.models import JobState
from workers import runtime
from workers import stopper
from workers.stopper import stopped_when_job_ends

__all__ = ["handed_over", "member", "held", "leased", "expect", "received", "renew", "recover", "RENEW_SECONDS"]

RENEW_SECONDS = 2.0  # how often a worker vouches for its running tasks
log = logging.getLogger("runner.leases")


def member(name: str, task_id: str, args: Any) -> str:
    """The lease of one task run: the same text in the task and in its worker's main process."""
    return json.dumps([name, task_id, list(args or [])], separators=(",", ":"))


def expect(name: str, task_id: str, args: list[Any], at: float) -> None:
    """Lease a task that is due to start at ``at`` (a retry after its backoff), so that it
    is re-run if the worker holding it dies while it waits."""
    runtime.store().fleet.lease(member(name, task_id, args), at)


@contextmanager
def held(name: str, task_id: str, args: Sequence[Any], *, taken: bool = False,
         release: bool = False) -> Iterator[None]:
    """Hold the lease of one run of task ``task_id`` of ``name`` for the block, which is
    stopped if its job ends (see above). A stage run inline inside another task
    (``workers/inline.py``) leaves its lease to be dropped with that task's, in one call —
    unless ``release``: then when it ends, the stage's alone; a lease left behind by a
    process that died after the stage finished only re-sends a stage that finds nothing to do."""
    lease, store = member(name, task_id, args), runtime.store()
    if not (taken or runtime.lease_taken(lease)):  # leased just now: handed out so, or with the job's spec
        store.fleet.lease(lease, time.time())
    outermost = not _running
    _running.append(lease)
    try:
        with stopped_when_job_ends(args[0]):  # every task's first argument is its job's id
            yield
    except Exception:  # a retry, a bug already reported: the task is over
        _over(store, outermost, lease if release else None)
        raise
    except BaseException:  # killed or terminated: the lease stays, for the sweep
        if outermost:
            _running.clear()
        raise
    _over(store, outermost, lease if release else None)


def leased(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a bound task function so it holds its lease while it runs (:func:`held`)."""

    @wraps(fn)
    def run(task: Task, *args: Any) -> Any:
        result = None
        with held(task.name, task.request.id, args):
            result = fn(task, *args)
        return result  # None when the job ended under it

    return run


def _over(store: Any, outermost: bool, release: str | None = None) -> None:
    if outermost:
        store.fleet.drop_leases(list(_running))
        _running.clear()
    elif release is not None and release in _running:
        _running.remove(release)
        store.fleet.drop_leases([release])


def handed_over(name: str, task_id: str, args: Sequence[Any]) -> str | None:
    """The lease of a stage run inline here (not the task's own), handed to a write the
    caller sends anyway — the ``TAKE`` that frees a chained batch's slot drops it in the
    same round trip — so it is neither renewed nor dropped here any more. None when no
    such lease is held here. Should that write fail, the lease is left to the sweep, which
    re-sends a stage that finds its pieces done."""
    lease = member(name, task_id, args)
    if lease in _running[1:]:
        _running.remove(lease)
        return lease
    return None


def _renew_inline() -> None:
    """Vouch for the stages this process runs inline (its main process knows only the
    task it handed over); called by the stopper's watcher thread while a task runs."""
    inline = _running[1:]
    if inline:
        runtime.store().fleet.renew_leases(inline, time.time())


_running: list[str] = []  # leases of this process's task and the stages it ran inline
stopper.every(RENEW_SECONDS, _renew_inline)


def received(request: Any) -> None:
    """Lease a task once this worker's main process takes its message, while it waits for
    a pool process (main process, Celery's ``task_received``). A worker killed between the
    two otherwise leaves nothing for the sweep: the message comes back only after the
    broker's visibility timeout (hours). Starting the task takes the same lease again. A
    retry waiting out its backoff (an ``eta``) keeps the lease :func:`expect` gave it.

    Written by a thread of the main process, not here: Celery calls this before it hands
    the message to a pool process, and a round trip here delayed every task's start by
    one (a tenth of a one-piece job's life beyond Celery's own hop, issue 24). The thread
    writes as soon as the main process waits again; a task over by then is not leased."""
    if request.name in TASKS and not request.eta:
        if not _receipt_writer:
            _receipt_writer.append(threading.Thread(target=_write_receipts, name="runner-receipts", daemon=True))
            _receipt_writer[0].start()
        _receipts.put(request)


def _write_receipts() -> None:
    """Lease every task received since the last write, in one command (main process)."""
    from celery.worker import state

    while True:
        requests = [_receipts.get()]
        while not _receipts.empty():
            requests.append(_receipts.get())
        held = [member(r.name, r.id, r.args) for r in requests if r.id in state.requests]  # else over already
        with contextlib.suppress(Exception):  # the store may be restarting: the task's start leases it too
            runtime.store().fleet.renew_leases(held, time.time(), only_existing=False)


_receipts: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
_receipt_writer: list[threading.Thread] = []


def renew() -> None:
    """Vouch for every Runner task this worker holds: running in its pool, or received and
    waiting for a pool process (main process)."""
    from celery.worker import state

    held_here = [*list(state.active_requests), *list(state.reserved_requests)]
    running = [member(r.task_name, r.id, r.args) for r in held_here if r.task_name in TASKS]
    runtime.store().fleet.renew_leases(running, time.time())


def recover(celery: Celery, now: float | None = None) -> list[str]:
    """Send again every task whose lease went stale, once across the fleet; returns the
    leases this call recovered."""
    store, settings = runtime.store(), runtime.settings()
    now = now or time.time()
    recovered = []
    for raw in store.fleet.stale_leases(now - settings.worker_dead_seconds):
        if not store.fleet.claim_lease(raw):
            continue  # another worker's sweep took it
        name, task_id, args = json.loads(raw)
        fields = store.jobs.fields(args[0], "state", "deadline", "queue")
        if fields["state"] is None or JobState(fields["state"]).is_final or (fields["deadline"] or 0) <= now:
            continue  # the job ended (or is ending at its deadline): nothing to re-run
        queue = fields["queue"] if name == APP else settings.control_queue
        if name == APP and store.broker(settings.broker_url).holds([queue, template_queue(queue, args[1])], task_id):
            store.fleet.lease(raw, now)  # handed out under fair share, still waiting its turn: not lost
            continue
        resend(celery, name, task_id, args, queue, fields["deadline"])
        what = f"pieces {args[2]}..{args[3] - 1}" if name == APP else name
        store.journal.add_logs(args[0], [{"level": "WARNING", "source": "runner", "msg":
                                  f"{what} re-sent: no worker has vouched for task {task_id} for "
                                  f"{settings.worker_dead_seconds:g}s (worker dead or disconnected)"}])
        log.warning("re-sent %s %s of job %s: its lease went stale", name, task_id, args[0])
        recovered.append(raw)
    return recovered

