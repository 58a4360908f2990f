"""The guard: a tiny process that outlives a killed worker process to kill its engines.

Cancel and the job deadline stop a running piece by SIGKILLing the worker's pool process
(Celery's revoke-terminate); nothing in that process runs afterwards, so it cannot stop
the engine processes it started, nor their children. Each pool process therefore starts
one guard (``python -m runner.engines.guard``, in its own session) and tells it, over the
guard's stdin, which process groups and scratch directories are live:

    +<pgid> <dir>     a run started (its group, its scratch directory)
    -<pgid>           it ended and was cleaned up

When stdin reaches end of file — the pool process exited, however it died — the guard
sends SIGTERM to every live group, SIGKILL 10 s later to what is left, removes their
scratch directories and exits. It costs one idle process per pool process, and nothing
per piece but two short writes.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time

__all__ = ["main", "stop_groups", "group_alive"]

KILL_AFTER = 10.0


def group_alive(pgid: int) -> bool:
    """Whether process group ``pgid`` still has a running member. Zombies do not count: an
    orphan's new parent may be slow to reap it (or never, as some container inits)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not os.path.isdir("/proc/self"):
        return True
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
            return True
    return False


def _signal(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_groups(pgids: list[int], kill_after: float = KILL_AFTER) -> None:
    """SIGTERM each group, then SIGKILL whatever is left after ``kill_after`` seconds."""
    for pgid in pgids:
        _signal(pgid, signal.SIGTERM)
    deadline = time.monotonic() + kill_after
    while time.monotonic() < deadline and any(group_alive(p) for p in pgids):
        time.sleep(0.05)
    for pgid in pgids:
        _signal(pgid, signal.SIGKILL)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    live: dict[int, str] = {}
    for raw in sys.stdin:
        line = raw.strip()
        if line.startswith("+"):
            pgid, _, directory = line[1:].partition(" ")
            live[int(pgid)] = directory
        elif line.startswith("-"):
            live.pop(int(line[1:]), None)
    if live:
        stop_groups(list(live))
        for directory in live.values():
            if directory:
                shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
