"""The fair-share store part on a real Redis: holding, the fair order between jobs, orgs
and priorities, sizes, capacity, org quotas, leases of handed-out batches, forgetting."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.local import embedded_redis
from runner.store import StatusStore
from runner.store.fair_share import Holding

pytestmark = pytest.mark.timeout(60)

LEASE = '["runner.app","{job}-0-@S@",["{job}","t@1","@S@","@E@"]]'


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StatusStore]:
    with embedded_redis(tmp_path_factory.mktemp("fair-redis")) as url:
        store = StatusStore(url, prefix="fs")
        yield store
        store.close()


def hold(store: StatusStore, job: str, total: int, org: str = "a", priority: int = 5, queue: str = "q",
         kind: str = "k", batch_size: int | None = None) -> None:
    assert store.fair_share.hold(holding(job, total, org, priority, queue, kind, batch_size))


def holding(job: str, total: int, org: str = "a", priority: int = 5, queue: str = "q", kind: str = "k",
            batch_size: int | None = None) -> Holding:
    return Holding(job, queue, org, priority, 0, kind, [(0, total)], time.time() + 600, batch_size,
                   LEASE.format(job=job), 600)


def take(store: StatusStore, queue: str = "q", capacity: int = 1, freed: str | None = None,
         own: str | None = None, processes: int = 2):
    return store.fair_share.take(queue, capacity, processes, now=time.time(), freed=freed, own=own,
                                 batch_seconds=0.1, max_batch=1000)


def test_hold_is_idempotent_and_batches_are_leased_and_cover_every_piece(store: StatusStore) -> None:
    store.fleet.note_piece_seconds("k1", 0.001)
    hold(store, "j1", 1000, queue="q1", kind="k1")
    assert not store.fair_share.hold(holding("j1", 1000, queue="q1", kind="k1"))
    covered, freed = [], None
    for _ in range(100):
        out = take(store, "q1", freed=freed)
        if not out:
            break
        assert len(out) == 1 and out[0].stop - out[0].start <= 100  # 0.1 s of 1 ms pieces
        covered.append((out[0].start, out[0].stop))
        lease = json.loads(store.redis.zrange(store.keys.leases_key(), -1, -1)[0])
        assert lease[2][2:] == [out[0].start, out[0].stop] and lease[1] == f"j1-0-{out[0].start}"
        freed = f"j1-0-{out[0].start}"
    assert covered[0] == (0, 100) and covered[-1][1] == 1000
    assert all(a[1] == b[0] for a, b in zip(covered, covered[1:]))


def test_round_robin_between_jobs_and_a_newcomer_goes_next(store: StatusStore) -> None:
    hold(store, "big1", 10_000, queue="q2", batch_size=10)
    hold(store, "big2", 10_000, queue="q2", batch_size=10)
    order = [h.job_id for h in take(store, "q2", capacity=6)]
    assert sorted(order) == ["big1"] * 3 + ["big2"] * 3
    hold(store, "small", 1, queue="q2", batch_size=10)
    freed = [f"{job}-0-{start}" for job, start in (("big1", 0),)]
    out = take(store, "q2", capacity=6, freed=freed[0])
    assert [h.job_id for h in out] == ["small"]


def test_orgs_share_by_weight_whatever_their_job_counts(store: StatusStore) -> None:
    for n in range(4):
        hold(store, f"a{n}", 10_000, org="acme", queue="q3", batch_size=10)
    hold(store, "b0", 10_000, org="beta", queue="q3", batch_size=10)
    out = take(store, "q3", capacity=100)
    orgs = [h.job_id[0] for h in out]
    assert 40 <= orgs.count("b") <= 60


def test_priority_goes_first_and_low_is_not_starved(store: StatusStore) -> None:
    hold(store, "normal", 10_000, queue="q4", batch_size=10)
    hold(store, "low", 10_000, queue="q4", priority=2, batch_size=10)
    hold(store, "high", 10_000, queue="q4", priority=8, batch_size=10)
    out = [h.job_id for _ in range(4) for h in take(store, "q4", capacity=10**6)]  # 256 a call
    assert out[:100] == ["high"] * 100  # its head start: strictly first
    assert out.index("normal") < out.index("low")
    assert out.count("high") > out.count("normal") > out.count("low") > 0  # weighted, none starved


def test_hold_and_take_in_one_round_trip_hands_out_the_own_job_first(store: StatusStore) -> None:
    hold(store, "busy", 10_000, queue="q6", batch_size=10)
    assert len(take(store, "q6", capacity=3)) == 3
    out = store.fair_share.hold_and_take(holding("mine", 5, org="b", queue="q6"), 3, 2, now=time.time(), own="mine",
                                         batch_seconds=0.1, max_batch=1000)
    assert [(h.job_id, h.start, h.stop) for h in out] == [("mine", 0, 2)]  # ceil(5 / (2 × 2 processes)), at capacity
    assert store.fair_share.in_flight("q6") == {"busy": 3, "mine": 1}


def test_capacity_own_job_and_org_quota(store: StatusStore) -> None:
    hold(store, "x", 100, org="quota", queue="q5", batch_size=10)
    store.redis.hset(store.keys.org_quota_key("quota"), "max_pieces_in_flight", 25)
    out = take(store, "q5", capacity=0, own="x")
    assert [(h.start, h.stop) for h in out] == [(0, 10)]  # own first, whatever the capacity
    out = take(store, "q5", capacity=10)
    assert [(h.start, h.stop) for h in out] == [(10, 20), (20, 25)]  # the quota cuts the last
    assert store.fair_share.org_in_flight("quota") == 25
    assert take(store, "q5", capacity=10) == []
    out = take(store, "q5", capacity=10, freed="x-0-0")
    assert [(h.start, h.stop) for h in out] == [(25, 35)]
    assert store.fair_share.forget("x")
    assert store.fair_share.org_in_flight("quota") == 0 and store.fair_share.in_flight("q5") == {}
    assert take(store, "q5", capacity=10) == []


def test_a_batch_that_stops_early_gives_its_rest_back_first(store: StatusStore) -> None:
    hold(store, "yielder", 100, queue="q7", batch_size=40)
    first = take(store, "q7", capacity=1)
    assert [(h.start, h.stop) for h in first] == [(0, 40)]
    assert store.fair_share.give_back("q7", "yielder", "yielder-0-0", 15, 40)  # ran 0..14, then a newcomer came
    assert store.fair_share.in_flight("q7") == {}
    assert [(h.start, h.stop) for h in take(store, "q7", capacity=1)] == [(15, 40)]  # the rest, first
    store.fair_share.forget("yielder")
    assert not store.fair_share.give_back("q7", "yielder", "yielder-0-15", 20, 40)  # an ended job: nothing held


def running_record(store: StatusStore, job: str, state: str = "running") -> None:
    """The bits of a job record the fair-share scripts read and write (its state, its tasks)."""
    store.redis.hset(store.keys.job_key(job), mapping={"state": json.dumps(state), "batches_total": 0})
    store.redis.sadd(store.keys.tasks_key(job), "partition-task")
    store.redis.expire(store.keys.job_key(job), 600)
    store.redis.expire(store.keys.tasks_key(job), 600)


def take_whole(store: StatusStore, held: Holding, processes: int = 2):
    return store.fair_share.take_whole(held, processes, now=time.time(), batch_seconds=0.1, max_batch=1000)[0]


def test_a_job_of_one_batch_is_handed_out_whole_counted_leased_and_never_held(store: StatusStore) -> None:
    store.fleet.note_piece_seconds("kw", 0.0001)  # 10 ms is 100 pieces: 5 fit one batch
    running_record(store, "w1")
    facts = holding("w1", 5, org="wo", queue="q8", kind="kw")
    out = take_whole(store, facts)
    assert [(h.job_id, h.round, h.start, h.stop) for h in out] == [("w1", 0, 0, 5)]
    assert not store.redis.exists(store.keys.share_job_key("w1"), store.keys.share_job_ranges_key("w1"))
    assert store.fair_share.in_flight("q8") == {"w1": 1} and store.fair_share.org_in_flight("wo") == 5
    lease = '["runner.app","w1-0-0",["w1","t@1",0,5]]'
    assert store.redis.zscore(store.keys.leases_key(), lease) is not None
    record = store.redis.hgetall(store.keys.job_key("w1"))
    assert record["batches_total"] == "1" and record["fanned_out"] == "true" and "share_batch" in record
    assert store.redis.smembers(store.keys.tasks_key("w1")) == {"partition-task", "w1-0-0"}
    assert take_whole(store, facts) == out  # a replay: counted once
    assert store.fair_share.org_in_flight("wo") == 5
    assert store.fair_share.forget("w1")  # it ended: its slot and its org's pieces are free
    assert store.fair_share.in_flight("q8") == {} and store.fair_share.org_in_flight("wo") == 0


def test_a_job_of_more_batches_or_over_its_orgs_quota_is_not_handed_out_whole(store: StatusStore) -> None:
    running_record(store, "w3")
    assert take_whole(store, holding("w3", 5, org="wn", queue="q10", kind="unknown-kind")) == []  # probes: 1 a batch
    store.fleet.note_piece_seconds("kw", 0.0001)
    store.redis.hset(store.keys.org_quota_key("wq"), "max_pieces_in_flight", 3)
    assert take_whole(store, holding("w3", 5, org="wq", queue="q10", kind="kw")) == []
    assert store.fair_share.in_flight("q10") == {} and store.fair_share.org_in_flight("wq") == 0
    assert "share_batch" not in store.redis.hgetall(store.keys.job_key("w3"))


def test_a_whole_jobs_batch_that_stops_early_has_its_rest_held(store: StatusStore) -> None:
    store.fleet.note_piece_seconds("kw", 0.0001)
    running_record(store, "w2")
    facts = holding("w2", 5, org="wb", queue="q9", kind="kw")
    assert [(h.start, h.stop) for h in take_whole(store, facts)] == [(0, 5)]
    assert store.fair_share.give_back("q9", "w2", "w2-0-0", 2, 5, holding=facts)  # ran 0..1, then a newcomer came
    assert store.fair_share.in_flight("q9") == {} and store.fair_share.org_in_flight("wb") == 0
    assert "share_batch" not in store.redis.hgetall(store.keys.job_key("w2"))  # held now: forgotten as such
    assert [(h.job_id, h.start, h.stop) for h in take(store, "q9", capacity=1)] == [("w2", 2, 5)]
    assert store.fair_share.forget("w2")
    assert store.fair_share.in_flight("q9") == {} and not store.redis.exists(store.keys.share_job_key("w2"))
    facts = holding("w4", 5, org="wb", queue="q9", kind="kw")
    running_record(store, "w4")
    take_whole(store, facts)
    store.redis.hset(store.keys.job_key("w4"), "state", json.dumps("cancelled"))  # it ended meanwhile
    assert not store.fair_share.give_back("q9", "w4", "w4-0-0", 2, 5, holding=facts)
    assert store.fair_share.in_flight("q9") == {} and not store.redis.exists(store.keys.share_job_key("w4"))
