"""`make bench`'s API and schedules harnesses: benchmarks/bench_api.py runs its goals' cell
(one uvicorn worker, one client) against the bare route and prints both issue 24 goals
with the Redis round trips counted per request; benchmarks/bench_schedules.py refuses
contradictory sizes with a clear message. Figures are not asserted (benchmarks are not
timed tests), only that they were measured. (A schedules run waits one real minute, so
its end-to-end run is `make bench`'s, not the suite's.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.cli import REPO

pytestmark = pytest.mark.timeout(200)


def test_bench_api_goal_cell_measures_both_routes_against_the_bare_route() -> None:
    done = subprocess.run([sys.executable, "benchmarks/bench_api.py", "--workers", "1", "--clients", "1",
                           "--seconds", "0.4", "--json"], cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode in (0, 1), done.stderr[-3000:]  # 1: a goal not met, which is not this test's concern
    report = json.loads(done.stdout)
    assert [(row["route"], row["workers"], row["clients"]) for row in report["rows"]] == [
        ("GET /v1/jobs/{id}", 1, 1), ("POST /v1/jobs", 1, 1)]
    for row in report["rows"]:
        for side in ("runner", "bare"):
            assert row[side]["requests"] > 0 and row[side]["errors"] == 0 and row[side]["p50_ms"] > 0, row
    goals = {g["what"].split(" p50")[0]: g for g in report["goals"]}
    assert set(goals) == {"GET /v1/jobs/{id}", "POST /v1/jobs"}
    assert goals["GET /v1/jobs/{id}"]["target"] == "≤ +0.5 ms" and goals["POST /v1/jobs"]["target"] == "≤ +1.5 ms"
    assert all(g["round_trips"] >= 1 for g in goals.values())  # the token at least: counting took place
    assert done.returncode == (0 if all(g["pass"] for g in report["goals"]) else 1)


@pytest.mark.parametrize("args", [["--full", "--schedules", "50"], ["--quick", "--full"], ["--schedules", "0"]])
def test_bench_schedules_refuses_contradictory_or_empty_sizes(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "benchmarks/bench_schedules.py", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "--schedules" in done.stderr and ("give one" in done.stderr or "≥ 1" in done.stderr), done.stderr
