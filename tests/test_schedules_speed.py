"""What one schedule firing costs the store, counted structurally (round trips, not
time): a sweep that claims one due time and queues its job — the due read, the claim,
the overlap check, the job's record and the firing's record — in at most five round
trips to the status store. The partition task goes to the broker, which is not counted.

The schedule is hourly and each sweep is told the time is its due time, so the real
worker (there for its heartbeat, which admission reads) never sweeps it first."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner import Client, get_settings
from runner.local import embedded_redis, worker_process
from runner.schedules.sweep import sweep
from tests.conftest import TEST_MODULES
from tests.round_trips import counted_round_trips

pytestmark = pytest.mark.timeout(120)

MAX_ROUND_TRIPS = 5


def test_one_firing_takes_at_most_five_store_round_trips(tmp_path: Path, file_roots) -> None:
    with embedded_redis(tmp_path) as url, worker_process(url, include=TEST_MODULES, concurrency=1,
                                                        log_path=tmp_path / "w.log"):
        client = Client(settings=get_settings(broker_url=url, result_backend=url, store_url=url,
                                              include=TEST_MODULES, file_roots=file_roots))
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
