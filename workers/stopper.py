"""Stopping a task when its job ends (cancel, a failed piece, the deadline), from inside
the process that runs it.

Celery's ``revoke(terminate=True)`` signals a pool process by pid from the worker's main
process. By the time the signal lands that process may have finished the task and begun
another job's (Celery's author calls terminate "dangerous" for this reason, celery#2142),
and in our suite a worker once stopped consuming for good after one. So Runner revokes
without terminating (queued messages are dropped), and each pool process stops its own
task: while a Runner task runs, a watcher thread reads its job's state every
``CHECK_SECONDS`` (a task shorter than that costs nothing), and once the job has ended it
raises :class:`JobEnded` in the task's thread — ``sleep``, ``select`` and subprocess waits
return at once — and, if the task is still running ``GRACE_SECONDS`` later (stuck in C),
kills its own process. The watcher decides under the same lock the task releases when it
returns, so it never stops a task of another job.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from workers import runtime

__all__ = ["JobEnded", "stopped_when_job_ends", "every", "hard_limit", "time_left", "disarm", "running_for", "CHECK_SECONDS", "GRACE_SECONDS"]

CHECK_SECONDS = 0.25  # how often a running task's job state is read
GRACE_SECONDS = 3.0  # how long a task may take to leave after JobEnded before its process is killed


class JobEnded(BaseException):
    """The task's job ended while the task ran. A ``BaseException``, so ``except Exception``
    in user code cannot swallow it."""


class _Watch:
    def __init__(self, job_id: str) -> None:
        self.job_id, self.started = job_id, time.monotonic()
        self.signalled_at: float | None = None


class _Watcher:
    """The one watcher of this process (a pool process; started again after a fork)."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.current: _Watch | None = None
        self.armed = False  # JobEnded may be raised: the task is between begin() and release()
        self.owner = -1
        self.chores: list[list[Any]] = []  # [period, fn, last run] run by the watcher while a task runs
        self.kill_at: float | None = None  # monotonic time past which an inline stage counts as stuck

    def ensure_started(self) -> None:
        if self.owner != os.getpid():
            self.owner = os.getpid()
            self.lock = threading.Condition()
            self.current = None
            signal.signal(signal.SIGUSR2, _raise_job_ended)
            threading.Thread(target=self._loop, name="runner-stopper", daemon=True).start()

    def _loop(self) -> None:
        while True:
            with self.lock:
                while self.current is None:
                    self.lock.wait()
                watch = self.current
                self.lock.wait(CHECK_SECONDS)
                if self.current is not watch:
                    continue
            self._do_chores()
            kill_at = self.kill_at
            if kill_at is not None and time.monotonic() >= kill_at:
                with self.lock:
                    if self.current is watch and self.kill_at == kill_at:
                        os.kill(os.getpid(), signal.SIGKILL)  # an inline stage past its hard limit: stuck in C
            if watch.signalled_at is None and not _job_ended(watch.job_id):
                continue
            with self.lock:
                if self.current is not watch or not self.armed:
                    continue  # the task returned meanwhile, or ends the job itself: nothing to stop
                if watch.signalled_at is None:
                    watch.signalled_at = time.monotonic()
                    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR2)
                elif time.monotonic() - watch.signalled_at >= GRACE_SECONDS:
                    os.kill(os.getpid(), signal.SIGKILL)  # the pool replaces this process; its message returns

    def _do_chores(self) -> None:
        now = time.monotonic()
        for chore in self.chores:
            period, fn, last = chore
            if now - last >= period:
                chore[2] = now
                try:
                    fn()
                except Exception:  # the store may be restarting; the next round retries
                    pass

    def begin(self, job_id: str) -> None:
        with self.lock:
            self.current = _Watch(job_id)
            self.armed = True
            self.lock.notify()

    def release(self) -> None:
        """End the watch. The handler raises at most once per watch (it disarms first), so
        a JobEnded landing in here is caught and the release simply done again."""
        while True:
            try:
                self.armed = False
                with self.lock:
                    self.current = None
                return
            except JobEnded:
                continue


def _job_ended(job_id: str) -> bool:
    try:
        state = runtime.store().state(job_id)
    except Exception:
        return False  # the store is unreachable: let the task go on, its own writes will tell
    return state is None or state.is_final


def _raise_job_ended(signum: int, frame: FrameType | None) -> None:
    if _watcher.armed:  # a signal landing after the task returned is dropped
        _watcher.armed = False
        raise JobEnded("the job ended while this task ran")


_watcher = _Watcher()


@contextmanager
def stopped_when_job_ends(job_id: str) -> Iterator[None]:
    """Run the block under watch. Swallows :class:`JobEnded`: the task has nothing more
    to do. Off the main thread (a thread pool, no signals) nothing is watched."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _watcher.ensure_started()
    if _watcher.current is not None:  # a stage run inline, inside its parent task: already watched
        yield
        return
    _watcher.begin(job_id)
    try:
        yield
    except JobEnded:
        pass
    finally:
        _watcher.release()


def every(period: float, fn: Callable[[], None]) -> None:
    """Have the watcher thread call ``fn`` every ``period`` seconds while a task runs."""
    _watcher.chores.append([period, fn, time.monotonic()])


@contextmanager
def hard_limit(seconds: float) -> Iterator[None]:
    """Kill this process if the block (a stage run inline, which has no Celery hard limit
    of its own) runs past ``seconds``: code stuck where no signal reaches it. Its lease
    then sends the stage again as an ordinary task, under Celery's own limit."""
    previous, _watcher.kill_at = _watcher.kill_at, time.monotonic() + seconds
    try:
        yield
    finally:
        _watcher.kill_at = previous


def time_left() -> float:
    """Seconds until the innermost :func:`hard_limit` (infinite when none)."""
    kill_at = _watcher.kill_at
    return float("inf") if kill_at is None else kill_at - time.monotonic()


def disarm() -> None:
    """This process is ending the job itself (a failure, the assembly): seeing the job
    end must not interrupt it."""
    with _watcher.lock:
        _watcher.armed = False


def running_for() -> float:
    """Seconds since this process's current Runner task began (0 when none runs)."""
    watch = _watcher.current
    return 0.0 if watch is None else time.monotonic() - watch.started
