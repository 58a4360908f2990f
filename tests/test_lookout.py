"""The worker's lookout (``workers/lookout.py``): the main process reads the control
queue's length for its pool processes, which read that sighting between pieces without a
round trip — and read the queue themselves when no lookout has written lately.

A control queue of the test's own (no worker consumes it) stands in for the fleet's, so
the session worker is untouched; messages are pushed onto it directly.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from runner.local import wait_until
from tests.round_trips import counted_round_trips
from workers import lookout, runtime

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def control(settings, redis_url: str) -> Iterator[str]:
    """This process's runtime configured with a control queue of the test's own."""
    queue = f"lookout-test-{uuid.uuid4().hex[:8]}"
    previous = runtime._settings
    runtime.configure(settings.model_copy(update={"control_queue": queue}))
    lookout._LAYOUT.pack_into(lookout._shared, 0, 0.0, 0)  # no sighting yet
    try:
        yield queue
    finally:
        redis.Redis.from_url(redis_url).delete(queue)
        lookout._LAYOUT.pack_into(lookout._shared, 0, 0.0, 0)
        if previous is not None:
            runtime.configure(previous)


def test_without_a_lookout_a_batch_reads_the_queue_itself(control: str, redis_url: str) -> None:
    assert lookout.newcomer_waits() is False
    redis.Redis.from_url(redis_url).lpush(control, "a waiting task")
    assert lookout.newcomer_waits() is True


def sighting() -> tuple[float, int]:
    """(its age in seconds, the tasks it saw waiting)."""
    seen_at, waiting = lookout._LAYOUT.unpack_from(lookout._shared, 0)
    return time.monotonic() - seen_at, waiting


def test_the_lookout_writes_what_it_sees_until_stopped(control: str, redis_url: str) -> None:
    stopping = threading.Event()
    thread = lookout.start(stopping)
    try:
        broker = redis.Redis.from_url(redis_url)
        broker.lpush(control, "a waiting task")
        wait_until(lambda: sighting()[1] == 1, "the lookout to see the waiting task", timeout=10)
        broker.delete(control)
        wait_until(lambda: sighting()[1] == 0 and sighting()[0] < lookout.STALE_SECONDS,
                   "the lookout to see the queue empty", timeout=10)
    finally:
        stopping.set()
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_a_fresh_sighting_is_read_without_a_round_trip(control: str) -> None:
    lookout._LAYOUT.pack_into(lookout._shared, 0, time.monotonic(), 1)  # seen just now: one task waits
    broker_redis = runtime.store().broker(runtime.settings().broker_url).redis
    with counted_round_trips(broker_redis) as sent:
        seen = [lookout.newcomer_waits() for _ in range(1000)]
    assert all(seen)  # the queue itself is empty: this is the sighting
    assert sent == []  # a thousand looks between pieces, no round trip


def test_a_stale_sighting_is_not_trusted(control: str, redis_url: str) -> None:
    old = time.monotonic() - 2 * lookout.STALE_SECONDS
    lookout._LAYOUT.pack_into(lookout._shared, 0, old, 1)  # a lookout that stopped, last seeing a task
    assert lookout.newcomer_waits() is False  # the queue, read here, is empty
