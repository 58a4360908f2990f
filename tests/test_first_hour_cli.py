"""A new user's first hour on the command line, round two (issue 19): every step as a
user types it, asserting the message and the exit status.

Start-up cost is structural here (which modules a command imports), never a timing:
the timings are in benchmarks/README.md (CLI start-up).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runner.local import free_port, wait_until
from tests.cli import REPO, run_cli

pytestmark = pytest.mark.timeout(120)

# What `runner --version` and `runner --help` must never load: each costs tens to
# hundreds of milliseconds of CPU at import.
HEAVY = ("celery", "kombu", "billiard", "redis", "pydantic", "pydantic_settings", "fastapi", "starlette", "uvicorn",
         "httpx", "boto3", "botocore", "rich", "croniter", "flower", "prometheus_client")


def _modules_after(*args: str, env: dict[str, str] | None = None) -> set[str]:
    """The top-level packages loaded by the time ``runner ARGS`` exits."""
    probe = ("import atexit, json, sys\n"
             "atexit.register(lambda: sys.__stderr__.write('\\nMODULES ' + json.dumps(sorted(sys.modules)) + '\\n'))\n"
             "from runner.cli import main\n"
             f"main({list(args)!r})\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO,
                          env=env)
    line = next(line for line in done.stderr.splitlines() if line.startswith("MODULES "))
    return {name.split(".")[0] for name in json.loads(line.removeprefix("MODULES "))}


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["submit", "--help"]])
def test_version_and_help_load_no_heavy_module(args: list[str]) -> None:
    loaded = _modules_after(*args)
    assert "runner" in loaded and "click" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_import_runner_loads_nothing_until_a_name_is_used() -> None:
    probe = ("import sys, runner\n"
             "heavy = [m for m in sys.modules if m.split('.')[0] in ('celery', 'redis', 'pydantic')]\n"
             "assert not heavy, heavy\n"
             "from runner import Client, JobState, SoftTimeLimitExceeded, app, SimpleJob\n"
             "missing = [name for name in runner.__all__ if getattr(runner, name, None) is None]\n"
             "assert not missing, missing\n"
             "assert set(runner.__all__) <= set(dir(runner))\n"
             "from runner import storage  # a submodule is still a submodule\n"
             "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_status_loads_no_celery_api_or_s3(redis_url: str, settings) -> None:
    """`runner status JOB` reads one record: Redis and pydantic, never Celery, the HTTP
    API's stack or boto3 (and so starts in a fraction of the time)."""
    from runner import Client

    job = Client(settings=settings, org="startup").submit("wordcount", source=(REPO / "examples/data/book.txt").as_uri())
    env = {"RUNNER_BROKER_URL": redis_url, "RUNNER_ORG": "startup", "PATH": "/usr/bin:/bin"}
    loaded = _modules_after("status", job.id, env=env)
    assert {"redis", "pydantic"} <= loaded
    assert not loaded & {"celery", "kombu", "fastapi", "uvicorn", "boto3", "httpx"}, sorted(loaded)
    shown = run_cli("status", job.id, env={"RUNNER_BROKER_URL": redis_url, "RUNNER_ORG": "startup"}).stdout
    assert job.id in shown and "queued" in shown
