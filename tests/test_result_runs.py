"""Results kept per run: a job whose assembler takes every result (``json_list``, ``concat``)
records the results of each contiguous run of pieces a batch ran as one JSON array, refused
whole when it overlaps a run already recorded, and the assembler reads them in piece order.
A job recorded one field per piece (in flight across an upgrade) still reads and counts."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from runner import Client
from runner.local import embedded_redis
from runner.store import StatusStore
from workers.fold import Encoded

pytestmark = pytest.mark.timeout(120)


def _running_job(store: StatusStore, total: int, **tolerance: Any) -> str:
    """A job record of ``total`` pieces, running, written straight to the store."""
    job_id = uuid.uuid4().hex[:16]
    record = {"id": job_id, "org": "result-runs", "template": "echo-list@1.0.0", "state": "running",
              "task_timeout": 1.0, "job_timeout": 60.0, "max_retries": 0, "retention_hours": 1.0, "queue": "default",
              "created_at": 1.0, "pieces_total": total, "pieces_done": 0, "pieces_failed": 0, **tolerance}
    store.redis.hset(store.job_key(job_id), mapping={k: json.dumps(v) for k, v in record.items()})
    return job_id


def _array(start: int, stop: int) -> str:
    return json.dumps([index * 10 for index in range(start, stop)])


def test_a_listing_job_keeps_one_array_per_run_not_a_field_per_piece(client: Client) -> None:
    job = client.submit("echo-list", params={"partitioner": {"count": 3000}})
    assert job.wait(timeout=60) == list(range(3000))
    status = job.status()
    assert not client.store.redis.exists(client.store.results_key(job.id))
    runs = client.store.result_runs(job.id)
    assert [start for start, _, _ in runs] == [0] + [stop for _, stop, _ in runs[:-1]] and runs[-1][1] == 3000
    assert [value for _, _, array in runs for value in json.loads(array)] == list(range(3000))
    assert len(runs) <= 3 * status.batches_total


def test_a_run_of_results_overlapping_a_recorded_run_is_refused_whole(client: Client) -> None:
    store = client.store
    job_id = _running_job(store, 25)
    assert store.record_runs(job_id, [(10, 20, _array(10, 20))]).new == 10
    again = store.record_runs(job_id, [(15, 25, _array(15, 25)), (0, 10, _array(0, 10)), (20, 22, _array(20, 22))])
    assert (again.new, again.refused, again.done) == (12, (15,), 22)  # 0..9 and 20..21 were new
    replay = store.record_results(job_id, [(21, "210")])  # one piece again (a redelivered batch's): counts nothing
    assert (replay.new, replay.refused, replay.done) == (0, (21,), 22)
    assert store.done_pieces(job_id, 18, 26) == {18, 19, 20, 21}
    assert store.missing_pieces(job_id, 25) == [22, 23, 24]
    assert list(store.iter_results(job_id, 22)) == [index * 10 for index in range(22)]
    with pytest.raises(LookupError, match=r"piece 22 \(none for pieces 22\.\.24\)"):
        list(store.iter_results(job_id, 25))


def test_results_come_in_piece_order_around_failed_pieces_whatever_order_runs_were_recorded(client: Client) -> None:
    store = client.store
    job_id = _running_job(store, 12, max_failed_pieces=2)
    assert store.record_results(job_id, [(6, "60"), (7, "70"), (9, "90"), (10, "100"), (11, "110")]).new == 5
    assert store.record_failure(job_id, 8, {"message": "bad"}).new
    assert store.record_results(job_id, [(0, "0"), (1, "10"), (2, "20"), (3, "30")]).new == 4
    assert not store.record_failure(job_id, 2, {}).new  # a failure never undoes a kept result
    assert not store.record_failure(job_id, 4, {}).settles
    assert store.record_results(job_id, [(5, "50")]).completes_job  # 10 results and 2 failures: settled
    assert [start for start, _, _ in store.result_runs(job_id)] == [0, 5, 6, 9]
    assert list(store.iter_results(job_id, 12, skip=[4, 8])) == [0, 10, 20, 30, 50, 60, 70, 90, 100, 110]
    assert list(store.iter_results(job_id, 12, chunk=1, skip=[4, 8])) == [0, 10, 20, 30, 50, 60, 70, 90, 100, 110]
    with pytest.raises(LookupError, match="piece 8"):
        list(store.iter_results(job_id, 12, skip=[4]))
    assert store.record_results(job_id, [(8, "80")]).new == 1  # a retry of a failed piece: its failure undone
    assert store.failed_pieces(job_id) == [4] and store.fields(job_id, "pieces_failed")["pieces_failed"] == 1


def test_a_job_recorded_one_field_per_piece_reads_counts_and_refuses_as_before(client: Client) -> None:
    store = client.store
    job_id = _running_job(store, 6)
    store.redis.hset(store.results_key(job_id), mapping={"0": "0", "1": "10", "4": "40"})  # written before runs
    store.redis.hset(store.job_key(job_id), "pieces_done", 3)
    assert store.record_runs(job_id, [(1, 3, "[10,20]")]).refused == (1,)  # piece 1 is kept already
    assert store.done_pieces(job_id, 0, 6) == {0, 1, 4}
    assert store.record_results(job_id, [(2, "20"), (3, "30")]).new == 2
    assert store.missing_pieces(job_id, 6) == [5]
    assert not store.record_failure(job_id, 4, {}).new
    assert store.record_results(job_id, [(5, "50")]).completes_job
    assert list(store.iter_results(job_id, 6, chunk=2)) == [0, 10, 20, 30, 40, 50]


def test_a_batch_of_results_costs_redis_the_same_few_commands_at_any_size(tmp_path: Path) -> None:
    """Recording a flush's results and reading them back for the assembly: a fixed number
    of commands per run, none per piece (a field per piece made this grow with the batch)."""
    with embedded_redis(tmp_path) as url:
        store = StatusStore(url)

        def commands() -> int:
            return sum(stat["calls"] for stat in store.redis.info("commandstats").values())

        def cost(pieces: int) -> int:
            job_id, kept = _running_job(store, pieces), Encoded()
            for index in range(pieces):
                kept.add(index, {"i": index})
            before = commands()
            assert kept.record(store, job_id).completes_job
            assert [item["i"] for item in store.iter_results(job_id, pieces)] == list(range(pieces))
            return commands() - before

        cost(10)  # the script loaded
        small, large = cost(1_000), cost(20_000)
        assert small == large <= 16
        store.close()


def test_a_run_breaks_past_its_byte_cap_and_adjacent_runs_read_back_in_order(client: Client) -> None:
    store, kept = client.store, Encoded(run_bytes=20)
    job_id = _running_job(store, 10)
    for index in range(10):
        kept.add(index, "x" * index)
    assert [(start, stop) for start, stop, _, _ in kept.runs] == [(0, 4), (4, 6), (6, 8), (8, 9), (9, 10)]
    assert kept.record(store, job_id).completes_job
    assert list(store.iter_results(job_id, 10)) == ["x" * index for index in range(10)]
