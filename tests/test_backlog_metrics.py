"""The autoscaling signal (``runner/backlog.py``): per queue, the pieces waiting and in
flight, the seconds of work they need per live process, and the processes serving it —
read from the job records, not the broker's queue lengths.

The job tests run on a private Redis and worker so the numbers are this test's alone; a
gate file (an explicit barrier) holds the job's pieces while the metrics are read.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from runner import Client, get_settings
from runner.backlog import DEFAULT_PIECE_SECONDS, QueueBacklog, backlog_seconds, remaining_pieces, work_seconds
from runner.local import embedded_redis, free_port, worker_process
from runner.metrics import render, serve
from runner.params import piece_kind
from runner.store import StatusStore
from examples.autoscale_compose import main as autoscale, read_queue, replicas
from tests.api_fixtures import METRICS_TOKEN
from tests.conftest import TEST_MODULES

pytestmark = pytest.mark.timeout(180)

BACKLOG = ("runner_queue_pieces_waiting", "runner_queue_pieces_in_flight", "runner_queue_backlog_seconds",
           "runner_queue_processes")


def by_queue(text: str) -> dict[str, dict[str, float]]:
    """Each backlog metric's value by queue, parsed with prometheus_client's own parser."""
    families = {family.name: family.samples for family in text_string_to_metric_families(text)}
    return {name: {s.labels["queue"]: s.value for s in families[name]} for name in BACKLOG if name in families}


def poll(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Wait (with a deadline) until ``check()`` holds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # the poll interval


# -- the formula, pure --------------------------------------------------------------------
def test_backlog_seconds_divides_by_processes_and_counts_zero_as_one() -> None:
    assert backlog_seconds(12.0, 4) == 3.0
    assert backlog_seconds(12.0, 0) == 12.0  # a scaler from zero still sees the demand
    assert QueueBacklog("q", work_seconds=9.0, processes=3).seconds == 3.0
    assert QueueBacklog("q", work_seconds=9.0).seconds == 9.0


def test_work_seconds_falls_back_to_the_default_piece_time() -> None:
    assert work_seconds(10, 0.25) == 2.5
    assert work_seconds(10, None) == 10 * DEFAULT_PIECE_SECONDS
    assert work_seconds(0, None) == 0.0


def test_remaining_pieces_of_a_job() -> None:
    assert remaining_pieces({"state": "running", "pieces_total": 10, "pieces_done": 3, "pieces_failed": 2}) == 5
    assert remaining_pieces({"state": "queued", "pieces_total": None}) == 1  # not partitioned: unknown, one
    assert remaining_pieces({"state": "assembling", "pieces_total": 4, "pieces_done": 4, "pieces_failed": 0}) == 0


def test_the_piece_kind_ignores_key_order() -> None:
    assert piece_kind("t@1.0.0", {"a": 1, "b": 2}) == piece_kind("t@1.0.0", {"b": 2, "a": 1})
    assert piece_kind("t@1.0.0", {"a": 1}) != piece_kind("t@1.0.0", {"a": 2}) != piece_kind("t@2.0.0", {"a": 2})
    assert piece_kind("t@1.0.0", None) == piece_kind("t@1.0.0", {})


def test_a_worker_and_the_metric_agree_on_a_jobs_piece_kind() -> None:
    import tests.jobs  # noqa: F401  (registers the spin template in this process)
    from runner.params import parse_section, validate_params
    from runner.registry import get_template
    from workers.runtime import JobSpec

    spin = get_template("spin")
    stored = validate_params(spin, {"partitioner": {"count": 3}, "app": {"seconds": 0.5}})  # as the record keeps them
    parsed = {kind: parse_section(spin.function(kind).params, stored[kind]) for kind in stored}
    spec = JobSpec(job_id="j", template=spin, params=parsed, test=False, task_timeout=1.0, max_retries=0,
                   retention_hours=1.0, queue="default", source="", destination="", inputs={})
    assert spec.piece_kind == piece_kind(spin.ref, stored["app"])


# -- real jobs on a real worker ---------------------------------------------------------
@pytest.fixture
def private(tmp_path: Path, file_roots) -> Iterator[tuple[str, Client]]:
    (tmp_path / "redis").mkdir()
    with embedded_redis(tmp_path / "redis") as url:
        yield url, Client(settings=get_settings(broker_url=url, result_backend=url, store_url=url,
                                                 include=TEST_MODULES, file_roots=file_roots))


def kind_of(store: StatusStore, job_id: str) -> str:
    """The job's piece kind, from its record: what the metric weighs its pieces by."""
    record = store.jobs.fields(job_id, "template", "params")
    return piece_kind(record["template"], record["params"]["app"])


