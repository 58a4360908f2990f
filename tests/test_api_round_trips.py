"""What one API request costs the store, counted, never timed: ``GET /v1/jobs/{id}``
checks the token, counts the request against the key's limit and reads the job and its
metrics in ONE round trip (``AUTHENTICATE_READ``), and still refuses what it must.

The app runs in this process (an ASGI transport, no sockets of its own) over a private
Redis, so every request the store's connections send is this app's: a round trip is one
``send_packed_command`` (a pipeline sends all its commands at once)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis.connection

from runner import get_settings
from runner.api.app import create_app
from runner.api.keys import ApiKeys
from runner.local import embedded_redis
from runner.store import StatusStore

pytestmark = pytest.mark.timeout(120)

SQUARES = {"template": "squares@1.0.0", "params": {"partitioner": {"count": 2}}}


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with embedded_redis(tmp_path_factory.mktemp("round-trips")) as url:
        yield url


def make_app(url: str, rate_limit: str = "1000/hour") -> Any:
    settings = get_settings(broker_url=url, result_backend=url, store_url=url, include=["tests.jobs"], ui=False,
                            api_rate_limit=rate_limit)
    return create_app(settings)


class RoundTrips:
    """Counts what every Redis connection of this process sends: one count per round trip."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = redis.connection.AbstractConnection.send_packed_command

        def counted(connection: Any, command: Any, check_health: bool = True) -> None:
            self.count += 1
            original(connection, command, check_health)

        monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)

    def of(self, call: Callable[[], Any]) -> tuple[Any, int]:
        before = self.count
        result = call()
        return result, self.count - before


def call(app: Any, method: str, path: str, token: str | None = None, body: dict | None = None) -> httpx.Response:
    """One request to the in-process app."""
    async def go() -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api:
            return await api.request(method, path, headers=headers, json=body)
    return asyncio.run(go())


def token_of(app: Any, url: str, org: str) -> str:
    _, key = ApiKeys(StatusStore(url)).create(org)
    answer = call(app, "POST", "/v1/auth/access_token", body={"apiKey": key})
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


def test_reading_a_job_costs_one_round_trip(private_redis, monkeypatch):
    app = make_app(private_redis)
    token = token_of(app, private_redis, "trips-a")
    created = call(app, "POST", "/v1/jobs", token, SQUARES)
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    call(app, "GET", f"/v1/jobs/{job_id}", token)  # the first call loads the script into Redis
    trips = RoundTrips(monkeypatch)
    answer, cost = trips.of(lambda: call(app, "GET", f"/v1/jobs/{job_id}", token))
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == job_id and answer.json()["state"] == "queued" and answer.json()["metrics"] == {}
    assert cost == 1  # token, rate count, record and metrics together (the issue allows 2)


def test_the_one_round_trip_still_hides_other_orgs_jobs_and_refuses_bad_tokens(private_redis, monkeypatch):
    app = make_app(private_redis)
    mine, theirs = token_of(app, private_redis, "trips-b"), token_of(app, private_redis, "trips-c")
    job_id = call(app, "POST", "/v1/jobs", mine, SQUARES).json()["id"]
    trips = RoundTrips(monkeypatch)
    answer, cost = trips.of(lambda: call(app, "GET", f"/v1/jobs/{job_id}", theirs))
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found" and cost == 1
    assert "trips-b" not in answer.text  # nothing of the other org's record leaks
    assert call(app, "GET", f"/v1/jobs/{job_id}").status_code == 401
    assert call(app, "GET", f"/v1/jobs/{job_id}", mine[:-2] + "xx").status_code == 401
    assert call(app, "GET", "/v1/jobs/no-such-job", mine).status_code == 404


def test_a_jobs_own_key_reads_only_its_job_in_one_round_trip(private_redis, monkeypatch):
    app = make_app(private_redis)
    token = token_of(app, private_redis, "trips-d")
    other = call(app, "POST", "/v1/jobs", token, SQUARES).json()["id"]
    attached = call(app, "POST", "/v1/jobs", token, {"attach": True, "name": "own"})
    assert attached.status_code == 201, attached.text
    exchanged = call(app, "POST", "/v1/auth/access_token", body={"apiKey": attached.json()["apiKey"]})
    job_token = exchanged.json()["token"]
    trips = RoundTrips(monkeypatch)
    own, cost = trips.of(lambda: call(app, "GET", f"/v1/jobs/{attached.json()['id']}", job_token))
    assert own.status_code == 200 and own.json()["name"] == "own" and cost == 1
    assert call(app, "GET", f"/v1/jobs/{other}", job_token).status_code == 404


def test_reading_a_job_counts_against_the_keys_limit(private_redis):
    app = make_app(private_redis, rate_limit="3/hour")
    token = token_of(app, private_redis, "trips-e")  # the exchange counts too: 1 of 3
    job_id = call(app, "POST", "/v1/jobs", token, SQUARES).json()["id"]  # 2 of 3
    assert call(app, "GET", f"/v1/jobs/{job_id}", token).status_code == 200  # 3 of 3
    refused = call(app, "GET", f"/v1/jobs/{job_id}", token)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert job_id not in refused.text


def test_submitting_a_job_costs_two_round_trips(private_redis, monkeypatch):
    app = make_app(private_redis)
    token = token_of(app, private_redis, "trips-f")
    assert call(app, "POST", "/v1/jobs", token, SQUARES).status_code == 201  # scripts loaded, queue declared
    trips = RoundTrips(monkeypatch)
    answer, cost = trips.of(lambda: call(app, "POST", "/v1/jobs", token, SQUARES))
    assert answer.status_code == 201 and answer.json()["state"] == "queued", answer.text
    assert cost == 2  # the token and rate count; the record with the partition task and its task-sent event


def test_a_submits_answer_is_the_record_as_stored(private_redis):
    app = make_app(private_redis)
    token = token_of(app, private_redis, "trips-g")
    body = {**SQUARES, "name": "as stored", "priority": "high", "retention_hours": 2.5, "max_failed_pieces": 1}
    created = call(app, "POST", "/v1/jobs", token, body)
    assert created.status_code == 201, created.text
    read = call(app, "GET", f"/v1/jobs/{created.json()['id']}", token)
    assert read.status_code == 200, read.text
    assert created.json() == {**read.json(), "apiKey": None}  # the answer needed no read, and says the same
