"""Runner's own lines in a job's log (``runner logs JOB``) written by the client: queued
(by whom), a retry round; and who cancelled. The ending line is ``lifecycle.end_job``'s."""

from __future__ import annotations

import getpass
import os
import socket
from typing import Any

__all__ = ["line", "who"]


def line(msg: str, level: str = "INFO", **where: Any) -> dict[str, Any]:
    """One lifecycle line for ``StatusStore.add_logs`` (``piece=`` or ``start=``/``stop=``)."""
    return {"level": level, "source": "runner", "msg": msg, **where}


def who() -> str:
    """``user@host (pid N)``: who asked, for a cancel's log line and error."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return f"{user}@{socket.gethostname()} (pid {os.getpid()})"
