"""A sweep admits its due firings as one batch (``admission.admit_many``): every job's
record in one transaction and every partition task in one publish, so a batch of many
firings costs the store as many round trips as a lone one; each job still runs (the
batched messages and their task-sent events are real Celery tasks); and a firing that
admission refuses (its org's ``max_queued_jobs``, a source gone since create) is
skipped with its reason while the batch's other firings fire.

The schedules are hourly and each sweep is told the time is their due time, so the real
worker never sweeps them first (as in ``tests/test_schedules_speed.py``)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from runner import Client, get_settings
from runner.local import embedded_redis, wait_until, worker_process
from runner.schedules.sweep import FIRE_THREADS, SWEEP_LIMIT, sweep
from tests.conftest import TEST_MODULES
from tests.round_trips import counted_round_trips

pytestmark = pytest.mark.timeout(120)

FIRINGS = 30
MAX_ROUND_TRIPS = 5  # a batch's, however many firings it holds


def client_for(url: str, file_roots, org: str | None = None) -> Client:
    return Client(settings=get_settings(broker_url=url, result_backend=url, store_url=url, include=TEST_MODULES,
                                        file_roots=file_roots), org=org)


def newest_due(client: Client) -> float:
    return max(info.next_due.timestamp() for info in client.schedules())


def test_a_batch_of_firings_costs_the_round_trips_of_one_and_every_job_runs(tmp_path: Path, file_roots) -> None:
    with embedded_redis(tmp_path) as url, worker_process(url, include=TEST_MODULES, concurrency=2,
                                                        log_path=tmp_path / "w.log"):
        client = client_for(url, file_roots)
        names = [f"b{i:02d}" for i in range(FIRINGS)]
        for i, name in enumerate(names):
            client.schedule("squares@1", name=name, every="1h", params={"partitioner": {"count": i % 3 + 1}},
                            max_concurrent=5)
        due = newest_due(client)
        assert sweep(client.services, now=due + 0.01) == FIRINGS  # the first sweep learns the definitions
        with counted_round_trips(client.store.redis) as trips:
            assert sweep(client.services, now=due + 3600.01) == FIRINGS
        assert len(trips) <= MAX_ROUND_TRIPS, "\n".join(repr(sent[:160]) for sent in trips)

        jobs = [job for name in names for job in client.get_schedule(name).jobs()]
        assert len(jobs) == 2 * FIRINGS and len({(job.schedule, job.due_at) for job in jobs}) == 2 * FIRINGS
        wait_until(lambda: all(client.get(job.id).status().state.value == "completed" for job in jobs),
                   "every batched job completed", timeout=90)
        for job in (client.get(job.id) for job in jobs):  # each ran its own schedule's params
            count = job.status().params["partitioner"]["count"]
            assert job.result() == sum(i * i for i in range(count))
        assert {info.firings for info in client.schedules()} == {2}


def test_a_refused_firing_is_skipped_with_its_reason_and_the_rest_of_its_batch_fires(
        tmp_path: Path, file_roots) -> None:
    with embedded_redis(tmp_path) as url:
        free, capped = client_for(url, file_roots), client_for(url, file_roots, org="capped")
        capped.store.org_quotas.set("capped", max_queued_jobs=1)
        book = tmp_path / "book.txt"
        book.write_text("the cat\nthe dog\n")
        free.schedule("wordcount", name="gone", every="1h", source=book.as_uri())
        for i in range(3):
            free.schedule("squares@1", name=f"free-{i}", every="1h")
            capped.schedule("squares@1", name=f"capped-{i}", every="1h")
        book.unlink()  # the source is gone since create: that firing fails, the others do not
        due = max(newest_due(free), newest_due(capped))

        assert sweep(free.services, now=due + 0.01) == 7

        assert all(free.get_schedule(f"free-{i}").info().firings == 1 for i in range(3))
        gone = free.get_schedule("gone").info()
        assert gone.firings == 0 and gone.skipped == 1
        reason = next(e["reason"] for e in free.get_schedule("gone").events() if e["type"] == "skipped")
        assert reason.startswith("submit failed:") and "book.txt" in reason
        infos = [capped.get_schedule(f"capped-{i}").info() for i in range(3)]
        assert sorted(info.firings for info in infos) == [0, 0, 1] and sum(info.skipped for info in infos) == 2
        refused = [e["reason"] for i in range(3) for e in capped.get_schedule(f"capped-{i}").events()
                   if e["type"] == "skipped"]
        assert len(refused) == 2 and all("max_queued_jobs" in reason for reason in refused), refused
        assert len(capped.jobs(limit=100)) == 1  # a refused job left nothing behind
        assert len(free.jobs(limit=100)) == 3


def test_two_sweepers_each_firing_batches_on_threads_fire_every_due_time_once(tmp_path: Path, file_roots) -> None:
    """More due schedules than one sweep's threads take at once, swept by two sweepers
    (two stores: two processes' caches) racing, each firing its batches on its threads."""
    count = SWEEP_LIMIT * FIRE_THREADS + SWEEP_LIMIT // 2
    with embedded_redis(tmp_path) as url:
        sweepers = [client_for(url, file_roots) for _ in range(2)]
        for i in range(count):
            sweepers[0].schedule("squares@1", name=f"t{i:04d}", every="1h", max_concurrent=5)
        due = newest_due(sweepers[0])
        claimed = 0
        with ThreadPoolExecutor(2) as pool:
            while claimed < count:  # each sweep takes what is due and unclaimed (now given: one read each)
                wins = list(pool.map(lambda c: sweep(c.services, now=due + 0.01), sweepers))
                assert sum(wins) > 0, f"a round claimed nothing with {count - claimed} due left"
                claimed += sum(wins)
        assert claimed == count
        jobs = sweepers[1].jobs(limit=2 * count)
        assert len(jobs) == count and len({job.schedule for job in jobs}) == count
        assert {info.firings for info in sweepers[1].schedules()} == {1}
