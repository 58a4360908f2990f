"""Reading results from the command line, scripting `runner submit`, Ctrl-C while waiting,
and a job's log telling its whole story."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from runner import Client
from runner.local import wait_until
from tests.cli import RUNNER, cli_env, ended, one_line_error, run_cli


@pytest.fixture
def env(redis_url: str, worker, file_roots) -> dict[str, str]:
    return cli_env(redis_url, file_roots, org=f"results-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def client(settings, worker, env) -> Client:
    return Client(settings=settings, org=env["RUNNER_ORG"])


def test_submit_piped_prints_the_job_id_alone_and_result_prints_or_saves_it(env, client, tmp_path: Path) -> None:
    job_id = run_cli("submit", "squares", "-p", "partitioner.count=4", env=env).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{16}", job_id), job_id
    ended(client.get(job_id))
    assert json.loads(run_cli("result", job_id, env=env).stdout) == 0 + 1 + 4 + 9
    saved = run_cli("result", job_id, "--output", str(tmp_path / "r.json"), env=env)
    assert json.loads((tmp_path / "r.json").read_text()) == 14 and saved.stdout == ""


def test_result_prints_a_string_result_as_is_and_as_json_on_request(env, client, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("a\nb\n")
    job = client.submit("echo-lines", source=(tmp_path / "in.txt").as_uri(), params={"app": {"suffix": "!"}})
    ended(job)
    assert run_cli("result", job.id, env=env).stdout == "a\nb\n!\n"  # one piece, its suffix at the end
    assert json.loads(run_cli("result", job.id, "--json", env=env).stdout) == "a\nb\n!"


def test_submit_json_prints_the_record(env) -> None:
    record = json.loads(run_cli("submit", "squares", "-p", "partitioner.count=2", "--json", env=env).stdout)
    assert record["template"] == "squares@1.0.0" and record["org"] == env["RUNNER_ORG"] and len(record["id"]) == 16


def test_submit_wait_prints_the_result_and_says_what_to_try_next(env) -> None:
    done = run_cli("submit", "squares", "-p", "partitioner.count=3", "--wait", env=env)
    assert json.loads(done.stdout) == 5
    job_id = done.stderr.split("submitted job ")[1].split()[0]
    assert f"next: runner result {job_id} --output result.json" in done.stderr


def test_result_of_a_failed_job_prints_its_error_and_exits_1(env, client) -> None:
    job = client.submit("exploding", params={"partitioner": {"after": 1}})
    ended(job)
    message = one_line_error(run_cli("result", job.id, env=env, status=1))
    assert message.startswith(f"job {job.id} failed: [partition] ValueError: cannot split this source")
    assert f"runner logs {job.id}" in message and f"runner retry {job.id}" in message


def test_result_of_a_running_job_says_so_and_exits_2(env, client) -> None:
    job = client.submit("sleepy", params={"partitioner": {"count": 1}, "app": {"seconds": 30}})
    wait_until(lambda: job.status().state.value == "running", "job running", timeout=60)
    message = one_line_error(run_cli("result", job.id, env=env, status=2))
    assert message == f"job {job.id} is still running: runner watch {job.id}, then runner result {job.id}"
    job.cancel()


def _interrupt(args: list[str], env: dict[str, str], ready) -> subprocess.CompletedProcess:
    """Start ``runner ARGS``, wait until ``ready(proc)``, press Ctrl-C (SIGINT to the process)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    proc = subprocess.Popen([*RUNNER, *args], env={**clean, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_until(lambda: ready(proc), "the command to be waiting", proc=proc, timeout=60)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def test_ctrl_c_during_submit_wait_prints_the_hint_and_the_job_still_completes(env, client) -> None:
    args = ["submit", "slow-squares", "-p", "partitioner.count=4", "-p", "app.seconds=1.5", "--wait"]
    first_line: list[str] = []

    def waiting(proc: subprocess.Popen) -> bool:  # the CLI said it submitted, and the job runs
        if not first_line:
            first_line.append(proc.stderr.readline())
        return "submitted job" in first_line[0] and any(j.state.value == "running" for j in client.jobs())

    done = _interrupt(args, env, waiting)
    job = client.jobs()[0]
    assert done.returncode == 130
    assert f"job {job.id} is still running: runner watch {job.id}, runner cancel {job.id}" in done.stderr
    assert "Traceback" not in done.stderr
    assert client.get(job.id).wait(timeout=60) == 0 + 1 + 4 + 9


def test_ctrl_c_during_watch_prints_the_hint(env, client) -> None:
    job = client.submit("sleepy", params={"partitioner": {"count": 1}, "app": {"seconds": 30}})
    wait_until(lambda: job.status().state.value == "running", "job running", timeout=60)
    done = _interrupt(["watch", job.id], env, lambda proc: "watching job" in proc.stderr.readline())
    assert done.returncode == 130
    assert f"job {job.id} is still running: runner watch {job.id}, runner cancel {job.id}" in done.stderr
    job.cancel()


def _log(env: dict[str, str], job_id: str) -> str:
    return run_cli("logs", job_id, env=env).stdout


def test_logs_tell_queued_partitioned_and_completed(env, client) -> None:
    job = client.submit("squares", params={"partitioner": {"count": 5}})
    ended(job)
    log = _log(env, job.id)
    assert re.search(r"queued by \S+@\S+ \(pid \d+\)", log), log
    assert "partitioned bypass: into 5 pieces" in log
    assert re.search(r"completed after \d+\.\d+s", log), log


def test_logs_tell_a_piece_timing_out_and_each_retry(env, client) -> None:
    job = client.submit("sleepy", params={"partitioner": {"count": 2}, "app": {"seconds": 5, "slow_pieces": [1]}},
                        task_timeout=0.5, max_retries=1)
    ended(job, timeout=90)
    log = _log(env, job.id)
    assert "timed out; retry 1 of 1" in log and "exceeded task_timeout=0.5s" in log
    assert re.search(r"failed after \d+\.\d+s: \[app\] piece 1: \w+: .*piece 1 exceeded task_timeout=0.5s", log), log


def test_logs_tell_who_cancelled_and_a_job_timing_out(env, client) -> None:
    cancelled = client.submit("sleepy", params={"partitioner": {"count": 1}, "app": {"seconds": 30}})
    wait_until(lambda: cancelled.status().state.value == "running", "job running", timeout=60)
    run_cli("cancel", cancelled.id, env=env)
    assert re.search(r"cancelled after \d+\.\d+s: \[cancel\] JobCancelled: "
                     r"cancelled by request from \S+@\S+ \(pid \d+\)", _log(env, cancelled.id))

    late = client.submit("sleepy", params={"partitioner": {"count": 1}, "app": {"seconds": 30}}, job_timeout=2)
    assert ended(late, timeout=60).state.value == "timed_out"
    assert re.search(r"timed out after \d+\.\d+s: \[\w+\]", _log(env, late.id))
