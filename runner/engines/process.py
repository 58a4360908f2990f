"""One engine run: a process in its own process group, its output turned into log lines,
and no process of it left behind however the run ends.

- Every run starts a new session (``start_new_session``), so the run *is* a process group
  and its children, grandchildren included, can be signalled together.
- stdout and stderr are read as they come (never buffered whole) and handed, line by
  line, to ``on_line``; the last 20 lines of stderr are kept for the error message.
- When the entrypoint exits, whatever it left running in its group is stopped: the piece
  is over. When the run is interrupted — the piece's ``task_timeout`` raising in this
  thread, a worker shutdown — the group gets SIGTERM and, 10 s later, SIGKILL.
- When the worker process itself is SIGKILLed (cancel, job deadline), the per-process
  :mod:`guard <runner.engines.guard>` does the same.
"""

from __future__ import annotations

import collections
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runner.engines.guard import KILL_AFTER, group_alive

__all__ = ["run_process", "Finished", "STDERR_TAIL"]

STDERR_TAIL = 20
POLL_SECONDS = 0.2
LineSink = Callable[[str, str], None]  # (stream name, line)


@dataclass(frozen=True)
class Finished:
    """How a run ended: its exit status and the last lines of its stderr."""

    returncode: int
    stderr_tail: list[str]


class _Guard:
    """This process's guard (:mod:`runner.engines.guard`), started on first use and again
    after a fork (a pool process must not share its parent's)."""

    def __init__(self) -> None:
        self.owner = -1
        self.proc: subprocess.Popen[str] | None = None
        self.lock = threading.Lock()

    def _ensure(self) -> subprocess.Popen[str] | None:
        if self.proc is None or self.owner != os.getpid() or self.proc.poll() is not None:
            self.owner = os.getpid()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "runner.engines.guard"], stdin=subprocess.PIPE, text=True,
                start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        return self.proc

    def tell(self, line: str) -> None:
        with self.lock:
            proc = self._ensure()
            try:
                assert proc is not None and proc.stdin is not None
                proc.stdin.write(line + "\n")
                proc.stdin.flush()
            except (OSError, ValueError):
                self.proc = None  # a dead guard: the next run starts a new one


_guard = _Guard()


def run_process(argv: list[str], cwd: Path, env: dict[str, str], on_line: LineSink,
                scratch: Path | None = None) -> Finished:
    """Run ``argv`` in ``cwd`` with exactly ``env``, streaming its lines to ``on_line``.

    Returns when the process has exited and nothing of its group is left running. Any
    exception raised meanwhile (a time limit) stops the group first, then propagates.
    """
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    _guard.tell(f"+{proc.pid} {scratch or ''}")
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
    try:
        _pump(proc, on_line, tail)
        return Finished(proc.wait(), list(tail))
    finally:
        _stop(proc)
        _guard.tell(f"-{proc.pid}")


def _pump(proc: subprocess.Popen[bytes], on_line: LineSink, tail: collections.deque[str]) -> None:
    """Read both pipes until the entrypoint has exited and its output is drained (a child
    holding the pipes open does not keep the run going)."""
    assert proc.stdout is not None and proc.stderr is not None
    partial = {"stdout": b"", "stderr": b""}
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ, "stdout")
        selector.register(proc.stderr, selectors.EVENT_READ, "stderr")
        exited_at: float | None = None
        while selector.get_map():
            for key, _ in selector.select(POLL_SECONDS):
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fileobj)
                    continue
                lines = (partial[key.data] + data).split(b"\n")
                partial[key.data] = lines.pop()
                for line in lines:
                    _emit(key.data, line, on_line, tail)
            if exited_at is None and proc.poll() is not None:
                exited_at = time.monotonic()
            elif exited_at is not None and time.monotonic() - exited_at > POLL_SECONDS:
                break  # exited, and what is left open belongs to a child it left behind
    for name, rest in partial.items():
        if rest:
            _emit(name, rest, on_line, tail)


def _emit(stream: str, raw: bytes, on_line: LineSink, tail: collections.deque[str]) -> None:
    line = raw.decode("utf-8", "replace").rstrip("\r")
    if stream == "stderr":
        tail.append(line)
    on_line(stream, line)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop what is left of the run's group: SIGTERM, SIGKILL after ``KILL_AFTER`` s (at
    once if this is interrupted again); reap the entrypoint; close the pipes."""
    pgid = proc.pid
    try:
        if group_alive(pgid):
            _signal(pgid, signal.SIGTERM)
            deadline = time.monotonic() + KILL_AFTER
            while time.monotonic() < deadline:
                proc.poll()
                if not group_alive(pgid):
                    break
                time.sleep(0.02)
    finally:
        _signal(pgid, signal.SIGKILL)
        try:
            proc.wait(timeout=KILL_AFTER)
        except subprocess.TimeoutExpired:
            pass
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _signal(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
