"""Partial success: a job that may go without pieces that fail for good.

Real workers (the session's prefork pool), the ``flaky`` app failing chosen pieces until a
flag file exists, and summing assemblers that say which pieces they went without —
``lossy`` keeps each piece's result, ``lossy-folded`` folds runs of pieces (``combine``)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import httpx
import pytest

from runner import Client, IllegalTransition, InvalidParams, JobFailed, JobState
from runner.errors import InvalidSchedule
from tests.api_fixtures import ApiServer, wait_state

pytestmark = pytest.mark.timeout(120)


def lossy(client: Client, flags: Path, count: int, bad: list[int], template: str = "lossy", **options):
    """A job of ``count`` pieces whose ``bad`` pieces fail (every attempt) until ``flags/fixed``."""
    flags.mkdir(exist_ok=True)
    params = {"partitioner": {"count": count}, "app": {"flag_dir": str(flags), "bad_pieces": bad, "once": False}}
    return client.submit(template, params=params, **options)


def ran(flags: Path) -> set[int]:
    """The pieces the app was called on (each call appends its piece to ``flags/calls``)."""
    calls = flags / "calls"
    return {int(p) for p in calls.read_text().split()} if calls.exists() else set()


def output_json(job) -> dict:
    return json.loads(job.read_artifact("output.json"))


@pytest.mark.parametrize("template", ["lossy", "lossy-folded"])
def test_five_percent_failing_completes_partial_with_the_sum_of_the_rest(client: Client, tmp_path: Path,
                                                                          template: str) -> None:
    bad = [3, 23, 47, 68, 99]
    job = lossy(client, tmp_path, 100, bad, template, min_success_ratio=0.9, max_retries=1)
    result = job.wait(timeout=90)
    assert result == {"sum": sum(i * 10 for i in range(100) if i not in bad), "failed": bad}
    status = job.status()
    assert status.state is JobState.COMPLETED and status.partial
    assert (status.pieces_done, status.pieces_failed, status.min_success_ratio) == (95, 5, 0.9)
    retried = sorted(int(e["piece"]) for _, e in client.store.read_events(job.id) if e["type"] == "piece_retry")
    assert retried == bad  # each bad piece had its one retry, then was let go
    report = output_json(job)
    assert report["partial"] is True and report["counters"]["pieces_failed"] == 5
    assert any("partial" in line.msg for line in job.logs() if line.source == "runner")


def test_twenty_percent_failing_fails_as_soon_as_the_ratio_cannot_be_met(client: Client, tmp_path: Path) -> None:
    bad = [i for i in range(100) if i % 5 == 2]  # 20 pieces; 0.9 of 100 allows 10
    job = lossy(client, tmp_path, 100, bad, min_success_ratio=0.9)
    with pytest.raises(JobFailed, match=r"over the 10 the job allows: min_success_ratio=0.9 of 100 pieces") as failed:
        job.wait(timeout=90)
    status = failed.value.status
    assert status.state is JobState.FAILED and not status.partial
    assert status.pieces_failed >= 11 and status.error["pieces_failed"] >= 11 and status.error["failed_allowed"] == 10
    assert status.pieces_done + status.pieces_failed < 100  # the rest never ran: it failed early
    assert len(ran(tmp_path)) < 100


def test_max_failed_pieces_allows_that_many_and_fails_on_one_more(client: Client, tmp_path: Path) -> None:
    ok = lossy(client, tmp_path / "ok", 30, [4, 17], "lossy-folded", max_failed_pieces=2)
    assert ok.wait(timeout=60) == {"sum": sum(i * 10 for i in range(30) if i not in (4, 17)), "failed": [4, 17]}
    assert ok.status().partial and ok.status().pieces_failed == 2

    over = lossy(client, tmp_path / "over", 30, [4, 17, 25], max_failed_pieces=2)
    with pytest.raises(JobFailed, match=r"3 pieces failed for good, over the 2 the job allows: max_failed_pieces=2"):
        over.wait(timeout=60)


def test_a_template_default_applies_unless_the_job_gives_its_own(client: Client, tmp_path: Path) -> None:
    job = lossy(client, tmp_path / "default", 10, [1, 2], "lossy-tolerant")
    assert job.wait(timeout=60) == {"sum": sum(i * 10 for i in range(10) if i not in (1, 2)), "failed": [1, 2]}
    assert job.status().max_failed_pieces == 2 and job.status().partial

    strict = lossy(client, tmp_path / "strict", 10, [1], "lossy-tolerant", min_success_ratio=1.0)
    with pytest.raises(JobFailed, match=r"over the 0 the job allows: min_success_ratio=1 of 10 pieces"):
        strict.wait(timeout=60)
    assert (strict.status().min_success_ratio, strict.status().max_failed_pieces) == (1.0, None)

    plain = lossy(client, tmp_path / "plain", 10, [1], "lossy")  # no tolerance at all: fails as ever
    with pytest.raises(JobFailed, match=r"piece 1: ValueError: piece 1 is bad input$"):
        plain.wait(timeout=60)


def test_retry_failed_after_a_fix_runs_only_the_failed_pieces_and_completes_whole(client: Client,
                                                                                 tmp_path: Path) -> None:
    bad = [5, 30]
    job = lossy(client, tmp_path, 40, bad, "lossy-folded", min_success_ratio=0.9)
    assert job.wait(timeout=60)["failed"] == bad and job.status().partial

    (tmp_path / "fixed").touch()
    calls_before = len((tmp_path / "calls").read_text().split())
    assert job.retry_failed().wait(timeout=60) == {"sum": sum(i * 10 for i in range(40)), "failed": []}
    rerun = [int(p) for p in (tmp_path / "calls").read_text().split()[calls_before:]]
    assert sorted(rerun) == bad  # only the failed pieces ran again, once each
    status = job.status()
    assert status.state is JobState.COMPLETED and not status.partial and status.pieces_failed == 0
    assert (status.pieces_done, status.error) == (40, None)
    assert output_json(job)["partial"] is False
    with pytest.raises(IllegalTransition, match="partial"):  # nothing is left to retry
        job.retry_failed()


def test_bad_tolerances_are_refused_naming_the_field_and_the_fix(client: Client) -> None:
    with pytest.raises(InvalidParams, match=r"min_success_ratio: must be a number from 0 to 1.*got 1\.5"):
        client.submit("lossy", params={"app": {"flag_dir": "/tmp"}}, min_success_ratio=1.5)
    with pytest.raises(InvalidParams, match=r"max_failed_pieces: give min_success_ratio or max_failed_pieces, not "
                                            r"both: drop one of them"):
        client.submit("lossy", params={"app": {"flag_dir": "/tmp"}}, min_success_ratio=0.9, max_failed_pieces=3)
    with pytest.raises(InvalidParams, match=r"max_failed_pieces: must be a whole number >= 0.*got -1"):
        client.submit("lossy", params={"app": {"flag_dir": "/tmp"}}, max_failed_pieces=-1)


def test_the_api_takes_a_tolerance_shows_partial_and_refuses_bad_ones(api_a: httpx.Client, worker,
                                                                      tmp_path: Path) -> None:
    body = {"template": "lossy", "params": {"partitioner": {"count": 6},
                                            "app": {"flag_dir": str(tmp_path), "bad_pieces": [2], "once": False}}}
    for bad, field in (({"min_success_ratio": 1.5}, "min_success_ratio"),
                       ({"min_success_ratio": 0.5, "max_failed_pieces": 1}, "max_failed_pieces")):
        answer = api_a.post("/v1/jobs", json={**body, **bad})
        assert answer.status_code == 422 and answer.json()["error"]["fields"][0]["field"] == field, answer.text
    created = api_a.post("/v1/jobs", json={**body, "max_failed_pieces": 1})
    assert created.status_code == 201, created.text
    job = wait_state(api_a, f"/v1/jobs/{created.json()['id']}", {"completed", "failed"}, 60)
    assert (job["state"], job["partial"], job["pieces_failed"], job["max_failed_pieces"]) == ("completed", True, 1, 1)
    assert api_a.get(f"/v1/jobs/{job['id']}/result").json()["result"] == {"sum": 10 * (0 + 1 + 3 + 4 + 5),
                                                                         "failed": [2]}


def test_the_dashboard_shows_a_partial_completion(api_server: ApiServer, org_a: str, api_a: httpx.Client, worker,
                                                  tmp_path: Path) -> None:
    created = api_a.post("/v1/jobs", json={"template": "lossy", "min_success_ratio": 0.5, "params": {
        "partitioner": {"count": 4}, "app": {"flag_dir": str(tmp_path), "bad_pieces": [3], "once": False}}})
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    wait_state(api_a, f"/v1/jobs/{job_id}", {"completed", "failed"}, 60)
    with httpx.Client(base_url=api_server.url, timeout=30) as browser:
        form = browser.get("/ui/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
        signed_in = browser.post("/ui/login", data={"csrf": csrf, "api_key": api_server.create_key(org_a)["key"],
                                                    "next": f"/ui/jobs/{job_id}"}, follow_redirects=True)
        assert signed_in.status_code == 200, signed_in.text[:500]
    assert 'id="partial"' in signed_in.text and "partial: 1 piece failed" in signed_in.text
    assert 'id="retry"' in signed_in.text  # a partial job may retry its failed pieces


def test_the_command_line_passes_a_tolerance_and_refuses_both(redis_url: str, worker, file_roots,
                                                              tmp_path: Path) -> None:
    from tests.cli import cli_env, run_cli

    env = cli_env(redis_url, file_roots, "partial-cli")
    params = json.dumps({"partitioner": {"count": 5}, "app": {"flag_dir": str(tmp_path), "bad_pieces": [0],
                                                              "once": False}})
    done = run_cli("submit", "lossy", "--params-json", params, "--max-failed-pieces", "1", "--wait", "--json",
                   env=env)
    record = json.loads(done.stdout)
    assert (record["state"], record["partial"], record["pieces_failed"]) == ("completed", True, 1)
    told = run_cli("submit", "lossy", "--params-json", params, "--max-failed-pieces", "1", "--wait", env=env)
    assert "partial: 1 piece(s) failed for good" in told.stderr and json.loads(told.stdout)["failed"] == [0]
    both = run_cli("submit", "lossy", "--params-json", params, "--max-failed-pieces", "1", "--min-success-ratio",
                   "0.5", env=env, status=2)
    assert "not both" in both.stderr and "Traceback" not in both.stderr


def test_a_schedule_fires_jobs_with_its_tolerance(client: Client, tmp_path: Path) -> None:
    params = {"partitioner": {"count": 5}, "app": {"flag_dir": str(tmp_path), "bad_pieces": [4], "once": False}}
    name = f"partial-{uuid.uuid4().hex[:8]}"
    with pytest.raises(InvalidSchedule, match="max_failed_pieces.*not both"):
        client.schedule("lossy", name=name, every="1h", params=params, min_success_ratio=0.5, max_failed_pieces=1)
    schedule = client.schedule("lossy", name=name, every="1h", params=params, max_failed_pieces=1)
    try:
        job = schedule.run_now()
        assert job.wait(timeout=60) == {"sum": 10 * (0 + 1 + 2 + 3), "failed": [4]}
        assert (job.status().max_failed_pieces, job.status().partial) == (1, True)
    finally:
        schedule.delete()


def _running_job(client: Client, total: int, **tolerance) -> str:
    """A job record of ``total`` pieces, running, written straight to the store."""
    job_id = uuid.uuid4().hex[:16]
    record = {"id": job_id, "org": "partial-store", "template": "lossy@1.0.0", "state": "running", "task_timeout": 1.0,
              "job_timeout": 60.0, "max_retries": 0, "retention_hours": 1.0, "queue": "default", "created_at": 1.0,
              "pieces_total": total, "pieces_done": 0, "pieces_failed": 0, **tolerance}
    client.store.redis.hset(client.store.job_key(job_id), mapping={k: json.dumps(v) for k, v in record.items()})
    return job_id


def test_the_store_settles_a_tolerant_job_exactly_once_and_again_for_a_rerun(client: Client) -> None:
    store = client.store
    job_id = _running_job(client, 4, max_failed_pieces=1)
    assert not store.record_results(job_id, [(0, "1"), (1, "2")]).completes_job
    first = store.record_failure(job_id, 2, {"message": "bad"})
    assert (first.failed, first.new, first.settles, first.tolerance.allowed(4)) == (1, True, False, 1)
    assert store.record_results(job_id, [(3, "4")]).completes_job  # the last piece to settle, a result
    assert not store.record_results(job_id, [(3, "4")]).completes_job  # a replay counts nothing
    rerun = store.record_failure(job_id, 2, {"message": "bad again"})  # a batch re-run after its process died
    assert (rerun.failed, rerun.new, rerun.settles) == (1, False, True)  # its assembly may have been lost
    assert store.record_failure(job_id, 3, {"message": "x"}).failed == 1  # a piece with a result never fails
    assert store.failed_pieces(job_id) == [2]
    assert list(store.iter_results(job_id, 4, skip=[2])) == [1, 2, 4]
    with pytest.raises(LookupError, match="piece 2"):
        list(store.iter_results(job_id, 4))

    folded = _running_job(client, 6, min_success_ratio=0.5)
    store.record_ranges(folded, [(0, 2, "1"), (3, 4, "3")])
    assert store.record_failure(folded, 2, {}).settles is False
    assert store.record_failure(folded, 5, {}).settles is False
    assert store.record_ranges(folded, [(4, 5, "4")]).completes_job  # 4 results + 2 failures of 6
    assert list(store.iter_results(folded, 6, skip=[2, 5])) == [1, 3, 4]
    with pytest.raises(LookupError, match="pieces 5..5"):
        list(store.iter_results(folded, 6, skip=[2]))

    rerun = _running_job(client, 1200, max_failed_pieces=1200)  # results of pieces that had failed undo the failures
    for index in (1, 700, 1100):
        store.record_failure(rerun, index, {})
    store.record_ranges(rerun, [(0, 2, "1")])  # a run shorter than the failures: looked up by index
    assert store.failed_pieces(rerun) == [700, 1100] and store.fields(rerun, "pieces_failed")["pieces_failed"] == 2
    store.record_ranges(rerun, [(2, 1200, "2")])  # longer: by the failures' keys
    assert store.failed_pieces(rerun) == [] and store.fields(rerun, "pieces_failed")["pieces_failed"] == 0
    store.record_failure(rerun, 3, {})  # (a failure of a piece in a recorded run never counts)
    assert store.fields(rerun, "pieces_failed", "pieces_done") == {"pieces_failed": 0, "pieces_done": 1200}

    strict = _running_job(client, 2)  # no tolerance: a failure never settles, only results do
    assert store.record_failure(strict, 0, {}).settles is False
    assert not store.record_results(strict, [(1, "1")]).completes_job
    assert store.record_results(strict, [(0, "0")]).completes_job and store.failed_pieces(strict) == []
