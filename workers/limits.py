"""Per-piece time limits inside a batch: a soft limit user code can catch, then a hard one.

Celery's own time limits apply to a whole task, and a task here is a batch of pieces;
``task_timeout`` is promised per piece. So each piece gets a ``SIGALRM`` timer: at
``task_timeout`` it raises :class:`runner.SoftTimeLimitExceeded` (a ``RunnerError`` that is
also Celery's class, so user code may catch either to clean up); if the piece is still
running ``grace`` seconds later it raises :class:`PieceTimeLimitExceeded`, a
``BaseException`` so that ``except Exception`` in user code cannot swallow it. Code stuck in C that never returns to Python is caught by the
batch's Celery hard limit, enforced by the pool's parent process.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from runner.errors import SoftTimeLimitExceeded

__all__ = ["SoftTimeLimitExceeded", "PieceTimeLimitExceeded", "PieceTimer", "piece_timer"]


class PieceTimeLimitExceeded(BaseException):
    """A piece ran past its soft limit plus the grace period."""


class PieceTimer:
    """Arms and disarms one piece's limits; ``enabled`` is False off the main thread
    (thread pools cannot use signals; Celery's task-level limits still apply there).

    Tiny pieces must not pay two ``setitimer`` system calls each, so the timer is armed
    once per batch and ``arm``/``disarm`` only note when the current piece started. When
    the alarm fires it measures the current piece: one that started later than the alarm
    was meant for (an earlier piece's timer) has the alarm re-armed for what remains of
    *its* limit, and between pieces the alarm just re-arms. So each piece still gets
    exactly ``soft`` seconds, and a batch of short pieces sees one alarm per ``soft``."""

    def __init__(self, soft: float, grace: float, enabled: bool) -> None:
        self.soft, self.grace, self.enabled = soft, grace, enabled
        self._soft_fired = False
        self._started: float | None = None  # when the running piece started (None: between pieces)
        self._armed = False

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        started = self._started
        if started is None:  # between pieces: nothing to limit now
            signal.setitimer(signal.ITIMER_REAL, self.soft)
            return
        if not self._soft_fired:
            remaining = started + self.soft - time.monotonic()
            if remaining > 0:  # the alarm was set for an earlier piece
                signal.setitimer(signal.ITIMER_REAL, remaining)
                return
            self._soft_fired = True
            signal.setitimer(signal.ITIMER_REAL, self.grace)
            raise SoftTimeLimitExceeded(f"piece exceeded task_timeout={self.soft:g}s")
        raise PieceTimeLimitExceeded(f"piece exceeded task_timeout={self.soft:g}s and did not stop "
                                     f"within {self.grace:g}s more")

    def arm(self, now: float | None = None) -> None:
        """A piece starts (at ``now``, a ``time.monotonic()`` reading the caller has
        already): it may run ``soft`` seconds from then."""
        self._soft_fired = False
        self._started = time.monotonic() if now is None else now
        if self.enabled and not self._armed:
            self._armed = True
            signal.setitimer(signal.ITIMER_REAL, self.soft)

    def disarm(self) -> None:
        """The piece ended (no system call: a later alarm finds no piece running)."""
        self._started = None

    def stop(self) -> None:
        if self.enabled:
            self._armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)


@contextmanager
def piece_timer(soft: float, grace: float) -> Iterator[PieceTimer]:
    """A :class:`PieceTimer` whose SIGALRM handler is installed for the block."""
    enabled = threading.current_thread() is threading.main_thread()
    timer = PieceTimer(soft, grace, enabled)
    if not enabled:
        yield timer
        return
    previous = signal.signal(signal.SIGALRM, timer._on_alarm)
    try:
        yield timer
    finally:
        timer.stop()
        signal.signal(signal.SIGALRM, previous)
