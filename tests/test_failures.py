"""When things go wrong: timeouts, retries, cancel, crashes. A job always ends, and ends right."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from runner import Client, IllegalTransition, JobCancelled, JobFailed, JobState, JobTimedOut
from tests.test_jobs import wait_until


def batch_events(client: Client, job_id: str) -> list[tuple[str, dict[str, str]]]:
    return [(i, e) for i, e in client.store.read_events(job_id) if e["type"] == "batch"]


def state_event_id(client: Client, job_id: str, state: str) -> str:
    return next(i for i, e in client.store.read_events(job_id) if e.get("state") == state)


def event_ms(event_id: str) -> tuple[int, int]:
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


def test_a_piece_past_task_timeout_is_stopped_retried_and_fails_the_job_naming_it(client: Client) -> None:
    job = client.submit("sleepy", params={"partitioner": {"count": 6}, "app": {"seconds": 30, "slow_pieces": [3]}},
                        task_timeout=1, max_retries=1)
    other = client.submit("squares", params={"partitioner": {"count": 50}})
    started = time.monotonic()
    with pytest.raises(JobFailed) as failed:
        job.wait(timeout=30)
    assert time.monotonic() - started < 15  # two 1 s attempts and a backoff, not 30 s sleeps
    error = failed.value.status.error
    assert error["piece"] == 3 and error["type"] == "SoftTimeLimitExceeded"
    assert "piece 3 exceeded task_timeout=1s" in str(failed.value)
    assert error["attempts"] == 2 and error["traceback"]
    retries = [e for _, e in client.store.read_events(job.id) if e["type"] == "piece_retry"]
    assert [(r["piece"], r["attempt"]) for r in retries] == [("3", "1")]
    assert other.wait(timeout=30) == sum(i * i for i in range(50))


def test_a_job_past_its_deadline_is_timed_out_and_nothing_of_it_starts_afterwards(client: Client) -> None:
    job = client.submit("sleepy", params={"partitioner": {"count": 60}, "app": {"seconds": 0.5}},
                        job_timeout=2, task_timeout=5)
    with pytest.raises(JobTimedOut, match="job_timeout of 2s passed"):
        job.wait(timeout=30)
    status = job.status()
    assert status.state is JobState.TIMED_OUT
    assert (status.finished_at - status.deadline).total_seconds() < 2.0
    # Tasks are received in order: once a later job has finished, every task of the
    # timed-out job has been received, and each one either never started or started earlier.
    assert client.submit("squares", params={"partitioner": {"count": 4}}).wait(timeout=30) == 14
    timed_out_at = event_ms(state_event_id(client, job.id, "timed_out"))
    assert all(event_ms(i) < timed_out_at for i, _ in batch_events(client, job.id))
    assert status.pieces_done < 60
    assert "assembling" not in [e.get("state") for _, e in client.store.read_events(job.id)]


def test_cancel_ends_the_job_within_a_second_and_frees_its_workers(client: Client) -> None:
    job = client.submit("sleepy", params={"partitioner": {"count": 8}, "app": {"seconds": 60}}, task_timeout=120)
    wait_until(lambda: len(batch_events(client, job.id)) >= 2, what="both worker processes busy")
    started = time.monotonic()
    assert job.cancel()
    with pytest.raises(JobCancelled):
        job.wait(timeout=5)
    assert time.monotonic() - started < 1.0
    # Both processes were sleeping in this job's pieces: others run only if they were killed.
    assert client.submit("squares", params={"partitioner": {"count": 20}}).wait(timeout=20) == 2470
    assert job.cancel() is False


def test_a_job_survives_worker_processes_killed_mid_piece(client: Client) -> None:
    job = client.submit("slow-squares", params={"partitioner": {"count": 2000}, "app": {"seconds": 0.002}})
    killed: set[int] = set()
    for _ in range(3):
        def victim() -> int | None:
            pids = {int(e["pid"]) for _, e in batch_events(client, job.id)} - killed
            alive = [p for p in pids if os.path.exists(f"/proc/{p}")]
            return alive[0] if alive else None

        pid = wait_until(victim, what="a live worker process running the job")
        os.kill(pid, signal.SIGKILL)
        killed.add(pid)
    assert job.wait(timeout=120) == sum(i * i for i in range(2000))
    status = job.status()
    assert (status.pieces_total, status.pieces_done, status.pieces_failed) == (2000, 2000, 0)
    assert len(killed) == 3


def test_a_piece_that_fails_once_is_retried_and_the_job_completes(client: Client, tmp_path: Path) -> None:
    job = client.submit("flaky", params={"partitioner": {"count": 20},
                                         "app": {"flag_dir": str(tmp_path), "bad_pieces": [4, 15]}})
    assert job.wait(timeout=30) == sum(i * 10 for i in range(20))
    retried = sorted(int(e["piece"]) for _, e in client.store.read_events(job.id) if e["type"] == "piece_retry")
    assert retried == [4, 15]


def test_a_piece_that_always_fails_fails_the_job_and_retry_failed_reruns_only_it(
    client: Client, tmp_path: Path
) -> None:
    params = {"partitioner": {"count": 30}, "app": {"flag_dir": str(tmp_path), "bad_pieces": [7], "once": False}}
    job = client.submit("flaky", params=params, max_retries=1)
    with pytest.raises(JobFailed, match=r"piece 7: ValueError: piece 7 is bad input") as failed:
        job.wait(timeout=30)
    assert failed.value.status.pieces_failed == 1
    with pytest.raises(IllegalTransition):
        client.submit("squares", params={"partitioner": {"count": 1}}).retry_failed()

    (tmp_path / "fixed").touch()
    calls_before = len((tmp_path / "calls").read_text().split())
    missing = client.store.missing_pieces(job.id, 30)
    assert 7 in missing and len(missing) == 30 - job.status().pieces_done
    assert job.retry_failed().wait(timeout=30) == sum(i * 10 for i in range(30))
    rerun = [int(p) for p in (tmp_path / "calls").read_text().split()[calls_before:]]
    assert sorted(rerun) == missing  # only the pieces without a result ran again, once each
    status = job.status()
    assert status.state is JobState.COMPLETED and status.pieces_failed == 0 and status.error is None


def test_a_result_that_is_not_json_fails_the_job_without_retrying(client: Client) -> None:
    job = client.submit("not-json", params={"partitioner": {"count": 5}})
    with pytest.raises(JobFailed, match="piece 2: TypeError: app returned a value that is not JSON-serializable"):
        job.wait(timeout=30)
    assert not [e for _, e in client.store.read_events(job.id) if e["type"] == "piece_retry"]


def test_a_partitioner_that_raises_fails_the_job_with_its_message(client: Client) -> None:
    job = client.submit("exploding", params={"partitioner": {"after": 10}})
    with pytest.raises(JobFailed, match=r"\[partition\] ValueError: cannot split this source: bad header"):
        job.wait(timeout=30)
    assert job.status().pieces_total is None


def test_an_empty_input_completes_with_the_assemblers_empty_result(client: Client, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("")
    job = client.submit("echo-lines", source=(tmp_path / "empty.txt").as_uri())
    assert job.wait(timeout=30) == ""
    assert job.status().pieces_total == 0
