"""A foreground server that never outlives the command that started it.

``runner redis`` used to ``exec`` redis-server. Redis ignores SIGHUP, so closing the
terminal it ran in left it running, holding the port and the data directory, with no
terminal to stop it from. Now the command stays the parent and the server its child,
tied to it two ways:

- the kernel: ``PR_SET_PDEATHSIG`` sends the child SIGTERM the moment its parent dies,
  however it dies (SIGKILL included; Linux);
- the parent: SIGHUP (the terminal closed), SIGTERM and Ctrl-C make it stop the child
  with SIGTERM (Redis' clean shutdown) and wait for it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from types import FrameType

__all__ = ["run_tethered"]

_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> None:
    """In the child, before exec: SIGTERM when the parent dies; exit at once if it already
    has (it could die between the fork and the prctl)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def run_tethered(argv: list[str]) -> int:
    """Run ``argv`` in the foreground as a child that stops with this process; returns its
    exit status (130 after Ctrl-C, as every command)."""
    child = subprocess.Popen(argv, preexec_fn=lambda parent=os.getpid(): _die_with(parent))  # noqa: PLW1509
    interrupted = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal interrupted
        interrupted = interrupted or signum == signal.SIGINT
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)

    for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    status = child.wait()
    return 130 if interrupted else status
