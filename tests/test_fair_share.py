"""Sharing a fleet, with the session's real prefork worker (2 processes): a small job
never waits behind a big one, orgs progress alike, a high-priority job overtakes.

Every bound is stated against the big job's own progress (how many of its pieces were
done when the small ones finished), never as a time, so a loaded machine cannot fail it.
"""

from __future__ import annotations

import json

import pytest

from runner import Client, JobState
from runner.local import wait_until

pytestmark = pytest.mark.timeout(240)

PIECE_SECONDS = 0.002  # the big jobs' pieces: spin this long (CPU, like real work)


def org_client(settings, org: str) -> Client:
    return Client(settings=settings.model_copy(update={"org": org}))


def big(client: Client, pieces: int, **options):
    return client.submit("spin", params={"partitioner": {"count": pieces}, "app": {"seconds": PIECE_SECONDS}}, **options)


def done(job) -> int:
    return job.status().pieces_done


def test_one_piece_jobs_of_another_org_finish_before_a_big_job_is_half_done(settings, worker) -> None:
    team_a, team_b = org_client(settings, "fair-a"), org_client(settings, "fair-b")
    job = big(team_a, 3000)
    wait_until(lambda: done(job) > 0, "the big job's first results", timeout=60)
    for n in range(3):
        small = team_b.submit("squares", params={"partitioner": {"count": 1}})
        assert small.wait(timeout=60) == 0
        assert done(job) < 1500, f"small job {n} finished only after the big job was half done"
    assert job.wait(timeout=120) == 3000
    assert job.status().state is JobState.COMPLETED


def test_two_orgs_with_equal_big_jobs_progress_alike(settings, worker) -> None:
    first = big(org_client(settings, "share-a"), 2000)
    second = big(org_client(settings, "share-b"), 2000)
    wait_until(lambda: done(first) > 0 and done(second) > 0, "both jobs' first results", timeout=60)
    wait_until(lambda: max(done(first), done(second)) >= 1000, "one job half done", timeout=120)
    a, b = done(first), done(second)
    assert 0.6 <= a / max(b, 1) <= 1.6, (a, b)
    assert first.wait(timeout=120) == second.wait(timeout=120) == 2000


def test_a_high_priority_job_overtakes_normal_ones_queued_before_it(settings, worker) -> None:
    team = org_client(settings, "prio")
    normals = [big(team, 400) for _ in range(3)]
    wait_until(lambda: done(normals[0]) > 0, "the first normal job's first results", timeout=60)
    urgent = big(team, 400, priority="high")
    assert urgent.wait(timeout=120) == 400
    assert [job.wait(timeout=120) for job in normals] == [400] * 3
    finished = {job.id: job.status().finished_at for job in [*normals, urgent]}
    assert finished[urgent.id] < finished[normals[1].id] and finished[urgent.id] < finished[normals[2].id], finished


def test_a_batch_waiting_its_turn_in_the_broker_is_vouched_for_not_sent_twice(client) -> None:
    """Batches are leased when handed out (a sender that dies before sending leaves them
    to the lease sweep); one that only waits in the broker past the dead-worker limit is
    renewed by the sweep, not re-sent. Nobody serves ``gpu`` here, so they wait."""
    job = client.submit("gpu-squares", params={"partitioner": {"count": 40}})
    store = client.store
    wait_until(lambda: store.fair_share.in_flight("gpu").get(job.id, 0) > 0, "batches handed to gpu", timeout=30)
    handed = store.fair_share.in_flight("gpu")[job.id]
    leases = {m: s for m, s in store.redis.zrange(store.keys.leases_key(), 0, -1, withscores=True)
              if json.loads(m)[1].startswith(f"{job.id}-0-")}
    assert len(leases) == handed
    first = min(leases.values())
    dead = client.settings.worker_dead_seconds
    try:
        wait_until(lambda: all((store.redis.zscore(store.keys.leases_key(), m) or 0) > first + 1 for m in leases),
                   "the sweep renewing the waiting batches' leases", timeout=dead + 30)
        assert store.fair_share.in_flight("gpu")[job.id] == handed
        assert sum(1 for raw in store.redis.lrange("gpu", 0, -1) if job.id in raw) == handed
        assert not [line for line in job.logs() if "re-sent" in line.msg], "a waiting batch was sent twice"
    finally:
        job.cancel()


def test_a_process_whose_batch_ends_runs_its_jobs_next_batch_itself(client, worker_log) -> None:
    """A chain (``workers/chain.py``): most batches of a lone job run in the process that
    ran the one before, not as a Celery message of their own — yet every batch still has
    its own task id and ``batch`` event, its lease is dropped when it ends, and every
    piece is counted once."""
    job = big(client, 1500)
    assert job.wait(timeout=120) == 1500
    status = job.status()
    assert status.pieces_done == 1500 and status.state is JobState.COMPLETED
    batches = [e for _, e in client.store.read_events(job.id) if e["type"] == "batch"]
    sent = {line.split("[", 1)[1].split("]", 1)[0] for line in worker_log.read_text().splitlines()
            if f"runner.app[{job.id}-" in line and line.rstrip().endswith("received")}
    assert len(batches) >= 4, batches
    assert len(sent) < len(batches) / 2, f"{len(sent)} of {len(batches)} batches came as Celery messages"
    store = client.store
    wait_until(lambda: not [m for m in store.redis.zrange(store.keys.leases_key(), 0, -1)
                            if json.loads(m)[2][0] == job.id], "the job's leases dropped", timeout=30)
