"""Runner's own lines in a job's log (``runner logs JOB``): queued, partitioned, retried,
timed out, cancelled, completed — written where each thing happens, worded here once."""

from __future__ import annotations

import getpass
import os
import socket
from typing import Any

from runner.models import JobState, JobStatus

__all__ = ["line", "ending_line", "who"]


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


def ending_line(status: JobStatus) -> dict[str, Any]:
    """The line that closes a job's log: how it ended, after how long, and why."""
    took = f" in {status.duration:.1f}s" if status.duration is not None else ""
    error = status.error or {}
    if status.state is JobState.COMPLETED:
        return line(f"completed{took}: {status.pieces_done} pieces")
    if status.state is JobState.CANCELLED:
        return line(f"{error.get('message') or 'cancelled'}{took}", "WARNING")
    where = f"piece {error['piece']}: " if error.get("piece") is not None else ""
    kind = f"{error['type']}: " if error.get("type") else ""
    return line(f"{status.state.value}{took}: [{error.get('stage', '?')}] {where}{kind}{error.get('message', '')}",
                "ERROR")
