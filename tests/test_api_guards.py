"""The HTTP API's guards: body size, rate limit, and bad input refused by name with
nothing written or queued."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlparse

import httpx
import pytest

from runner.api.keys import RateLimit
from runner.local import wait_until
from tests.api_fixtures import run_api


def in_a_fresh_window(spec: str, room: float = 20.0) -> None:
    """Wait until the rate limit's current fixed window has ``room`` seconds left: the
    requests a test counts must all fall in one window (across a boundary the count
    starts over, and over-the-limit requests pass)."""
    limit = RateLimit.parse(spec)
    wait_until(lambda: limit.seconds - time.time() % limit.seconds >= room, f"a {spec} window with room",
               timeout=limit.seconds)


def job_count(api: httpx.Client) -> int:
    return api.get("/v1/jobs").json()["total"]


def test_a_3_mib_body_gets_413(api_a):
    answer = api_a.post("/v1/jobs", content=b"{" + b" " * (3 * 1024 * 1024) + b"}",
                        headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "body_too_large"


def test_413_comes_from_content_length_before_the_body_is_sent(api_server):
    """The server answers on the headers alone: the client sends no byte of the body."""
    url = urlparse(api_server.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 3145728\r\n\r\n")
        answer = sock.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 413"), answer[:200]


def test_a_chunked_body_over_the_limit_gets_413(api_a):
    def chunks():
        for _ in range(3 * 16):
            yield b" " * 65536

    answer = api_a.post("/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 413


def test_over_the_rate_limit_gets_429_with_retry_after(api_env, server_dir, org_a):
    with run_api({**api_env, "RUNNER_API_RATE_LIMIT": "5/minute"}, server_dir / "api-limited.log") as server:
        key = server.create_key(org_a)
        in_a_fresh_window("5/minute")
        with server.client(server.token(key["key"])) as api:  # the exchange counts: 1
            codes = [api.get("/v1/templates").status_code for _ in range(6)]
            assert codes[:4] == [200] * 4 and codes[4:] == [429, 429], codes
            limited = api.get("/v1/templates")
            assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60
            assert limited.json()["error"]["code"] == "rate_limited"
        guess = httpx.post(f"{server.url}/v1/auth/access_token", json={"apiKey": f"rk_{key['id']}_guess"})
        assert guess.status_code == 429  # guesses at a key count too: no unbounded slow hashing
        other = server.create_key(org_a)  # the limit is per key
        with server.client(server.token(other["key"])) as api:
            assert api.get("/v1/templates").status_code == 200


def test_the_rate_limit_is_shared_by_api_processes(api_env, server_dir, org_a):
    env = {**api_env, "RUNNER_API_RATE_LIMIT": "6/minute"}
    with run_api(env, server_dir / "api-shared-1.log") as one, run_api(env, server_dir / "api-shared-2.log") as two:
        key = one.create_key(org_a)["key"]
        in_a_fresh_window("6/minute")
        token = one.token(key)
        with one.client(token) as first, two.client(token) as second:
            codes = [client.get("/v1/templates").status_code for client in (first, second) * 4]
    assert codes.count(200) == 5 and codes[-3:] == [429, 429, 429], codes


@pytest.mark.parametrize("body,field", [
    ({"template": "squares", "params": {"partitioner": {"count": "x"}}}, "partitioner.count"),
    ({"template": "squares", "params": {"app": {"oops": 1}}}, "app.oops"),
    ({"template": "squares", "params": {"apps": {}}}, "apps"),
    ({"template": "no-such-template"}, "template"),
    ({"template": "squares", "source": "ftp://host/file"}, "source"),
    ({"template": "squares", "destination": "file:///etc/passwd"}, "destination"),
    ({"template": "squares", "source": "https://user:pw@example.com/x"}, "source"),
    ({"template": "squares", "job_timeout": -1}, "job_timeout"),
    ({"template": "squares", "task_timeout": "soon"}, "task_timeout"),
    ({"template": "squares", "max_retries": 1.5}, "max_retries"),
    ({"template": "squares", "job_timout": 5}, "job_timout"),
    ({"template": "squares", "org": "someone-else"}, "org"),
    ({"source": "bypass:"}, "template"),
    ({"template": "with-model"}, "inputs.model"),
    ({"template": "with-model", "inputs": {"model": "s3://b/m", "modle": "s3://b/m"}}, "inputs.modle"),
    ({"template": "squares", "params": "x"}, "params"),
    ({"template": "squares", "draft": True, "params": {"partitioner": {"count": -1}}}, "partitioner.count"),
])
def test_bad_input_is_refused_naming_the_field_and_nothing_is_queued(api_client, body, field):
    api = api_client()
    answer = api.post("/v1/jobs", json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert field in [f["field"] for f in error["fields"]], error
    assert job_count(api) == 0


def test_malformed_json_is_a_422_naming_the_body(api_client):
    api = api_client()
    for content in (b"{not json", b"[1, 2]", b"", b"null"):
        answer = api.post("/v1/jobs", content=content, headers={"Content-Type": "application/json"})
        assert answer.status_code == 422, (content, answer.text)
        assert answer.json()["ok"] is False and answer.json()["error"]["fields"]
    assert job_count(api) == 0


def test_a_bodys_org_never_overrides_the_keys(api_client, api_b, org_b):
    api = api_client()
    assert api.post("/v1/jobs", json={"template": "squares", "org": org_b, "draft": True}).status_code == 422
    assert job_count(api) == 0 and all(j["org"] == org_b for j in api_b.get("/v1/jobs").json()["items"])


def test_malformed_job_ids_are_refused_not_looked_up(api_a):
    for job_id in ("x:events", "a" * 65, "..%2F..%2Fetc"):
        answer = api_a.get(f"/v1/jobs/{job_id}")
        assert answer.status_code in (404, 422), (job_id, answer.text)


def test_unknown_routes_and_methods_keep_the_error_shape(api_a):
    missing = api_a.get("/v1/nothing")
    assert missing.status_code == 404 and missing.json()["ok"] is False
    wrong = api_a.put("/v1/jobs")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "http_405"


def test_errors_carry_a_request_id(api_a):
    answer = api_a.get("/v1/jobs/0000000000000000")
    assert answer.status_code == 404
    assert answer.json()["error"]["request_id"] == answer.headers["x-request-id"]


def test_an_unexpected_error_is_a_500_with_a_request_id_and_no_traceback(api_env, server_dir, tmp_path):
    """Redis going away under a running API is no client's fault: 500, an id to quote, no internals."""
    import contextlib

    from runner.local import embedded_redis

    redis_server = contextlib.ExitStack()
    url = redis_server.enter_context(embedded_redis(tmp_path))
    env = {**api_env, "RUNNER_BROKER_URL": url, "RUNNER_RESULT_BACKEND": url, "RUNNER_STORE_URL": url,
           "RUNNER_REDIS_OUTAGE_SECONDS": "1"}
    try:
        with run_api(env, server_dir / "api-redis-gone.log") as server:
            with server.client(server.token(server.create_key("acme")["key"])) as api:
                assert api.get("/v1/jobs").status_code == 200
                redis_server.close()
                answer = api.get("/v1/jobs")
                health = httpx.get(f"{server.url}/healthz")
    finally:
        redis_server.close()
    assert answer.status_code == 500, answer.text
    error = answer.json()["error"]
    assert error["code"] == "internal_error" and error["request_id"] == answer.headers["x-request-id"]
    assert error["request_id"] in answer.json()["message"]
    assert "Traceback" not in answer.text and "redis" not in answer.text.lower()
    assert health.status_code == 503