def test_a_gated_job_shows_its_remaining_pieces_and_seconds(private, tmp_path: Path, file_roots) -> None:
    url, client = private
    gate = tmp_path / "gate"
    gated = client.submit("gated-piece", params={"partitioner": {"count": 6}, "app": {"gate": str(gate)}})
    unserved = client.submit("gpu-squares", params={"partitioner": {"count": 3}})

    # no worker yet: each queued job counts as one piece of unknown time, over zero processes
    before = by_queue(render(client.store).decode())
    assert before["runner_queue_pieces_waiting"] == {"default": 1, "gpu": 1}
    assert before["runner_queue_pieces_in_flight"] == {"default": 0, "gpu": 0}
    assert before["runner_queue_processes"] == {"default": 0, "gpu": 0}
    assert before["runner_queue_backlog_seconds"]["default"] == pytest.approx(DEFAULT_PIECE_SECONDS)

    with worker_process(url, include=TEST_MODULES, concurrency=2, log_path=tmp_path / "w.log", file_roots=file_roots):
        poll(lambda: gated.status().state == "running" and unserved.status().state == "running", "both jobs running")
        client.store.fleet.note_piece_seconds(kind_of(client.store, gated.id), 1000.0)
        held = by_queue(render(client.store).decode())
        processes = held["runner_queue_processes"]
        assert (processes["control"], processes["default"], processes["gpu"]) == (2, 2, 0)
        assert held["runner_queue_pieces_waiting"]["default"] == 6 - gated.status().pieces_done == 6
        assert held["runner_queue_pieces_in_flight"]["default"] == 6
        assert held["runner_queue_backlog_seconds"]["default"] == pytest.approx(6 * 1000.0 / 2)
        # nobody serves gpu: its remaining pieces, of unknown time, as if one process
        assert held["runner_queue_pieces_waiting"]["gpu"] == 3
        assert held["runner_queue_backlog_seconds"]["gpu"] == pytest.approx(3 * DEFAULT_PIECE_SECONDS)
        assert held["runner_queue_pieces_waiting"]["control"] == 0

        gate.touch()
        assert gated.wait(timeout=90) == list(range(6))
        after = by_queue(render(client.store).decode())
        assert after["runner_queue_pieces_waiting"]["default"] == 0
        assert after["runner_queue_backlog_seconds"]["default"] == 0
        # the worker noted the job's real piece time under the very kind the metric reads
        kind = kind_of(client.store, gated.id)  # (noted after the batch's work: polled, not assumed)
        poll(lambda: (client.store.fleet.piece_seconds(kind) or 1000.0) < 1000.0, "the worker's piece time")

        unserved.cancel()
        poll(lambda: "gpu" not in by_queue(render(client.store).decode())["runner_queue_pieces_waiting"],
             "the cancelled job's queue to drop out")


def test_an_org_scrape_leaves_the_fleet_wide_backlog_out(private, capsys) -> None:
    url, client = private
    client.submit("squares", params={"partitioner": {"count": 2}})  # queued: no worker
    fleet = render(client.store).decode()
    assert all(f"# TYPE {name} gauge" in fleet for name in BACKLOG)
    assert by_queue(fleet)["runner_queue_pieces_waiting"] == {"default": 1}
    own = render(client.store, org=client.org).decode()
    assert "runner_jobs" in own and not any(name in own for name in BACKLOG)
    # what the compose example reads from it: demand at zero processes wakes one replica
    assert read_queue(fleet, "default") == (DEFAULT_PIECE_SECONDS, 0)
    assert replicas(*read_queue(fleet, "default"), target_seconds=30, concurrency=2, minimum=0, maximum=8) == 1
    assert read_queue(fleet, "nobody-serves-or-waits") == (0, 0)
    server = serve(get_settings(broker_url=url, store_url=url), free_port())  # `runner metrics`
    try:
        autoscale(["--metrics-url", f"http://127.0.0.1:{server.server_port}/metrics", "--once", "--dry-run"])
    finally:
        server.shutdown()
        server.server_close()
    assert "would run: docker compose up -d --no-recreate --scale worker=1 worker" in capsys.readouterr().out


def test_over_http_only_the_metrics_token_reads_the_backlog(api_server, api_a) -> None:
    everyone = httpx.get(f"{api_server.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30)
    assert everyone.status_code == 200 and set(by_queue(everyone.text)) == set(BACKLOG)
    own = api_a.get("/metrics")
    assert own.status_code == 200 and "runner_jobs" in own.text and by_queue(own.text) == {}


# -- the docs: docs/autoscaling.md and the compose example ------------------------------
DOC = Path(__file__).resolve().parent.parent / "docs" / "autoscaling.md"


def test_the_scaler_formula_of_the_compose_example() -> None:
    # 120 s of backlog over 4 processes = 480 s of work; replicas of 2 processes, 30 s each
    assert replicas(120.0, 4, target_seconds=30, concurrency=2, minimum=0, maximum=20) == 8
    assert replicas(120.0, 4, target_seconds=30, concurrency=2, minimum=0, maximum=5) == 5  # clamped
    assert replicas(0.0, 4, target_seconds=30, concurrency=2, minimum=0, maximum=5) == 0  # idle: to zero
    assert replicas(0.0, 0, target_seconds=30, concurrency=2, minimum=1, maximum=5) == 1
    assert replicas(5.0, 0, target_seconds=30, concurrency=2, minimum=0, maximum=5) == 1  # from zero
    with pytest.raises(ValueError, match="target_seconds > 0"):
        replicas(1.0, 1, target_seconds=0, concurrency=2, minimum=0, maximum=5)


def test_the_yaml_of_the_autoscaling_doc_parses_and_fits_together() -> None:
    yaml = pytest.importorskip("yaml")
    blocks = re.findall(r"^```yaml\n(.*?)^```", DOC.read_text(), re.S | re.M)
    documents = [doc for block in blocks for doc in yaml.safe_load_all(block)]
    kinds = {doc.get("kind"): doc for doc in documents if "kind" in doc}
    deployment, scaled = kinds["Deployment"], kinds["ScaledObject"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus" and "runner_queue_backlog_seconds" in trigger["metadata"]["query"]
    assert float(trigger["metadata"]["threshold"]) > 0
    (compose,) = [doc for doc in documents if "services" in doc]
    assert {"redis", "worker", "metrics"} <= compose["services"].keys()
    assert compose["services"]["worker"]["command"][:2] == ["runner", "worker"]
    (scrape,) = [doc for doc in documents if "scrape_configs" in doc]
    assert scrape["scrape_configs"][0]["metrics_path"] == "/metrics"
