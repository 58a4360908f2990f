"""What one schedule firing costs the store, counted structurally (round trips, not
time): a sweep that claims one due time and queues its job — the due read, the claim,
the overlap check, the job's record and the firing's record — in at most five round
trips to the status store. The partition task goes to the broker, which is not counted.
And the batch claim behind it: two sweepers racing over the same due batch fire each
due time once, and a schedule created again under its name fires with its new
definition, not the one a sweeper kept.

The schedules are hourly and each sweep is told the time is their due time, so a real
worker (there for its heartbeat, which admission reads) never sweeps them first."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from runner import Client, get_settings
from runner.local import embedded_redis, worker_process
from runner.schedules.sweep import sweep
from tests.conftest import TEST_MODULES
from tests.round_trips import counted_round_trips

pytestmark = pytest.mark.timeout(120)

MAX_ROUND_TRIPS = 5


def client_for(url: str, file_roots) -> Client:
    return Client(settings=get_settings(broker_url=url, result_backend=url, store_url=url, include=TEST_MODULES,
                                        file_roots=file_roots))


def test_one_firing_takes_at_most_five_store_round_trips(tmp_path: Path, file_roots) -> None:
    with embedded_redis(tmp_path) as url, worker_process(url, include=TEST_MODULES, concurrency=1,
                                                        log_path=tmp_path / "w.log"):
        client = client_for(url, file_roots)
        sched = client.schedule("squares@1", name="hourly", every="1h", params={"partitioner": {"count": 1}},
                                max_concurrent=5)
        first = sched.info().next_due.timestamp()
        assert sweep(client.services, now=first + 0.01) == 1  # the process's first firing fills its caches
        with counted_round_trips(client.store.redis) as trips:
            assert sweep(client.services, now=first + 3600.01) == 1
        jobs = sched.jobs()
        assert [round(job.due_at.timestamp()) for job in jobs] == [round(first + 3600), round(first)]
        assert sched.info().firings == 2
        assert len(trips) <= MAX_ROUND_TRIPS, "\n".join(repr(sent[:160]) for sent in trips)


def test_two_sweepers_racing_over_one_due_batch_fire_each_due_time_once(tmp_path: Path, file_roots) -> None:
    with embedded_redis(tmp_path) as url:
        sweepers = [client_for(url, file_roots) for _ in range(2)]  # two stores: two processes' caches
        names = [f"s{i:02d}" for i in range(40)]
        for name in names:
            sweepers[0].schedule("squares@1", name=name, every="1h", max_concurrent=5)
        due = max(info.next_due.timestamp() for info in sweepers[0].schedules())
        for hour in range(2):  # the first round teaches each sweeper the definitions
            with ThreadPoolExecutor(2) as pool:
                claimed = list(pool.map(lambda c: sweep(c.services, now=due + hour * 3600 + 0.01), sweepers))
            assert sum(claimed) == len(names), claimed
        for name in names:
            jobs = sweepers[1].get_schedule(name).jobs()
            assert len({job.due_at for job in jobs}) == len(jobs) == 2, (name, jobs)


def test_a_schedule_created_again_under_its_name_fires_with_its_new_definition(tmp_path: Path, file_roots) -> None:
    with embedded_redis(tmp_path) as url:
        client = client_for(url, file_roots)
        first = client.schedule("squares@1", name="again", every="1h", params={"partitioner": {"count": 2}})
        assert sweep(client.services, now=first.info().next_due.timestamp() + 0.01) == 1  # kept: count 2
        first.delete()
        second = client.schedule("squares@1", name="again", every="1h", params={"partitioner": {"count": 7}})
        assert sweep(client.services, now=second.info().next_due.timestamp() + 0.01) == 1
        jobs = second.jobs()
        assert [job.params["partitioner"]["count"] for job in jobs] == [7]
