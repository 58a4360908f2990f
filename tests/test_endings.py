"""One way to end a job, whoever ends it; pieces by reference; one source for each fact."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from runner import Client, JobNotFinished, JobState, PieceRef, SoftTimeLimitExceeded, RunnerError
from runner.local import free_port
from tests.test_jobs import wait_until


def ending_lines(client: Client, job_id: str) -> list[str]:
    return [line.msg for line in client.get(job_id).logs() if line.source == "runner"]


def test_a_job_the_broker_cannot_take_ends_failed_like_every_other_ending(settings, worker) -> None:
    dead_broker = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    client = Client(settings=settings.model_copy(update={"broker_url": dead_broker}), org="no-broker")
    with pytest.raises(Exception):
        client.submit("squares", params={"partitioner": {"count": 2}})
    (status,) = client.jobs()
    assert status.state is JobState.FAILED and status.error["stage"] == "submit"
    assert "cannot reach the broker" in status.error["message"] and status.finished_at is not None
    report = json.loads(client.get(status.id).read_artifact("output.json"))
    assert report["state"] == "failed" and report["error"]["stage"] == "submit"
    assert any(msg.startswith("failed") and "cannot reach the broker" in msg for msg in ending_lines(client, status.id))


def test_every_ending_writes_output_json_and_a_lifecycle_line(client: Client) -> None:
    done = client.submit("squares", params={"partitioner": {"count": 3}})
    assert done.wait(timeout=60) == 5
    cancelled = client.submit("sleepy", params={"partitioner": {"count": 4}, "app": {"seconds": 5}})
    wait_until(lambda: cancelled.status().state is JobState.RUNNING, what="running")
    assert cancelled.cancel()
    for job, state, opening in ((done, "completed", "completed after"), (cancelled, "cancelled", "cancelled")):
        assert json.loads(job.read_artifact("output.json"))["state"] == state
        assert any(msg.startswith(opening) for msg in ending_lines(client, job.id)), ending_lines(client, job.id)
    assert any("cancelled by " in msg for msg in ending_lines(client, cancelled.id))


@pytest.mark.parametrize("ending", [JobState.CANCELLED, JobState.TIMED_OUT])
def test_app_log_lines_are_sent_as_written_and_kept_when_the_job_ends_mid_piece(client: Client, ending) -> None:
    job = client.submit("chatty", params={"partitioner": {"count": 1}, "app": {"lines": 2, "seconds": 120}})
    said = ["piece 0 says 0", "piece 0 says 1"]

    def app_lines() -> list[str]:
        return [line.msg for line in job.logs() if line.source == "app"]

    wait_until(lambda: app_lines() == said, what="the piece's lines in the log while it still runs")
    assert job.status().state is JobState.RUNNING  # the piece sleeps on: they were sent as written
    if ending is JobState.CANCELLED:
        assert job.cancel()
    else:  # the deadline passes now, mid-piece (no waiting on a clock): the watchdog times the job out
        now = time.time()
        client.store.update(job.id, deadline=now)
        client.store.set_deadline(job.id, now)
    wait_until(lambda: job.status().state is ending, what=ending.value)
    lines = job.logs()
    ended_at = next(i for i, line in enumerate(lines)
                    if line.source == "runner" and line.msg.startswith(ending.value.replace("_", " ")))
    assert [line.msg for line in lines if line.source == "app"] == said
    assert all(i < ended_at for i, line in enumerate(lines) if line.source == "app")  # in the order written


def test_the_result_of_a_job_that_has_not_ended_raises_job_not_finished(client: Client) -> None:
    draft = client.create("squares")
    with pytest.raises(JobNotFinished, match="still draft"):
        draft.result()


def test_a_user_partitioner_can_pass_pieces_by_reference(client: Client, tmp_path: Path) -> None:
    source = tmp_path / "ab.txt"
    source.write_text("aaaabbbb")
    job = client.submit("halves", source=source.as_uri())
    assert job.wait(timeout=60) == [["bytes", "aaaa"], ["bytes", "bbbb"]]
    stored = client.store.load_pieces(job.id, 0, 2)
    assert stored[0] == {"$piece": {"uri": source.as_uri(), "start": 0, "end": 4, "as_": "bytes", "encoding": "utf-8"}}


def test_byte_and_object_pieces_reach_the_app_as_locations(tmp_path: Path) -> None:
    from runner.config import get_settings
    from runner.pieces import resolve, to_stored
    from runner.storage import Storages

    storages = Storages(get_settings(file_roots=[tmp_path]))
    (tmp_path / "x.bin").write_bytes(b"0123456789")
    uri = (tmp_path / "x.bin").as_uri()
    assert resolve(to_stored(PieceRef(uri, 2, 5)), storages) == {"uri": uri, "start": 2, "end": 5}
    assert resolve(to_stored(PieceRef(uri)), storages) == {"uri": uri}
    assert resolve(to_stored(PieceRef(uri, 2, 5, as_="text")), storages) == "234"
    assert resolve(to_stored(PieceRef(uri, as_="bytes")), storages) == b"0123456789"
    assert resolve({"uri": uri}, storages) == {"uri": uri}  # an ordinary dict piece is left alone


def test_the_worker_routes_by_the_queue_stored_in_the_record(client: Client) -> None:
    job = client.create("squares")
    client.store.update(job.id, queue="nobody-consumes-this")
    job.set_params(partitioner={"count": 2}).run(job_timeout=30)
    # kombu's Redis transport keeps a queue's messages in a list named after the queue
    wait_until(lambda: client.store.redis.llen("nobody-consumes-this") >= 1, what="app tasks on the record's queue")
    assert not [fields for _, fields in job.events() if fields.get("type") == "batch"]  # no worker started one
    assert job.cancel()


def test_soft_time_limit_is_runners_own_error_and_still_celerys() -> None:
    from celery.exceptions import SoftTimeLimitExceeded as Celerys

    assert issubclass(SoftTimeLimitExceeded, RunnerError) and issubclass(SoftTimeLimitExceeded, Celerys)
