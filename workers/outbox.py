"""``ctx.log`` lines on their way to the job's log: sent as they are written, in batches.

A line is sent at once when none was sent in the last ``SEND_SECONDS``; otherwise it waits
at most about that long — the stopper's watcher thread sends what waits while a task runs
(``stopper.every``) — and every task sends what is left when it ends, however it ends (a
failure, a retry, the job cancelled or timed out under it). So the lines a user needs
when a job ends mid-piece are in its log, and they sit among Runner's own lines in the
order they were written, not after the piece that wrote them.

Sending never raises into user code: a line that cannot be sent now (Redis restarting)
waits for the next send; only the send at a task's end reports the error. The task's
own thread only ever holds a lock in a ``with`` block, so a signal raising in it (the job
ended, a piece's time limit) cannot leave one held.
"""

from __future__ import annotations

import os
import threading
import time
from itertools import groupby
from typing import Any

from workers import runtime, stopper

__all__ = ["Outbox", "outbox", "SEND_SECONDS"]

SEND_SECONDS = stopper.CHECK_SECONDS  # the longest a written line waits before it is sent


class Outbox:
    """The lines of this process's running task, waiting to be sent."""

    def __init__(self) -> None:
        self._lines: list[tuple[str, dict[str, Any]]] = []  # (job id, line), in the order written
        self._lock = threading.Lock()  # guards _lines; held only to append or swap
        self._sending = threading.Lock()  # one send at a time, so lines reach the log in order
        self._sent_at = 0.0

    def add(self, job_id: str, line: dict[str, Any]) -> None:
        """Queue ``line``; send what waits if nothing was sent lately."""
        with self._lock:
            self._lines.append((job_id, line))
        if time.monotonic() - self._sent_at >= SEND_SECONDS:
            with self._sending:  # the task's thread waits out a send in progress (one round trip)
                self._deliver(quiet=True)

    def send(self) -> None:
        """Send every waiting line now (a task ending); raises if the store cannot take them."""
        with self._sending:
            self._deliver(quiet=False)

    def send_waiting(self) -> None:
        """Send what waits, from the watcher thread: never blocks (that thread must stay
        free to stop a stuck task), and a send in progress takes these lines too."""
        if not self._sending.acquire(blocking=False):
            return
        try:
            self._deliver(quiet=True)
        finally:
            self._sending.release()

    def _deliver(self, quiet: bool) -> None:
        """Send what waits; ``quiet``: on an error, keep it for the next send."""
        taken = self._take()
        try:
            self._send_taken(taken)
        except Exception:
            if not quiet:
                raise
            with self._lock:  # the store is away: the lines wait for the next send
                self._lines[:0] = taken

    def _take(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            taken, self._lines = self._lines, []
        return taken

    def _send_taken(self, taken: list[tuple[str, dict[str, Any]]]) -> None:
        if not taken:
            return
        self._sent_at = time.monotonic()
        store = runtime.store()
        for job_id, group in groupby(taken, key=lambda item: item[0]):
            store.journal.add_logs(job_id, [line for _, line in group])

    def _forget(self) -> None:
        """In a forked child: the parent's lines and locks are not this process's."""
        self.__init__()  # type: ignore[misc]


outbox = Outbox()
stopper.every(SEND_SECONDS, outbox.send_waiting)
os.register_at_fork(after_in_child=outbox._forget)
