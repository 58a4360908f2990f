"""The stopper (workers/stopper.py): a task whose job ended is stopped from inside its own
process; a stage run inline past its hard limit kills its process. Each case runs in a
child Python process against the session's Redis, as a pool process would."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

from runner import Client

WATCHED = """
import sys, time
from workers import stopper
with stopper.stopped_when_job_ends(sys.argv[1]):
    {body}
print("returned", flush=True)
"""


def run_watched(settings, job_id: str, body: str, timeout: float = 30) -> tuple[subprocess.CompletedProcess, float]:
    code = textwrap.dedent(WATCHED).format(body=body)
    env = {**os.environ, "RUNNER_STORE_URL": settings.store_url, "RUNNER_BROKER_URL": settings.broker_url,
           "RUNNER_RESULT_BACKEND": settings.result_backend}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code, job_id], env=env, capture_output=True, text=True,
                          timeout=timeout)
    return done, time.monotonic() - started


def test_a_task_whose_job_is_cancelled_stops_at_once_and_returns(settings, client: Client) -> None:
    job = client.create("squares")
    body = "time.sleep(0.5); import runner; runner.Client().cancel(sys.argv[1]); time.sleep(30)"
    done, took = run_watched(settings, job.id, body)
    assert done.returncode == 0, done.stderr
    assert "returned" in done.stdout
    assert took < 10


def test_a_stage_stuck_past_its_hard_limit_kills_its_own_process(settings, client: Client) -> None:
    job = client.create("squares")  # a draft: it never ends, so only the limit can stop the block
    body = "with stopper.hard_limit(0.5):\n        time.sleep(30)"
    done, took = run_watched(settings, job.id, body)
    assert done.returncode == -9
    assert "returned" not in done.stdout
    assert took < 10
