"""Faults of the infrastructure, with real processes: a Redis restart mid-job, a whole
worker killed while it partitions or runs batches, a worker frozen past the dead-worker
limit and coming back. Every job must still complete with the exact result.

Each test runs its own Redis (AOF on, as production should) and its own workers with a
short ``RUNNER_WORKER_DEAD_SECONDS``, so nothing here touches the session's servers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import redis

from runner import Client, JobNotFound, JobState, get_settings
from runner.local import free_port, redis_server_binary, stop_process, wait_until, worker_process
from tests.conftest import TEST_MODULES

DEAD_SECONDS = 4
WORKER_ENV = {"RUNNER_WORKER_DEAD_SECONDS": str(DEAD_SECONDS)}

pytestmark = pytest.mark.timeout(180)


class RedisServer:
    """A redis-server with AOF that can be stopped and started again on the same port
    and data directory, as an operator's restart would."""

    def __init__(self, directory: Path, persistent: bool = True) -> None:
        self.directory, self.port, self.persistent = directory, free_port(), persistent
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        self.start_args = ["--bind", "127.0.0.1"]

    def start(self) -> None:
        args = [redis_server_binary(), "--port", str(self.port), *self.start_args, "--dir", str(self.directory),
                "--appendonly", "yes" if self.persistent else "no", "--appendfsync", "everysec", "--save", "", "--maxmemory-policy", "noeviction",
                "--logfile", str(self.directory / "redis.log")]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        probe = redis.Redis.from_url(self.url)
        wait_until(lambda: _pings(probe), f"redis on {self.port}", self.proc, self.directory / "redis.log")

    def stop(self) -> None:
        """SIGTERM: Redis flushes its AOF and exits, as on a restart."""
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
        return False


@contextmanager
def redis_server(directory: Path) -> Iterator[RedisServer]:
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def client_for(url: str, file_roots: list[Path]) -> Client:
    return Client(settings=get_settings(broker_url=url, result_backend=url, store_url=url, include=TEST_MODULES,
                                        file_roots=file_roots))


def worker(url: str, log: Path, name: str, concurrency: int = 2):
    return worker_process(url, include=TEST_MODULES, concurrency=concurrency, hostname=f"{name}@%h",
                          log_path=log, env=WORKER_ENV)


