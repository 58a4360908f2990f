"""A partition task and its ``task-sent`` event leave in one round trip (issue 24), and
are what they were: the task in its queue under its id, the event on Celery's event
channel where Flower reads it. A broker restart during the send still delivers the task."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from runner import get_settings
from runner.dispatch import PARTITION, make_celery, send_partition
from runner.local import embedded_redis
from tests.test_api_round_trips import RoundTrips
from tests.test_faults import redis_server

pytestmark = pytest.mark.timeout(120)

QUEUE = "runner.control"


@pytest.fixture(scope="module")
def broker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with embedded_redis(tmp_path_factory.mktemp("dispatch")) as url:
        yield url


def celery_for(url: str) -> Any:
    return make_celery(get_settings(broker_url=url, result_backend=url, store_url=url))


def body_of(envelope: bytes) -> Any:
    """The decoded body of a message as kombu's Redis transport stores or publishes it."""
    message = json.loads(envelope)
    return json.loads(base64.b64decode(message["body"])), message["headers"] if "headers" in message else {}


def test_a_task_and_its_sent_event_go_in_one_round_trip_as_celery_sends_them(broker_url, monkeypatch):
    celery, r = celery_for(broker_url), redis.Redis.from_url(broker_url)
    send_partition(celery, "warm", "squares@1.0.0", QUEUE, time.time() + 60)  # the queue declared once
    r.delete(QUEUE)
    events = r.pubsub()
    events.psubscribe("/*.celeryev/task.*")  # what Celery's event receiver (Flower) subscribes to
    assert events.get_message(timeout=5)["type"] == "psubscribe"
    trips = RoundTrips(monkeypatch)
    task_id, cost = trips.of(lambda: send_partition(celery, "job-1", "squares@1.0.0", QUEUE, time.time() + 60))
    assert cost == 1  # the task and its event, pipelined (Celery alone: two, each on a fresh client)
    (stored,) = r.lrange(QUEUE, 0, -1)
    (args, kwargs, _), headers = body_of(stored)
    assert args == ["job-1", "squares@1.0.0"] and kwargs == {}
    assert headers["id"] == task_id and headers["task"] == PARTITION and headers["expires"]
    event = events.get_message(timeout=5)
    assert event is not None and event["channel"] == b"/0.celeryev/task.sent"
    fields, _ = body_of(event["data"])
    assert fields["type"] == "task-sent" and fields["uuid"] == task_id and fields["name"] == PARTITION
    assert fields["queue"] == QUEUE and fields["routing_key"] == QUEUE


def test_a_task_sent_while_the_broker_restarts_still_arrives(tmp_path: Path):
    with redis_server(tmp_path) as server:
        celery, r = celery_for(server.url), redis.Redis.from_url(server.url)
        send_partition(celery, "warm", "squares@1.0.0", QUEUE, time.time() + 60)  # connected, queue declared
        server.stop()
        back = threading.Timer(1.0, server.start)  # the outage itself (the fault under test)
        back.start()
        try:
            task_id = send_partition(celery, "job-2", "squares@1.0.0", QUEUE, time.time() + 60)
        finally:
            back.join()
        ids = [body_of(m)[1]["id"] for m in r.lrange(QUEUE, 0, -1)]
        assert task_id in ids and ids.count(task_id) == 1
