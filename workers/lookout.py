"""Watching, off the piece loop, for what a running batch must stop for.

A batch stops between pieces when its job has ended (a cancel, a piece failed elsewhere)
and, under fair share, when a task waits on the control queue — a newly submitted job's
partition, most often — so the newcomer starts within a few tens of milliseconds instead
of after the whole batch (``workers/batch.py``). Each is one read of Redis. Read between
pieces, the piece loop waited for them, and on a machine whose every core runs pieces a
round trip waits for Redis to be *scheduled*: about a millisecond, not a tenth. Every
20 ms that cost tiny pieces several percent of their throughput, and 30 ms pieces 5% of
their wall time (the 2-core machine, issue 24).

So one thread per pool process does the reading for the batch that runs, every
``NEWCOMER_SECONDS`` (the control queue's length) and ``STATE_SECONDS`` (the job's
state); when it finds something it sets the batch's :class:`Watch` flags and pokes the
batch (``poke``), whose next comparison between pieces then takes the slow path. The
piece loop itself reads no Redis between pieces but for its periodic flush.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from workers import runtime

__all__ = ["Watch", "watching", "NEWCOMER_SECONDS", "STATE_SECONDS"]

NEWCOMER_SECONDS = 0.02  # under fair share, how often a batch looks for a newly arrived job waiting
STATE_SECONDS = 0.05  # how stale a batch's idea of its job's state may be


class Watch:
    """What the lookout found for one batch. Flags only ever go from False to True."""

    def __init__(self, job_id: str, newcomers: bool, poke: Callable[[], None]) -> None:
        self.job_id, self.newcomers, self.poke = job_id, newcomers, poke
        self.ended = False  # the job is final (or its record gone)
        self.newcomer = False  # a task waits on the control queue
        self.clear_at: float | None = None  # when (monotonic) the control queue was last seen empty

    def look(self, now: float, state_due: bool, newcomer_due: bool) -> None:
        """One round of reads (the lookout thread); a failed read is simply tried again."""
        store, settings = runtime.store(), runtime.settings()
        found = False
        try:
            if state_due:
                state = store.jobs.state(self.job_id)
                found = self.ended = state is None or state.is_final
            if newcomer_due and not found:
                if store.broker(settings.broker_url).depth(settings.control_queue) > 0:
                    found = self.newcomer = True
                else:
                    self.clear_at = now
        except Exception:  # the store may be restarting: the batch's own writes will tell
            return
        if found:
            self.poke()


class _Lookout:
    """The one lookout thread of this process (started again after a fork)."""

    def __init__(self) -> None:
        self.owner = -1
        self.lock = threading.Condition()
        self.current: Watch | None = None

    def ensure_started(self) -> None:
        if self.owner != os.getpid():
            self.owner, self.lock, self.current = os.getpid(), threading.Condition(), None
            threading.Thread(target=self._loop, name="runner-lookout", daemon=True).start()

    def _loop(self) -> None:
        state_at = newcomer_at = 0.0
        while True:
            with self.lock:
                while self.current is None:
                    self.lock.wait()
                    now = time.monotonic()
                    state_at, newcomer_at = now + STATE_SECONDS, now + NEWCOMER_SECONDS  # a batch's start read its state
                watch = self.current
                due = min(state_at, newcomer_at if watch.newcomers else state_at)
                self.lock.wait(max(0.0, due - time.monotonic()))
                if self.current is not watch:
                    continue
            now = time.monotonic()
            state_due, newcomer_due = now >= state_at, watch.newcomers and now >= newcomer_at
            if state_due:
                state_at = now + STATE_SECONDS
            if newcomer_due:
                newcomer_at = now + NEWCOMER_SECONDS
            if state_due or newcomer_due:
                watch.look(now, state_due, newcomer_due)

    @contextmanager
    def watching(self, watch: Watch) -> Iterator[Watch]:
        self.ensure_started()
        with self.lock:
            previous, self.current = self.current, watch
            self.lock.notify()
        try:
            yield watch
        finally:
            with self.lock:
                self.current = previous
                self.lock.notify()


_lookout = _Lookout()


def watching(job_id: str, newcomers: bool, poke: Callable[[], None]) -> AbstractContextManager[Watch]:
    """Watch job ``job_id`` (and, with ``newcomers``, the control queue) for the block;
    ``poke`` is called, from the lookout thread, when something is found."""
    return _lookout.watching(Watch(job_id, newcomers, poke))
