"""Keys and tokens of the HTTP API: key -> token; every other route needs a live token."""

from __future__ import annotations

import json
import time

import httpx
import redis

from runner.api.keys import ApiKeys
from runner.store import StatusStore
from prometheus_client.parser import text_string_to_metric_families

from tests.api_fixtures import METRICS_TOKEN, run_api


def test_healthz_needs_no_token(api_server):
    answer = httpx.get(f"{api_server.url}/healthz")
    assert answer.status_code == 200 and answer.json() == {"ok": True}
    assert answer.headers["x-request-id"]


def test_metrics_need_a_token_and_healthz_does_not(api_server):
    for headers in ({}, {"Authorization": "Bearer not-the-metrics-token"}, {"Authorization": "rt_0123456789ab_forged"}):
        answer = httpx.get(f"{api_server.url}/metrics", headers=headers, timeout=30)
        assert answer.status_code == 401, headers
        assert answer.json()["error"]["code"] == "unauthorized" and "runner_" not in answer.text
    assert httpx.get(f"{api_server.url}/healthz", timeout=30).status_code == 200


def _metric_orgs(answer: httpx.Response) -> set[str]:
    assert answer.status_code == 200, answer.text
    families = {family.name: family.samples for family in text_string_to_metric_families(answer.text)}
    return {sample.labels["org"] for sample in families["runner_jobs"]}


def test_the_metrics_token_reads_every_org_and_an_org_token_only_its_own(api_server, api_a, api_b, org_a, org_b):
    for api in (api_a, api_b):
        answer = api.post("/v1/jobs", json={"template": "squares", "params": {"partitioner": {"count": 2}}})
        assert answer.status_code == 201, answer.text
    everyone = httpx.get(f"{api_server.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30)
    assert {org_a, org_b} <= _metric_orgs(everyone)
    assert _metric_orgs(api_a.get("/metrics")) == {org_a}
    assert _metric_orgs(api_b.get("/metrics")) == {org_b}


def test_openapi_and_docs_are_served(api_server):
    spec = httpx.get(f"{api_server.url}/openapi.json").json()
    assert "/v1/jobs/{job_id}" in spec["paths"] and "/v1/auth/access_token" in spec["paths"]
    assert httpx.get(f"{api_server.url}/docs").status_code == 200


def test_key_is_exchanged_for_a_token_with_expiry_as_a_string(api_server, org_a):
    key = api_server.create_key(org_a)
    assert key["org"] == org_a and key["key"].startswith(f"rk_{key['id']}_")
    answer = httpx.post(f"{api_server.url}/v1/auth/access_token", json={"apiKey": key["key"]})
    assert answer.status_code == 200
    body = answer.json()
    assert body["expiresIn"] == "3600" and body["scope"] == f"org:{org_a}" and body["token"].startswith("rt_")


def test_token_works_bare_or_as_bearer(api_server, org_a):
    token = api_server.token(api_server.create_key(org_a)["key"])
    for header in (token, f"Bearer {token}", f"bearer {token}"):
        answer = httpx.get(f"{api_server.url}/v1/templates", headers={"Authorization": header})
        assert answer.status_code == 200, (header[:10], answer.text)


def test_missing_bad_or_malformed_tokens_get_401(api_server):
    for headers in ({}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Bearer nope"},
                    {"Authorization": "rt_0123456789ab_forged"}, {"Authorization": "Basic a b"}):
        answer = httpx.get(f"{api_server.url}/v1/templates", headers=headers)
        assert answer.status_code == 401, headers
        assert answer.json()["ok"] is False and answer.json()["error"]["code"] == "unauthorized"


def test_wrong_api_key_gets_401(api_server, org_a):
    key = api_server.create_key(org_a)
    for wrong in (key["key"] + "x", "rk_" + key["id"] + "_guess", "nonsense"):
        answer = httpx.post(f"{api_server.url}/v1/auth/access_token", json={"apiKey": wrong})
        assert answer.status_code == 401, wrong


def test_revoking_a_key_kills_its_tokens_at_once(api_server, org_a):
    key = api_server.create_key(org_a)
    with api_server.client(api_server.token(key["key"])) as client:
        assert client.get("/v1/templates").status_code == 200
        assert "revoked" in api_server.cli("keys", "revoke", key["id"]).stdout
        assert client.get("/v1/templates").status_code == 401
    answer = httpx.post(f"{api_server.url}/v1/auth/access_token", json={"apiKey": key["key"]})
    assert answer.status_code == 401
    assert api_server.cli("keys", "revoke", key["id"], check=False).returncode != 0


def test_token_expires(api_env, server_dir, org_a):
    with run_api({**api_env, "RUNNER_API_TOKEN_SECONDS": "1"}, server_dir / "api-short-tokens.log") as server:
        key = server.create_key(org_a)
        answer = httpx.post(f"{server.url}/v1/auth/access_token", json={"apiKey": key["key"]}).json()
        assert answer["expiresIn"] == "1"
        with server.client(answer["token"]) as client:
            assert client.get("/v1/templates").status_code == 200
            deadline = time.monotonic() + 30
            while client.get("/v1/templates").status_code != 401:
                assert time.monotonic() < deadline, "token never expired"
                time.sleep(0.2)


def test_keys_are_stored_only_as_slow_hashes(api_server, redis_url, org_a):
    key = api_server.create_key(org_a)
    token = api_server.token(key["key"])
    store = StatusStore(redis_url)
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    record = raw.hgetall(store.api_key_key(key["id"]))
    assert record["org"] == org_a and record["hash"].startswith("$argon2")
    secret = key["key"].split("_", 2)[2]
    for name in raw.scan_iter(f"{store.prefix}:api:*"):
        kind = raw.type(name)
        values = (raw.hgetall(name).values() if kind == "hash" else [raw.get(name)] if kind == "string"
                  else raw.smembers(name) if kind == "set" else [])
        for value in values:
            assert secret not in str(value) and token.split("_", 2)[2] not in str(value), name


def test_keys_list_shows_ids_but_never_secrets(api_server, org_b):
    key = api_server.create_key_with_cli(org_b)  # the one key an operator's command makes
    listed = json.loads(api_server.cli("keys", "list", "--org", org_b, "--json").stdout)
    assert key["id"] in [item["id"] for item in listed]
    assert key["key"] not in api_server.cli("keys", "list", "--org", org_b).stdout


def test_key_for_a_bad_org_name_is_refused(api_server):
    result = api_server.cli("keys", "create", "--org", "a b:c", check=False)
    assert result.returncode != 0 and "org" in result.stderr


def test_api_keys_round_trip_in_python(redis_url):
    keys = ApiKeys(StatusStore(redis_url, prefix="apikeys-test"), token_seconds=60)
    key_id, key = keys.create("acme")
    token, who = keys.exchange(key)
    assert who.org == "acme" and keys.authenticate(token).key_id == key_id


def test_keys_and_tokens_never_reach_the_server_log(api_server, org_a):
    key = api_server.create_key(org_a)
    token = api_server.token(key["key"])
    with api_server.client(token) as client:
        client.get("/v1/templates")
        client.get("/v1/jobs/0000000000000000")
    httpx.post(f"{api_server.url}/v1/auth/access_token", json={"apiKey": key["key"] + "wrong"})
    log = api_server.log.read_text()
    assert "/v1/auth/access_token" in log  # the requests were logged...
    assert key["key"] not in log and token not in log and key["key"].split("_", 2)[2] not in log  # ...not secrets
