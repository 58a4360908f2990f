"""The ``runner`` command, run as a user runs it: a real process against the test fleet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RUNNER = [sys.executable, "-c", "from runner.cli import main; main()"]


@pytest.fixture
def run(redis_url: str, worker, file_roots):
    env = {**os.environ, "RUNNER_BROKER_URL": redis_url, "RUNNER_INCLUDE": "tests.jobs,examples.wordcount",
           "RUNNER_FILE_ROOTS": ",".join(map(str, file_roots)),
           "RUNNER_ORG": "cli", "COLUMNS": "200"}

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([*RUNNER, *args], env=env, capture_output=True, text=True, timeout=90)
        assert (done.returncode == 0) == ok, (done.stdout, done.stderr)
        return done

    return run


def test_submit_wait_status_jobs_and_cancel_from_the_command_line(run, tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("one two two\nthree three three\n")
    done = run("submit", "wordcount@1.0.0", "--source", (tmp_path / "t.txt").as_uri(),
               "-p", "partitioner.lines_per_piece=1", "--wait")
    assert json.loads(done.stdout[done.stdout.index("{"):]) == {"three": 3, "two": 2, "one": 1}
    job_id = done.stderr.split("submitted job ")[1].split()[0]

    status = json.loads(run("status", job_id, "--json").stdout)
    assert status["state"] == "completed" and status["pieces_done"] == 2

    listed = json.loads(run("jobs", "--json").stdout)
    assert job_id in [j["id"] for j in listed]
    assert all(j["org"] == "cli" for j in listed)

    assert "nothing to cancel" in run("cancel", job_id).stdout
    assert "wordcount@1.0.0" in run("templates").stdout


def test_bad_input_exits_non_zero_with_one_clear_line(run) -> None:
    bad = run("submit", "wordcount", "-p", "app.lowercase=maybe", ok=False)
    assert "app.lowercase" in bad.stderr and "Traceback" not in bad.stdout + bad.stderr
    missing = run("status", "0000000000000000", ok=False)
    assert "no job '0000000000000000'" in missing.stderr
