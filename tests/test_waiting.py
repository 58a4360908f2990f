"""How a client waits for a job: one read of the record, then one blocking read of the
job's ending — woken by the final move itself, not by each event on the way — which
carries a completion's small result (else one more read of the record and result)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from runner import Client, JobCancelled
from runner.models import JobState
from tests.round_trips import counted_round_trips
from tests.test_jobs import wait_until

pytestmark = pytest.mark.timeout(120)


def _waiting(job, into: dict) -> threading.Thread:
    def wait() -> None:
        began = time.monotonic()
        try:
            into["result"] = job.wait(timeout=60)
        except Exception as exc:  # noqa: BLE001 - the test asserts on it
            into["error"] = exc
        into["seconds"] = time.monotonic() - began

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread


def test_a_waiting_client_blocks_once_on_the_ending_and_is_not_woken_by_other_events(
        client: Client, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    job = client.submit("gated-piece", params={"partitioner": {"count": 1}, "app": {"gate": str(gate)}})
    wait_until(lambda: job.status().state is JobState.RUNNING, what="the piece running, held at its gate")
    got: dict = {}
    with counted_round_trips(client.store.redis) as trips:
        thread = _waiting(job, got)
        wait_until(lambda: any(b"XREAD" in sent for sent in trips), what="the client blocked on the ending")
        for n in range(5):  # events the old wait woke up for, one round trip each
            client.store.journal.add_event(job.id, "note", n=n)
        gate.touch()
        thread.join(60)
    assert got.get("result") == [0], got
    sent = [t for t in trips if b"note" not in t]  # the test's own writes left out
    blocking = [t for t in sent if b"XREAD" in t]
    reads = [t for t in sent if b"HGETALL" in t]
    assert all(b":ending" in t and b":events" not in t for t in blocking), blocking
    quiet_periods = int(got["seconds"] / 0.5)  # a 500 ms block with nothing final re-reads the record
    assert 1 <= len(blocking) <= 1 + quiet_periods, [t[:120] for t in sent]
    # one read before each block (the first, then one per quiet 500 ms); the final move carries the result
    assert len(reads) == len(blocking) and len(sent) == len(blocking) + len(reads), [t[:120] for t in sent]


def test_a_job_already_ended_is_read_once(client: Client) -> None:
    job = client.submit("squares", params={"partitioner": {"count": 3}})
    assert job.wait(timeout=60) == 5
    with counted_round_trips(client.store.redis) as trips:
        assert job.wait(timeout=60) == 5
    assert len(trips) == 1, trips


def test_a_cancel_wakes_the_waiting_client_with_its_error(client: Client, tmp_path: Path) -> None:
    job = client.submit("gated-piece", params={"partitioner": {"count": 1}, "app": {"gate": str(tmp_path / "never")}})
    wait_until(lambda: job.status().state is JobState.RUNNING, what="the piece running, held at its gate")
    got: dict = {}
    thread = _waiting(job, got)
    assert job.cancel()
    thread.join(30)
    assert isinstance(got.get("error"), JobCancelled), got
    assert got["seconds"] < 1.0, got  # woken by the cancel itself, well within the 500 ms re-read


def test_a_result_too_big_to_ride_on_the_ending_is_read_after_it(client: Client, tmp_path: Path) -> None:
    records = [{"n": i, "text": "x" * 100} for i in range(1000)]  # ~120 KB assembled: over the 64 KB that ride along
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    job = client.submit("records", source=(tmp_path / "r.jsonl").as_uri(),
                        params={"partitioner": {"records_per_piece": 500}})
    assert [r for piece in job.wait(timeout=60) for r in piece] == records
    ending = client.store.jobs.wait_ending(job.id, "0-0", 1)
    assert ending == {"state": "completed"}  # no result on it: the client read it from the record's side
    small = client.submit("squares", params={"partitioner": {"count": 3}})
    assert small.wait(timeout=60) == 5
    assert client.store.jobs.wait_ending(small.id, "0-0", 1) == {"state": "completed", "result": "5"}
