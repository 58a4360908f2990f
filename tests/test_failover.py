"""Redis high availability: the broker, the result backend and the store on a Sentinel-
managed group (a master, a replica, three Sentinels — the same redis-server binary in
sentinel mode). Killing the master mid-job is one more outage: after the failover the
job completes with the exact result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import psutil
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from runner import Client, JobState, get_settings
from runner.local import free_port, redis_server_binary, stop_process, wait_until, worker_process
from runner.metrics import render
from runner.store import StatusStore
from tests.conftest import TEST_MODULES

pytestmark = pytest.mark.timeout(180)
MASTER = "runnerha"


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([redis_server_binary(), *args, "--logfile", str(log)], stdin=subprocess.DEVNULL,
                            start_new_session=True)


def _answers(port: int, check=lambda r: r.ping()) -> bool:
    try:
        return bool(check(redis.Redis(port=port, socket_connect_timeout=1, decode_responses=True)))
    except redis.RedisError:
        return False


@contextmanager
def sentinel_group(directory: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A master, a replica and three Sentinels on loopback; yields the sentinel:// URL and
    the master's process."""
    master_port, replica_port = free_port(), free_port()
    with ExitStack() as stack:
        procs = []
        for name, port, extra in (("master", master_port, []),
                                  ("replica", replica_port, ["--replicaof", "127.0.0.1", str(master_port)])):
            folder = directory / name
            folder.mkdir()
            proc = _start(["--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--appendonly", "yes",
                           "--save", "", "--maxmemory-policy", "noeviction", *extra], folder / "redis.log")
            stack.callback(stop_process, proc)
            procs.append(proc)
            wait_until(lambda p=port: _answers(p), f"redis {name}", proc, folder / "redis.log")
        wait_until(lambda: _answers(replica_port, lambda r: r.info("replication").get("master_link_status") == "up"),
                   "the replica in sync")
        sentinel_ports = [free_port() for _ in range(3)]
        for index, port in enumerate(sentinel_ports):
            folder = directory / f"sentinel{index}"
            folder.mkdir()
            conf = folder / "sentinel.conf"
            conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
                            f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 2\n"
                            f"sentinel down-after-milliseconds {MASTER} 1000\n"
                            f"sentinel failover-timeout {MASTER} 5000\n")
            proc = _start([str(conf), "--sentinel"], folder / "sentinel.log")
            stack.callback(stop_process, proc)
        for index, port in enumerate(sentinel_ports):
            wait_until(lambda p=port: _answers(p, lambda r: len(r.execute_command("SENTINEL", "SENTINELS", MASTER))
                                               == 2), f"sentinel {index} sees its two peers")
        yield ";".join(f"sentinel://127.0.0.1:{port}/0" for port in sentinel_ports), procs[0]


def test_a_job_completes_exactly_when_the_redis_master_fails_over(tmp_path: Path, file_roots, monkeypatch) -> None:
    monkeypatch.setenv("RUNNER_REDIS_MASTER_NAME", MASTER)  # this process's and the workers' settings
    env = {"RUNNER_WORKER_DEAD_SECONDS": "4"}
    with sentinel_group(tmp_path) as (url, master):
        settings = get_settings(broker_url=url, result_backend=url, store_url=url, include=TEST_MODULES,
                                file_roots=file_roots, redis_master_name=MASTER)
        with worker_process(url, include=TEST_MODULES, concurrency=2, log_path=tmp_path / "worker.log", env=env):
            client = Client(settings=settings)
            job = client.submit("slow-squares", params={"partitioner": {"count": 400}, "app": {"seconds": 0.01}},
                                job_timeout=150)
            wait_until(lambda: job.status().pieces_done >= 50, what="the job under way")
            os.killpg(master.pid, signal.SIGKILL)  # the master's host dies; the Sentinels promote the replica
            assert job.wait(timeout=120) == sum(i * i for i in range(400))
            status = job.status()
            assert status.state is JobState.COMPLETED and status.pieces_done == 400


def test_runner_metrics_reads_a_store_and_broker_behind_sentinels(tmp_path: Path, file_roots, monkeypatch) -> None:
    """``runner metrics`` and the collector the API mounts connect like every client
    (``redis_connect``), so the README's ``sentinel://`` URLs work for them too. The store
    URL lists the Sentinels in another order than the broker URL: two URLs, two clients."""
    monkeypatch.setenv("RUNNER_REDIS_MASTER_NAME", MASTER)
    with sentinel_group(tmp_path) as (url, _master):
        store_url = ";".join(reversed(url.split(";")))
        settings = get_settings(broker_url=url, result_backend=url, store_url=store_url, include=TEST_MODULES,
                                file_roots=file_roots, redis_master_name=MASTER)
        with worker_process(url, include=TEST_MODULES, concurrency=1, log_path=tmp_path / "worker.log"):
            assert Client(settings=settings).submit("squares@1", params={"partitioner": {"count": 3}}).wait(60) == 5

            def families(text: str) -> dict[str, list]:
                return {family.name: family.samples for family in text_string_to_metric_families(text)}

            def check(found: dict[str, list]) -> None:
                jobs = {(s.labels["template"], s.labels["state"]): s.value for s in found["runner_jobs"]}
                assert jobs == {("squares@1.0.0", "completed"): 1}
                assert "control" in {s.labels["queue"] for s in found["runner_queue_depth"]}  # read from the broker
                backlog = {s.labels["queue"]: s.value for s in found["runner_queue_processes"]}  # the store's reads
                assert backlog["default"] == 1 and {s.value for s in found["runner_queue_pieces_waiting"]} == {0}

            check(families(render(StatusStore.from_settings(settings), settings.broker_url).decode()))
            port, log = free_port(), tmp_path / "metrics.log"
            env = {**os.environ, "RUNNER_BROKER_URL": url, "RUNNER_STORE_URL": store_url}
            with log.open("wb") as out:
                proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "metrics", "--port", str(port)], env=env,
                                        stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                wait_until(lambda: _scrapes(f"http://127.0.0.1:{port}/metrics"), "runner metrics", proc, log, 30)
                check(families(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text))
                listening = {c.laddr.ip for c in psutil.Process(proc.pid).net_connections() if c.status == "LISTEN"}
                assert listening == {"127.0.0.1"}  # loopback unless --host says otherwise
            finally:
                stop_process(proc)


def _scrapes(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
