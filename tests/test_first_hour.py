"""The rest of a newcomer's first hour: no command ever prints a credential, doctor says a
fix only where something failed, `runner redis` gives the command line a Redis, and
`make demo` installs only what running needs."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from runner.local import embedded_redis, free_port, stop_process, wait_until, worker_process
from tests.cli import REPO, RUNNER, run_cli
from tests.conftest import TEST_MODULES, s3_env

BROKER_PASSWORD = "brokerPw-4f1c9e"
FLOWER_PASSWORD = "flowerPw-77ab31"


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis that requires a password; yields its URL with the password in it."""
    with embedded_redis(tmp_path_factory.mktemp("locked")) as url:
        redis.Redis.from_url(url).config_set("requirepass", BROKER_PASSWORD)
        yield url.replace("redis://", f"redis://:{BROKER_PASSWORD}@")


@pytest.fixture(scope="module")
def locked_fleet(locked_redis: str, file_roots, s3) -> Iterator[str]:
    with worker_process(locked_redis, include=TEST_MODULES, concurrency=1, file_roots=file_roots, env=s3_env(s3)):
        yield locked_redis


def test_no_command_prints_a_credential(locked_fleet: str, file_roots, s3, bucket: str, tmp_path: Path) -> None:
    flower = f"http://admin:{FLOWER_PASSWORD}@127.0.0.1:{free_port()}"
    env = {"RUNNER_BROKER_URL": locked_fleet, "RUNNER_INCLUDE": "tests.jobs,examples.wordcount",
           "RUNNER_FILE_ROOTS": ",".join(map(str, file_roots)), "RUNNER_ORG": "secrets", **s3_env(s3),
           "RUNNER_FLOWER_BASIC_AUTH": f"admin:{FLOWER_PASSWORD}", "RUNNER_FLOWER_URL": flower}
    secrets = [BROKER_PASSWORD, FLOWER_PASSWORD, s3.secret_key]
    (tmp_path / "in.txt").write_text("a b a\n")
    s3.client().put_object(Bucket=bucket, Key="in/x.txt", Body=b"x\n")
    outputs = []

    def run(*args: str, status: int | None = 0) -> subprocess.CompletedProcess:
        done = run_cli(*args, env=env, status=status)
        outputs.append(f"$ runner {' '.join(args)}\n{done.stdout}{done.stderr}")
        return done

    done = run("submit", "wordcount", "--source", (tmp_path / "in.txt").as_uri(), "--destination",
               f"s3://{bucket}/out/", "--wait")
    job_id = done.stderr.split("submitted job ")[1].split()[0]
    for command in (["status", job_id], ["status", job_id, "--json"], ["jobs"], ["result", job_id],
                    ["logs", job_id], ["artifacts", job_id], ["workers"], ["templates"],
                    ["check-source", f"s3://{bucket}/in/"]):
        run(*command)
    failed = run("submit", "exploding", "--wait", status=1)
    failed_id = failed.stderr.split("submitted job ")[1].split()[0]
    run("status", failed_id)
    run("result", failed_id, status=1)
    run("cancel", failed_id)
    doctor = run("doctor", status=1)  # Flower is not running: that row fails, naming the URL
    assert f"http://admin:***@127.0.0.1:{flower.rsplit(':', 1)[1]}/healthcheck unreachable" in doctor.stdout
    env["RUNNER_BROKER_URL"] = f"redis://:{BROKER_PASSWORD}@127.0.0.1:{free_port()}/0"
    run("jobs", status=1)
    run("--debug", "status", job_id, status=1)
    everything = "\n".join(outputs)
    assert "redis://:***@" in everything
    for secret in secrets:
        assert secret not in everything, f"a secret was printed:\n{everything}"


def test_doctor_shows_a_fix_only_on_a_failed_row(redis_url: str, worker) -> None:
    env = {"RUNNER_BROKER_URL": redis_url, "RUNNER_INCLUDE": "examples.wordcount"}
    sound = run_cli("doctor", env=env).stdout
    assert "fix" not in sound.splitlines()[1] and "FAIL" not in sound
    gpu = run_cli("doctor", env={**env, "RUNNER_INCLUDE": "tests.jobs"}, status=1).stdout
    rows = [line for line in gpu.splitlines() if "│" in line and ("ok" in line or "FAIL" in line)]
    for row in rows:
        cells = [cell.strip() for cell in row.split("│")]
        if cells[2] == "ok":
            assert cells[-2] == "", row  # the fix cell of a passing row is empty
        else:
            assert "runner worker --queues" in row
    assert any("FAIL" in row for row in rows)


def test_runner_redis_serves_the_command_line_until_stopped(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([*RUNNER, "redis", "--port", str(port), "--dir", str(tmp_path / "data")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        client = redis.Redis(port=port)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_until(up, "runner redis", proc=proc, timeout=30)
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        assert client.config_get("bind")["bind"] == "127.0.0.1"
    finally:
        stop_process(proc)


def test_make_demo_installs_no_test_extras_and_make_test_does() -> None:
    def commands(target: str) -> str:
        return subprocess.run(["make", "-n", "-B", target, "VENV=/nonexistent/venv"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout

    demo, test = commands("demo"), commands("test")
    assert "pip install" in demo and "[test]" not in demo and "runner demo" in demo
    assert "pip install" in test and "'.[test]'" in test and "pytest" in test
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_the_readme_walk_through_uses_only_commands_that_exist() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Your own templates", 1)[1].split("\n## ", 1)[0]
    help_text = run_cli("--help", env={}).stdout
    used = {line.split()[1] for line in section.splitlines() if line.startswith("runner ")}
    assert {"redis", "worker", "submit", "result"} <= used
    for command in used:
        assert f"  {command} " in help_text, command
    assert " -I " not in section and "PYTHONPATH" not in section
