"""Admission sends a job's partition task in the transaction that writes the job when the
broker is the store's Redis (issue 24): the task and Celery's ``task-sent`` event (what
Flower shows) appear exactly when the record does, and never for a job the org's
``max_queued_jobs`` refuses; with a broker elsewhere the task is sent after the record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from runner import Client, JobState, QuotaExceeded, get_settings
from runner.dispatch import PARTITION
from runner.local import embedded_redis
from tests.conftest import TEST_MODULES
from tests.test_api_round_trips import RoundTrips
from tests.test_dispatch_batch import body_of

pytestmark = pytest.mark.timeout(120)

QUEUE = "control"
SQUARES = {"partitioner": {"count": 2}}


@pytest.fixture(scope="module")
def redis_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with embedded_redis(tmp_path_factory.mktemp("one")) as one, embedded_redis(tmp_path_factory.mktemp("two")) as two:
        yield one, two


def client_on(broker: str, store: str, org: str) -> Client:
    return Client(settings=get_settings(broker_url=broker, result_backend=store, store_url=store,
                                        include=TEST_MODULES), org=org)


def queued_ids(url: str) -> list[str]:
    return [body_of(m)[1]["id"] for m in redis.Redis.from_url(url).lrange(QUEUE, 0, -1)]


def sent_events(url: str) -> redis.client.PubSub:
    events = redis.Redis.from_url(url).pubsub()
    events.psubscribe("/*.celeryev/task.*")  # what Celery's event receiver (Flower) subscribes to
    assert events.get_message(timeout=5)["type"] == "psubscribe"
    return events


def test_a_submit_writes_the_job_and_sends_its_task_and_event_in_one_round_trip(redis_pair, monkeypatch):
    url = redis_pair[0]
    client = client_on(url, url, "send-one")
    client.submit("squares", params=SQUARES)  # warm: scripts, the queue's declaration
    events = sent_events(url)
    trips = RoundTrips(monkeypatch)
    job, cost = trips.of(lambda: client.submit("squares", params=SQUARES))
    assert cost == 1  # no worker here: the record, the task and the event in one transaction
    (task_id,) = client.store.tasks(job.id)
    assert task_id in queued_ids(url)
    (_, kwargs, _), headers = body_of(redis.Redis.from_url(url).lrange(QUEUE, 0, 0)[0])
    assert headers["task"] == PARTITION and headers["id"] == task_id and headers["argsrepr"].startswith(f"['{job.id}'")
    event = events.get_message(timeout=5)
    assert event is not None and event["channel"] == b"/0.celeryev/task.sent"
    fields, _ = body_of(event["data"])
    assert fields["type"] == "task-sent" and fields["uuid"] == task_id and fields["queue"] == QUEUE
    assert job.status().state is JobState.QUEUED


def test_a_job_over_max_queued_jobs_sends_no_task_and_no_event(redis_pair):
    url = redis_pair[0]
    client = client_on(url, url, "send-full")
    client.store.org_quotas.set("send-full", max_queued_jobs=1)
    client.submit("squares", params=SQUARES)
    before, events = queued_ids(url), sent_events(url)
    with pytest.raises(QuotaExceeded):
        client.submit("squares", params=SQUARES)
    assert queued_ids(url) == before and len(client.jobs()) == 1
    assert events.get_message(timeout=0.5) is None  # bounded read of what would already be there, not a wait


def test_with_the_broker_elsewhere_the_task_goes_to_the_broker_after_the_record(redis_pair):
    broker, store = redis_pair
    client = client_on(broker, store, "send-apart")
    job = client.submit("squares", params=SQUARES)
    (task_id,) = client.store.tasks(job.id)
    assert task_id in queued_ids(broker) and task_id not in queued_ids(store)
    assert job.status().state is JobState.QUEUED


def test_a_replayed_create_transaction_sends_the_task_once(redis_pair):
    url = redis_pair[0]
    client = client_on(url, url, "send-replay")
    job = client.submit("squares", params=SQUARES)
    (task_id,) = client.store.tasks(job.id)
    raw = redis.Redis.from_url(url)
    (message,) = [m for m in raw.lrange(QUEUE, 0, -1) if body_of(m)[1]["id"] == task_id]
    record = {**client.store.fields(job.id, *job.status().model_dump()), "id": job.id}
    # what redis_connect's retry does when a transaction's reply was lost: the same writes again
    client.store.create(record, expire_seconds=60, tasks=[task_id], send=[("lpush", (QUEUE, message))])
    assert queued_ids(url).count(task_id) == 1
