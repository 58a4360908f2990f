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
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from runner.errors import SoftTimeLimitExceeded

__all__ = ["SoftTimeLimitExceeded", "PieceTimeLimitExceeded", "PieceTimer", "piece_timer"]


class PieceTimeLimitExceeded(BaseException):
    """A piece ran past its soft limit plus the grace period."""


class PieceTimer:
    """Arms and disarms one piece's limits; ``enabled`` is False off the main thread
    (thread pools cannot use signals; Celery's task-level limits still apply there)."""

    def __init__(self, soft: float, grace: float, enabled: bool) -> None:
        self.soft, self.grace, self.enabled = soft, grace, enabled
        self._soft_fired = False

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if not self._soft_fired:
            self._soft_fired = True
            signal.setitimer(signal.ITIMER_REAL, self.grace)
            raise SoftTimeLimitExceeded(f"piece exceeded task_timeout={self.soft:g}s")
        raise PieceTimeLimitExceeded(f"piece exceeded task_timeout={self.soft:g}s and did not stop "
                                     f"within {self.grace:g}s more")

    def arm(self) -> None:
        if self.enabled:
            self._soft_fired = False
            signal.setitimer(signal.ITIMER_REAL, self.soft)

    def disarm(self) -> None:
        if self.enabled:
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
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