def kill_whole_worker(proc: subprocess.Popen) -> None:
    """SIGKILL the worker's main process and its pool at once: a host that died."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def squares(n: int) -> int:
    return sum(i * i for i in range(n))


def test_a_redis_restart_mid_job_is_a_pause_and_the_job_completes_exactly(tmp_path: Path, file_roots) -> None:
    with redis_server(tmp_path) as server, worker(server.url, tmp_path / "w.log", "restart"):
        client = client_for(server.url, file_roots)
        job = client.submit("slow-squares", params={"partitioner": {"count": 2000}, "app": {"seconds": 0.005}},
                            job_timeout=150)
        wait_until(lambda: job.status().pieces_done >= 300, what="a good part of the pieces done")
        server.stop()
        time.sleep(3)  # the outage itself (the fault under test), not a wait for something
        server.start()
        assert job.wait(timeout=120) == squares(2000)
        status = job.status()
        assert status.state is JobState.COMPLETED and status.pieces_done == 2000 and status.pieces_failed == 0


def test_a_worker_killed_while_partitioning_is_replaced_within_seconds(tmp_path: Path, file_roots) -> None:
    gate = tmp_path / "gate"  # the partitioner waits for it: the kill lands mid-partition, by construction
    with redis_server(tmp_path) as server, ExitStack() as stack:
        doomed = stack.enter_context(worker(server.url, tmp_path / "a.log", "doomed"))
        client = client_for(server.url, file_roots)
        job = client.submit("gated-partition", params={"partitioner": {"count": 40, "gate": str(gate)}},
                            job_timeout=150)
        wait_until(lambda: job.status().state is JobState.PARTITIONING, what="partitioning")
        stack.enter_context(worker(server.url, tmp_path / "b.log", "survivor"))
        kill_whole_worker(doomed)
        killed_at = time.monotonic()
        gate.touch()
        assert job.wait(timeout=90) == squares(40)
        assert time.monotonic() - killed_at < DEAD_SECONDS + 10
        assert any("re-sent" in line.msg for line in job.logs())


def test_a_worker_killed_while_running_batches_is_replaced_within_seconds(tmp_path: Path, file_roots) -> None:
    with redis_server(tmp_path) as server, ExitStack() as stack:
        doomed = stack.enter_context(worker(server.url, tmp_path / "a.log", "doomed"))
        client = client_for(server.url, file_roots)
        job = client.submit("slow-squares", params={"partitioner": {"count": 60}, "app": {"seconds": 0.1}},
                            job_timeout=150)
        wait_until(lambda: job.status().pieces_done >= 5, what="batches running on the doomed worker")
        stack.enter_context(worker(server.url, tmp_path / "b.log", "survivor"))
        kill_whole_worker(doomed)
        killed_at = time.monotonic()
        assert job.wait(timeout=90) == squares(60)
        assert time.monotonic() - killed_at < DEAD_SECONDS + 10
        assert job.status().pieces_done == 60


@pytest.mark.parametrize("template,expected,runs", [
    ("slow-squares", squares(30), "runs"),  # a combining assembler: partials per run
    ("sleepy", list(range(30)), "result_runs"),  # json_list: results kept as one array per run
])
def test_a_worker_that_returns_after_being_given_up_counts_nothing_twice(
        tmp_path: Path, file_roots, template: str, expected: object, runs: str) -> None:
    """A frozen worker's batch is re-sent; when it comes back, its run, recorded late,
    overlaps the re-run's and is refused whole: every piece is in exactly one run."""
    with redis_server(tmp_path) as server, ExitStack() as stack:
        frozen = stack.enter_context(worker(server.url, tmp_path / "a.log", "frozen", concurrency=1))
        client = client_for(server.url, file_roots)
        job = client.submit(template, params={"partitioner": {"count": 30}, "app": {"seconds": 0.2}},
                            job_timeout=150)
        wait_until(lambda: job.status().pieces_done >= 2, what="the first pieces done")
        os.killpg(frozen.pid, signal.SIGSTOP)  # a host that stops answering (a long GC pause, a VM frozen)
        try:
            stack.enter_context(worker(server.url, tmp_path / "b.log", "survivor"))
            wait_until(lambda: any("re-sent" in line.msg for line in job.logs()), timeout=60,
                       what="the frozen worker's batch given up and re-sent")
        finally:
            os.killpg(frozen.pid, signal.SIGCONT)
        assert job.wait(timeout=90) == expected
        status = job.status()
        assert status.pieces_done == 30 and status.pieces_failed == 0
        kept = [(start, stop) for start, stop, _ in getattr(client.store, runs)(job.id)]
        assert sorted(index for start, stop in kept for index in range(start, stop)) == list(range(30))


