"""Running ``runner`` as a user does: a real process, stdout piped (as in ``| cat``),
against the test fleet. Every output is kept so a test can grep them all for secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

RUNNER = [sys.executable, "-m", "runner.cli"]
REPO = Path(__file__).resolve().parent.parent

OUTPUTS: list[str] = []  # stdout + stderr of every command run through run_cli


def cli_env(redis_url: str, file_roots: list[Path], org: str, **extra: str) -> dict[str, str]:
    """RUNNER_* settings pointing a process at the test fleet, acting for ``org``."""
    return {"RUNNER_BROKER_URL": redis_url, "RUNNER_INCLUDE": "tests.jobs,examples.wordcount,tests.simple_jobs",
            "RUNNER_FILE_ROOTS": ",".join(map(str, file_roots)), "RUNNER_ORG": org, **extra}


def run_cli(*args: str, env: dict[str, str], status: int | None = 0, timeout: float = 90,
            command: list[str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run ``runner ARGS`` (or ``command``) with only ``env``'s RUNNER_* settings; assert
    the exit status unless ``status`` is None."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_") and k != "COLUMNS"}
    done = subprocess.run([*(command or RUNNER), *args], env={**clean, **env}, capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)
    OUTPUTS.append(done.stdout + done.stderr)
    if status is not None:
        assert done.returncode == status, (args, done.returncode, done.stdout, done.stderr)
    return done


def one_line_error(done: subprocess.CompletedProcess) -> str:
    """The error a failed command printed: on stderr, no traceback, nothing on stdout."""
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert done.stdout == "", done.stdout
    return done.stderr.strip()


Runner = Callable[..., subprocess.CompletedProcess]


def ended(job, timeout: float = 60):
    """Wait (with a deadline) for ``job`` to end, however it ends; its final status."""
    from runner.errors import JobError

    try:
        job.wait(timeout=timeout)
    except JobError:
        pass
    return job.status()
