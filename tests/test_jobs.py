"""End to end: real Redis, a real prefork worker, jobs submitted from Python."""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Producer, Queue

from runner import (
    Client,
    IllegalTransition,
    InvalidParams,
    Job,
    JobCancelled,
    JobNotFound,
    JobState,
    SourceError,
    TemplateNotFound,
)

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def write_text(path: Path, lines: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    text = "".join(" ".join(rng.choice(WORDS).capitalize() if rng.random() < 0.1 else rng.choice(WORDS)
                            for _ in range(rng.randint(0, 12))) + "\n" for _ in range(lines))
    path.write_text(text)
    return text


def wait_until(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} not reached within {timeout}s")


def test_word_count_equals_the_same_count_done_in_process(client: Client, tmp_path: Path) -> None:
    text = write_text(tmp_path / "book.txt", 5_000)
    job = client.submit("wordcount@1.0.0", source=(tmp_path / "book.txt").as_uri(),
                        params={"partitioner": {"lines_per_piece": 100}})
    counts = job.wait(timeout=60)
    expected = Counter(re.findall(r"[^\W\d_]+", text.lower()))
    assert counts == dict(expected)
    status = job.status()
    assert status.state is JobState.COMPLETED
    assert status.pieces_total == status.pieces_done == 50
    assert status.pieces_failed == 0
    assert status.finished_at >= status.started_at >= status.queued_at


def test_a_2000_piece_job_counts_every_piece_exactly_once(client: Client) -> None:
    job = client.submit("squares", params={"partitioner": {"count": 2000}})
    assert job.wait(timeout=60) == sum(i * i for i in range(2000))
    status = job.status()
    assert (status.pieces_total, status.pieces_done, status.pieces_failed) == (2000, 2000, 0)
    runs = [(start, stop) for start, stop, _ in client.store.runs(job.id)]  # sum combines: partials, not results
    assert [start for start, _ in runs] == [0] + [stop for _, stop in runs[:-1]] and runs[-1][1] == 2000
    assert len(runs) < 200 and not client.store.redis.exists(client.store.results_key(job.id))
    assert 1 < status.batches_total < 2000  # tiny pieces are batched, several to a task


def test_results_reach_the_assembler_in_piece_order(client: Client) -> None:
    job = client.submit("whoami@1.0.0", params={"partitioner": {"count": 777}})
    results = job.wait(timeout=60)
    assert [r["piece"] for r in results] == list(range(777))
    assert [r["value"] for r in results] == list(range(777))
    assert {r["job"] for r in results} == {job.id}


def test_lines_through_echo_and_concat_reproduce_the_file_at_the_destination(client: Client, tmp_path: Path) -> None:
    text = write_text(tmp_path / "in.txt", 1_234, seed=3)
    out = tmp_path / "out" / "copy.txt"
    job = client.submit("echo-lines", source=(tmp_path / "in.txt").as_uri(), destination=out.as_uri(),
                        params={"partitioner": {"lines_per_piece": 10}})
    summary = job.wait(timeout=60)
    assert out.read_text() == text
    assert summary == {"destination": out.as_uri(), "bytes": len(text.encode()), "pieces": 124}


def test_byte_ranges_are_read_by_each_app_task(client: Client, tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000 + b"tail"
    (tmp_path / "blob.bin").write_bytes(data)
    job = client.submit("byte-length", source=(tmp_path / "blob.bin").as_uri(),
                        params={"partitioner": {"piece_size": 10_000}})
    assert job.wait(timeout=60) == len(data)
    assert job.status().pieces_total == 26


def test_jsonl_records_come_back_grouped_in_order(client: Client, tmp_path: Path) -> None:
    records = [{"n": i, "name": f"r{i}"} for i in range(95)]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    job = client.submit("records", source=(tmp_path / "r.jsonl").as_uri(),
                        params={"partitioner": {"records_per_piece": 10}})
    pieces = job.wait(timeout=60)
    assert [r for piece in pieces for r in piece] == records
    assert len(pieces) == 10


def test_the_staged_flow_configures_then_runs_a_draft_job(client: Client, tmp_path: Path) -> None:
    write_text(tmp_path / "t.txt", 300)
    job = client.create("wordcount", name="staged")
    assert job.status().state is JobState.DRAFT
    job.set_datasource(source=(tmp_path / "t.txt").as_uri())
    job.set_params(app={"min_length": 5}, partitioner={"lines_per_piece": 50})
    with pytest.raises(InvalidParams) as bad:
        job.set_params(app={"min_length": 0})
    assert bad.value.errors[0][0] == "app.min_length"
    job.run(task_timeout=30, job_timeout=120)
    counts = job.wait(timeout=60)
    assert counts and all(len(word) >= 5 for word in counts)
    status = job.status()
    assert status.name == "staged" and status.task_timeout == 30 and status.job_timeout == 120
    assert status.pieces_total == 6
    with pytest.raises(IllegalTransition):
        job.set_params(app={"min_length": 2})
    with pytest.raises(IllegalTransition):
        job.run()


def test_invalid_params_are_refused_naming_every_field_and_nothing_is_queued(settings, worker) -> None:
    client = Client(settings=settings, org="invalid-params-org")
    queued_before = client.store.redis.llen(settings.control_queue)
    with pytest.raises(InvalidParams) as caught:
        client.submit("wordcount@1.0.0", params={
            "app": {"lowercase": "not-a-bool", "min_lenght": 3},
            "partitioner": {"lines_per_piece": 0},
            "assemblr": {},
        })
    paths = [path for path, _ in caught.value.errors]
    assert sorted(paths) == ["app.lowercase", "app.min_lenght", "assemblr", "partitioner.lines_per_piece"]
    assert "app.min_lenght: unexpected field" in str(caught.value)
    assert client.jobs() == []
    assert client.store.redis.llen(settings.control_queue) == queued_before


def test_an_unknown_template_is_a_clear_error(client: Client) -> None:
    with pytest.raises(TemplateNotFound, match=r"unknown template 'nope@9\.9'.*wordcount@1\.0\.0.*RUNNER_INCLUDE"):
        client.submit("nope@9.9")


def test_an_unknown_source_scheme_is_refused_before_queueing(client: Client) -> None:
    with pytest.raises(SourceError, match="unsupported URI scheme 'gopher'"):
        client.submit("echo-lines", source="gopher://x/y")


def test_a_test_job_runs_only_the_templates_first_pieces(client: Client) -> None:
    job = client.submit("echo-list", params={"partitioner": {"count": 1000}}, test=True)
    assert job.wait(timeout=60) == [0, 1, 2, 3]
    status = job.status()
    assert status.test and status.pieces_total == 4


def test_a_job_with_zero_pieces_completes_with_the_empty_result(client: Client) -> None:
    job = client.submit("squares", params={"partitioner": {"count": 0}})
    assert job.wait(timeout=60) == 0
    assert job.status().pieces_total == 0


def test_cancel_ends_a_running_job_and_is_a_no_op_once_ended(client: Client) -> None:
    job = client.submit("spin", params={"partitioner": {"count": 400}, "app": {"seconds": 0.02}})
    wait_until(lambda: job.status().pieces_done > 0, what="first pieces done")
    assert job.cancel() is True
    with pytest.raises(JobCancelled, match="cancelled"):
        job.wait(timeout=10)
    assert job.cancel() is False
    assert job.status().state is JobState.CANCELLED
    # workers go on serving other jobs
    assert client.submit("squares", params={"partitioner": {"count": 10}}).wait(timeout=60) == 285


def test_an_org_never_sees_another_orgs_jobs(settings, worker) -> None:
    mine, theirs = Client(settings=settings, org="org-a"), Client(settings=settings, org="org-b")
    job = mine.submit("squares", params={"partitioner": {"count": 3}})
    job.wait(timeout=60)
    assert [j.id for j in mine.jobs()] == [job.id]
    assert theirs.jobs() == []
    with pytest.raises(JobNotFound):
        theirs.get(job.id)
    with pytest.raises(JobNotFound):
        theirs.cancel(job.id)
    with pytest.raises(JobNotFound):
        Job(theirs, job.id).result()  # a handle made by hand still reads nothing of theirs
    assert mine.get(job.id).status().state is JobState.COMPLETED  # their attempts changed nothing


def test_finished_jobs_expire_after_their_retention(settings, worker) -> None:
    client = Client(settings=settings, org="retention")
    job = client.submit("squares", params={"partitioner": {"count": 5}}, retention_hours=1)
    job.wait(timeout=60)
    kept = [key for key in client.store.keys.all_job_keys(job.id) if client.store.redis.exists(key)]
    assert {client.store.job_key(job.id), client.store.events_key(job.id)} < set(kept)  # and the results
    for key in kept:
        assert 3500 < client.store.redis.ttl(key) <= 3601, key


def test_a_worker_refuses_a_pickled_message(client: Client, settings, worker_log: Path) -> None:
    # A job record waiting for its partition task: a pickled message must never start it.
    record_job = client.create("squares")
    client.store.redis.hset(client.store.job_key(record_job.id), "state", json.dumps("queued"))
    queue = Queue(settings.control_queue, Exchange(settings.control_queue), routing_key=settings.control_queue)
    with Connection(settings.broker_url) as conn:
        Producer(conn).publish(
            [[record_job.id, "squares@1.0.0"], {}, {}], serializer="pickle", exchange=queue.exchange,
            routing_key=settings.control_queue, declare=[queue],
            headers={"task": "runner.partition", "id": f"pickled-{record_job.id}", "lang": "py"},
        )
    # Messages on one queue are received in order: once a later job has run, the pickled
    # message has been received and refused.
    assert client.submit("squares", params={"partitioner": {"count": 2}}).wait(timeout=60) == 1
    wait_until(lambda: "ContentDisallowed" in worker_log.read_text(errors="replace"), what="refusal logged")
    assert client.store.state(record_job.id) is JobState.QUEUED
