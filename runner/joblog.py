"""Runner's own lines in a job's log (``runner logs JOB``) written by the client: queued
(by whom), a retry round; and who cancelled. The ending line is ``lifecycle.end_job``'s."""

from __future__ import annotations

import getpass
import os
import socket
from contextvars import ContextVar
from typing import Any

__all__ = ["line", "who", "acting_for"]

# Who a server acts for in the current request (the HTTP API sets it per request): an
# API-submitted job's log then says "queued by API key K (org O)", not the server's
# own "root@vm (pid N)", which names no one the job's owner knows.
_CALLER: ContextVar[str | None] = ContextVar("runner_caller", default=None)


def line(msg: str, level: str = "INFO", **where: Any) -> dict[str, Any]:
    """One lifecycle line for ``StatusStore.add_logs`` (``piece=`` or ``start=``/``stop=``)."""
    return {"level": level, "source": "runner", "msg": msg, **where}


def acting_for(caller: str) -> None:
    """Say who this context acts for (e.g. ``API key K (org O)``): :func:`who` returns
    it from now on in this context (an asyncio task and the threads it starts)."""
    _CALLER.set(caller)


def who() -> str:
    """Who asked, for the "queued by" line and a cancel's log line and error: the caller
    a server acts for (:func:`acting_for`), else ``user@host (pid N)``."""
    caller = _CALLER.get()
    if caller:
        return caller
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return f"{user}@{socket.gethostname()} (pid {os.getpid()})"