class Host:
    """A second host: a network namespace joined to this one by a veth pair
    (10.250.0.1 here, 10.250.0.2 there), removed by the test that made it."""

    def __init__(self, name: str) -> None:
        self.name, self.link = name, f"{name[:8]}-h"
        run = lambda *args: subprocess.run(args, check=True, capture_output=True)  # noqa: E731
        run("ip", "netns", "add", name)
        try:
            run("ip", "link", "add", self.link, "type", "veth", "peer", "name", f"{name[:8]}-n")
            run("ip", "link", "set", f"{name[:8]}-n", "netns", name)
            run("ip", "addr", "add", "10.250.0.1/30", "dev", self.link)
            run("ip", "link", "set", self.link, "up")
            for args in (("ip", "addr", "add", "10.250.0.2/30", "dev", f"{name[:8]}-n"),
                         ("ip", "link", "set", f"{name[:8]}-n", "up"), ("ip", "link", "set", "lo", "up")):
                run("ip", "netns", "exec", name, *args)
        except Exception:
            self.remove()
            raise

    def cut(self) -> None:
        subprocess.run(["ip", "link", "set", self.link, "down"], check=True)

    def remove(self) -> None:
        subprocess.run(["ip", "link", "del", self.link], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def _netns_permitted() -> str | None:
    probe = subprocess.run(["ip", "netns", "add", "runner-probe"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"ip netns is not permitted here: {probe.stderr.strip() or probe.returncode}"
    subprocess.run(["ip", "netns", "del", "runner-probe"], capture_output=True)
    return None


def test_a_worker_host_whose_link_is_cut_is_replaced_within_seconds(tmp_path: Path, file_roots) -> None:
    reason = _netns_permitted()
    if reason:
        pytest.skip(reason)
    host = Host(f"rn{os.getpid() % 100000}")
    try:
        server = RedisServer(tmp_path)
        server.start_args = ["--bind", "127.0.0.1", "10.250.0.1", "--protected-mode", "no"]
        server.start()
        try:
            remote_url = f"redis://10.250.0.1:{server.port}/0"
            env = {**os.environ, "RUNNER_BROKER_URL": remote_url, "RUNNER_INCLUDE": ",".join(TEST_MODULES),
                   "RUNNER_WORKER_DEAD_SECONDS": str(DEAD_SECONDS)}
            log = tmp_path / "remote.log"
            remote = subprocess.Popen(["ip", "netns", "exec", host.name, sys.executable, "-m", "workers",
                                       "--concurrency", "2", "--hostname", "remote@%h", "--logfile", str(log)],
                                      env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True)
            try:
                client = client_for(server.url, file_roots)
                wait_until(lambda: any(n.startswith("remote@") for n in client.store.live_workers()),
                           "the worker on the other host", remote, log)
                job = client.submit("slow-squares", params={"partitioner": {"count": 60}, "app": {"seconds": 0.1}},
                                    job_timeout=150)
                wait_until(lambda: job.status().pieces_done >= 5, what="batches running on the other host")
                with worker(server.url, tmp_path / "local.log", "local"):
                    host.cut()
                    cut_at = time.monotonic()
                    assert job.wait(timeout=90) == squares(60)
                    assert time.monotonic() - cut_at < DEAD_SECONDS + 10
                    assert job.status().pieces_done == 60
            finally:
                os.killpg(remote.pid, signal.SIGKILL)
                remote.wait(10)
        finally:
            server.stop()
    finally:
        host.remove()


def test_a_store_that_lost_its_data_fails_the_wait_clearly_instead_of_hanging(tmp_path: Path, file_roots) -> None:
    server = RedisServer(tmp_path, persistent=False)
    server.start()
    try:
        with worker(server.url, tmp_path / "w.log", "amnesia"):
            client = client_for(server.url, file_roots)
            job = client.submit("slow-squares", params={"partitioner": {"count": 200}, "app": {"seconds": 0.05}},
                                job_timeout=150)
            wait_until(lambda: job.status().pieces_done >= 5, what="the job under way")
            server.stop()  # no AOF, no snapshot: everything Redis held is gone
            server.start()
            with pytest.raises(JobNotFound, match="store lost"):
                job.wait(timeout=60)
    finally:
        server.stop()


def test_a_stage_run_inline_past_the_dead_worker_limit_is_vouched_for_not_sent_again(tmp_path: Path,
                                                                                       file_roots) -> None:
    # One piece: the partition task runs the job's only batch itself. Its pool process, not
    # the worker's main process, must keep that batch's lease fresh.
    with redis_server(tmp_path) as server, worker(server.url, tmp_path / "w.log", "inline"):
        client = client_for(server.url, file_roots)
        job = client.submit("sleepy", params={"partitioner": {"count": 1}, "app": {"seconds": DEAD_SECONDS + 3}},
                            task_timeout=60, job_timeout=120)
        assert job.wait(timeout=90) == [0]
        batches = [e for _, e in client.store.read_events(job.id) if e["type"] == "batch"]
        assert len(batches) == 1
        assert not any("re-sent" in line.msg for line in job.logs())


def test_a_worker_killed_while_running_a_batch_inline_is_replaced_within_seconds(tmp_path: Path,
                                                                                  file_roots) -> None:
    gate = tmp_path / "gate"  # the piece waits for it: the kill lands mid-piece, by construction
    with redis_server(tmp_path) as server, ExitStack() as stack:
        doomed = stack.enter_context(worker(server.url, tmp_path / "a.log", "doomed"))
        client = client_for(server.url, file_roots)
        job = client.submit("gated-piece", params={"partitioner": {"count": 1}, "app": {"gate": str(gate)}},
                            job_timeout=150)
        wait_until(lambda: any(e["type"] == "batch" for _, e in client.store.read_events(job.id)),
                   what="the batch running inline on the doomed worker")
        stack.enter_context(worker(server.url, tmp_path / "b.log", "survivor"))
        assert job.status().pieces_done == 0
        kill_whole_worker(doomed)
        killed_at = time.monotonic()
        gate.touch()
        assert job.wait(timeout=90) == [0]
        assert time.monotonic() - killed_at < DEAD_SECONDS + 10
        assert any("re-sent" in line.msg for line in job.logs())
