"""Retention: every key an ended job left in Redis expires after its ``retention_hours`` —
read from the server (every key naming the job), not from the key table, so a key the
final move forgot to expire fails here. Since issue 24 that move expires only the keys a
job made (its record names the optional ones), so each kind of key is made here once:
stored pieces, results per run and folded, failed pieces, attempts, metrics."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from runner import Client

pytestmark = pytest.mark.timeout(120)

HOUR = 3600


def job_keys(client: Client, job_id: str) -> dict[str, int]:
    """Every key in the store whose name holds the job's id, with its TTL (-1: none)."""
    redis = client.store.redis
    return {key: redis.ttl(key) for key in redis.scan_iter(match=f"{client.store.prefix}:*{job_id}*", count=1000)}


def wound_up(client: Client, job_id: str, timeout: float = 10.0) -> dict[str, int]:
    """The job's keys once its wind-up (the round trip after its final move, which a waiting
    client does not wait for) has forgotten its fair-share keys."""
    deadline = time.monotonic() + timeout
    while True:
        keys = job_keys(client, job_id)
        if not any(":share:" in key for key in keys) or time.monotonic() > deadline:
            return keys
        time.sleep(0.05)


def assert_all_expire_after_retention(client: Client, job_id: str, expected: set[str]) -> None:
    keys = wound_up(client, job_id)
    made = {key.rsplit(job_id, 1)[1] for key in keys}
    assert expected <= made, f"missing {expected - made}; the job has {sorted(made)}"
    for key, ttl in keys.items():
        assert HOUR - 100 < ttl <= HOUR + 1, f"{key}: TTL {ttl}, expected about one hour"
    share = [key for key in keys if ":share:" in key]
    assert share == [], f"fair-share keys outlived the job: {share}"


def test_a_small_job_ends_with_every_key_expiring_after_its_retention(settings, worker) -> None:
    client = Client(settings=settings, org="retention-small")
    params = {"partitioner": {"count": 3}}
    client.submit("squares", params=params).wait(timeout=60)  # its batches tell the piece time: next, one batch
    job = client.submit("squares", params=params, retention_hours=1)
    assert job.wait(timeout=60) == 0 + 1 + 4
    assert_all_expire_after_retention(client, job.id, {"", ":events", ":ending", ":result", ":logs", ":tasks",
                                                       ":deliveries"})
    record = client.store.redis.hgetall(client.store.job_key(job.id))
    assert "share_batch" in record and record["batches_total"] == "1"  # handed out whole: no hold, no forget


def test_stored_pieces_retried_pieces_and_metrics_expire_after_retention(settings, worker, tmp_path: Path) -> None:
    client = Client(settings=settings, org="retention-kinds")
    source = tmp_path / "lines.txt"
    source.write_text("".join(f"line {i}\n" for i in range(40)))
    stored = client.submit("echo-lines", source=source.as_uri(), params={"partitioner": {"lines_per_piece": 2}},
                           retention_hours=1)
    flags = tmp_path / "flags"
    flags.mkdir()
    retried = client.submit("flaky", params={"partitioner": {"count": 6},
                                             "app": {"flag_dir": str(flags), "bad_pieces": [2], "once": True}},
                            retention_hours=1)
    (tmp_path / "model.bin").write_text("m")
    metered = client.submit("with-model", params={"partitioner": {"count": 3}}, retention_hours=1,
                            inputs={"model": (tmp_path / "model.bin").as_uri()})
    for job in (stored, retried, metered):
        job.wait(timeout=90)
    assert_all_expire_after_retention(client, stored.id, {"", ":pieces", ":result_runs"})
    assert_all_expire_after_retention(client, retried.id, {"", ":attempts", ":ranges"})
    assert_all_expire_after_retention(client, metered.id, {"", ":metrics", ":metric_series"})


def test_pieces_failed_for_good_expire_after_retention(settings, worker, tmp_path: Path) -> None:
    client = Client(settings=settings, org="retention-failed")
    flags = tmp_path / "flags"
    flags.mkdir()
    job = client.submit("lossy", params={"partitioner": {"count": 10},
                                         "app": {"flag_dir": str(flags), "bad_pieces": [4], "once": False}},
                        min_success_ratio=0.5, retention_hours=1)
    job.wait(timeout=90)
    assert job.status().pieces_failed == 1
    assert_all_expire_after_retention(client, job.id, {"", ":failed"})
