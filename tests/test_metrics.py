"""``runner metrics --port N``: a real server process scraped over HTTP and parsed with
prometheus_client's own parser; its counters must agree with what ``runner jobs`` lists.

Runs on a private Redis and worker so the numbers are this test's alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from runner import Client, JobFailed, get_settings
from runner.local import embedded_redis, free_port, stop_process, wait_until, worker_process
from runner.metrics import render
from tests.conftest import TEST_MODULES

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    with embedded_redis(tmp_path) as url:
        yield url


@pytest.fixture
def metrics_url(redis_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "RUNNER_BROKER_URL": redis_url, "RUNNER_STORE_URL": redis_url}
    log = (tmp_path / "metrics.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "metrics", "--port", str(port), "--addr", "127.0.0.1"],
                            env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_until(lambda: _answers(url), "runner metrics", proc, tmp_path / "metrics.log", timeout=30)
        yield url
    finally:
        stop_process(proc)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def scrape(url: str) -> dict[str, list]:
    families = text_string_to_metric_families(httpx.get(url, timeout=10).text)
    return {family.name: family.samples for family in families}


def test_scraped_counters_agree_with_runner_jobs(redis_url: str, metrics_url: str, tmp_path: Path,
                                                file_roots) -> None:
    client = Client(settings=get_settings(broker_url=redis_url, result_backend=redis_url, store_url=redis_url,
                                          include=TEST_MODULES, file_roots=file_roots, schedule_min_interval=0.5))
    with worker_process(redis_url, include=TEST_MODULES, concurrency=2, log_path=tmp_path / "w.log"):
        good = [client.submit("squares@1", params={"partitioner": {"count": n}}) for n in (3, 5, 7)]
        bad = client.submit("exploding@1")
        for job in good:
            job.wait(timeout=60)
        with pytest.raises(JobFailed):
            bad.wait(timeout=60)
        sched = client.schedule("squares@1", name="metered", every="1s", expected_interval="1h",
                                params={"partitioner": {"count": 2}})
        sched.run_now().wait(timeout=60)
        sched.pause()
        metrics = scrape(metrics_url)

    listed = client.jobs(limit=1000)
    by_state = Counter((j.template, j.state.value) for j in listed)
    scraped = {(s.labels["template"], s.labels["state"]): s.value for s in metrics["runner_jobs"]}
    assert scraped == by_state and sum(scraped.values()) == len(listed) >= 5
    done = {s.labels["template"]: s.value for s in metrics["runner_pieces_done"]}
    assert done["squares@1.0.0"] == sum(j.pieces_done for j in listed if j.template == "squares@1.0.0")
    durations = {s.name: s.value for s in metrics["runner_job_duration_seconds"]
                 if s.labels["template"] == "squares@1.0.0" and not s.name.endswith("_bucket")}
    assert durations["runner_job_duration_seconds_count"] == by_state[("squares@1.0.0", "completed")]
    processes = {s.labels["queue"]: s.value for s in metrics["runner_worker_processes"]}
    assert processes["control"] == 2 and processes["default"] == 2
    assert {s.labels["queue"] for s in metrics["runner_queue_depth"]} >= {"control", "default"}
    (overdue,) = metrics["runner_schedule_overdue"]
    assert overdue.labels["schedule"] == "metered" and overdue.value == 0
    (success,) = metrics["runner_schedule_last_success_timestamp_seconds"]
    assert success.value == pytest.approx(sched.info().last_success.timestamp(), abs=0.01)


def test_render_is_what_the_http_api_mounts(redis_url: str) -> None:
    client = Client(settings=get_settings(broker_url=redis_url, store_url=redis_url))
    text = render(client.store).decode()
    assert "# TYPE runner_jobs gauge" in text and "runner_schedule_overdue" in text


def test_the_grafana_dashboard_uses_only_metrics_runner_serves(redis_url: str) -> None:
    import json
    import re

    dashboard = json.loads((Path(__file__).resolve().parent.parent / "docs" / "grafana-dashboard.json").read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"runner_[a-z_]+", target["expr"])}
    served = {f"runner_{m}" for m in re.findall(r"^# TYPE runner_(\w+)", render(
        Client(settings=get_settings(broker_url=redis_url, store_url=redis_url)).store).decode(), re.M)}
    served |= {f"{name}_bucket" for name in served}
    assert used and used <= served, used - served
