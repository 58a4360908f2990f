"""A one-piece job's life on its worker, counted in round trips (issue 24, P3): the
partition task, the batch it runs itself and the assembly it runs after, as one pool
process runs them — here, in this process, through Celery's own ``apply``, on a private
Redis no other worker reads.

Seven round trips to the completion: the spec read with the task's lease, its org's gate,
the claim, the pieces stored with the move to ``running`` and the batch handed out whole
and started, the result recorded, the assembly's claim with the record and the results
read, the completion. Then closing out: the deadline, the batch's slot and lease, the
partition's lease. Not counted: what a worker does now and then, not per job — the piece
time noted when it changed, the queue's processes counted from the heartbeats.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from runner import Client, get_settings
from runner.dispatch import PARTITION
from runner.local import embedded_redis
from tests.conftest import TEST_MODULES
from tests.round_trips import counted_round_trips
from workers import runtime
from workers.boot import create_app

pytestmark = pytest.mark.timeout(120)

ROUND_TRIPS = 10  # 14 before issue 24's round four: a spec field, the take, the batch's start and the
# results' first page were round trips of their own
NOT_PER_JOB = (b"piece_seconds", b"runner:workers")  # keys of what a worker reads or notes now and then


@pytest.fixture(scope="module")
def worker_side(tmp_path_factory: pytest.TempPathFactory,
                file_roots: list[Path]) -> Iterator[tuple[Client, object, redis.Redis]]:
    """A client, a worker's Celery app serving the control and default queues in this
    process, and the broker — on a Redis of this module's own."""
    previous = runtime._settings
    with embedded_redis(tmp_path_factory.mktemp("redis")) as url:
        settings = get_settings(broker_url=url, result_backend=url, store_url=url, include=TEST_MODULES,
                                file_roots=[str(root) for root in file_roots])
        runtime.configure(settings)
        celery = create_app(settings)
        celery.amqp.queues.select([settings.control_queue, settings.default_queue])
        try:
            yield Client(settings=settings), celery, redis.Redis.from_url(url)
        finally:
            runtime.configure(previous or get_settings())


def run_partition(client: Client, celery, broker: redis.Redis, params: dict) -> tuple[object, list[bytes]]:
    """Submit a ``squares`` job, take its partition task off the control queue and run it here."""
    job = client.submit("squares", params=params)
    message = json.loads(broker.rpop(runtime.settings().control_queue))
    with counted_round_trips(runtime.store().redis) as trips:
        celery.tasks[PARTITION].apply(args=(job.id, "squares@1.0.0"), task_id=message["headers"]["id"])
    return job, [trip for trip in trips if not any(key in trip for key in NOT_PER_JOB)]


def test_a_one_piece_job_runs_to_its_end_in_ten_round_trips(worker_side) -> None:
    client, celery, broker = worker_side
    run_partition(client, celery, broker, {"partitioner": {"count": 1}})  # warm: templates, scripts, pools
    job, trips = run_partition(client, celery, broker, {"partitioner": {"count": 1}})
    assert job.wait(timeout=10) == 0
    assert len(trips) <= ROUND_TRIPS, [t[:80] for t in trips]
    logs = [line.msg for line in job.logs()]
    assert any(msg.startswith("partitioned ") and "into 1 piece," in msg for msg in logs), logs
    assert any(msg.startswith("started on ") for msg in logs), logs  # the batch's start, written with its hand-out


def run_sent(celery, broker: redis.Redis, job) -> int:
    """Run here, as a worker would, every task the job sent to its queues; how many."""
    ran, queues = 0, [runtime.settings().default_queue, runtime.settings().control_queue]
    while not job.status().state.is_final:
        raw = next((m for m in (broker.rpop(q) for q in queues) if m is not None), None)
        assert raw is not None, f"job {job.id} is {job.status().state.value} with no task left to run"
        message = json.loads(raw)
        args, _, _ = json.loads(base64.b64decode(message["body"]))
        celery.tasks[message["headers"]["task"]].apply(args=args, task_id=message["headers"]["id"])
        ran += 1
    return ran


def test_a_job_of_more_batches_than_one_is_held_and_still_completes(worker_side) -> None:
    client, celery, broker = worker_side
    job, _ = run_partition(client, celery, broker, {"partitioner": {"count": 3000}})
    run_sent(celery, broker, job)
    assert job.wait(timeout=10) == sum(i * i for i in range(3000))
    status = job.status()
    assert status.pieces_done == 3000 and status.batches_total > 1
    logs = [line.msg for line in job.logs()]
    assert sum(msg.startswith("partitioned ") for msg in logs) == 1, logs  # held, not handed out whole: logged once
