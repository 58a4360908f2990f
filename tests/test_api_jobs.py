"""Runner's own routes (/v1) over a real `runner api`, real Redis and real prefork workers."""

from __future__ import annotations

import json

import httpx
import pytest
import redis

from runner.store import StatusStore
from tests.api_fixtures import wait_state
from tests.test_jobs import wait_until


LIVE = {"queued", "partitioning", "running", "assembling", "completed"}  # a fast worker may be ahead of us


def wait_job(api: httpx.Client, job_id: str, states: set[str], timeout: float = 60) -> dict:
    """Poll GET /v1/jobs/{id} until its state is one of ``states``."""
    return wait_state(api, f"/v1/jobs/{job_id}", states, timeout)


def submit(api: httpx.Client, **body) -> dict:
    answer = api.post("/v1/jobs", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def sse_events(api: httpx.Client, job_id: str, headers: dict | None = None) -> list[dict]:
    """Every SSE message of GET /v1/jobs/{id}/events, to the end of the stream."""
    events, current = [], {}
    with api.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers or {}, timeout=60) as answer:
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            if not line:
                if current:
                    events.append(current)
                current = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(": ")
                current[field] = json.loads(value) if field == "data" else value
    return events


def test_native_submit_completes_with_the_right_result(api_a, worker, org_a):
    job = submit(api_a, template="squares@1.0.0", params={"partitioner": {"count": 20}}, name="sq")
    assert job["state"] in LIVE and job["org"] == org_a and job["name"] == "sq"
    done = wait_job(api_a, job["id"], {"completed", "failed"})
    assert done["state"] == "completed" and done["pieces_done"] == 20
    assert api_a.get(f"/v1/jobs/{job['id']}/result").json() == {"result": sum(i * i for i in range(20))}


def test_staged_flow_creates_patches_and_runs_a_draft(api_a, worker):
    draft = submit(api_a, template="echo-list", draft=True, name="first")
    assert draft["state"] == "draft" and draft["template"] == "echo-list@1.0.0"
    answer = api_a.patch(f"/v1/jobs/{draft['id']}", json={"params": {"partitioner": {"count": 3}}, "name": "second"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["params"]["partitioner"] == {"count": 3} and answer.json()["name"] == "second"
    assert api_a.get(f"/v1/jobs/{draft['id']}/result").json()["error"]["state"] == "draft"
    ran = api_a.post(f"/v1/jobs/{draft['id']}/run", json={"job_timeout": 120})
    assert ran.status_code == 200 and ran.json()["state"] in LIVE and ran.json()["job_timeout"] == 120
    wait_job(api_a, draft["id"], {"completed"})
    assert api_a.get(f"/v1/jobs/{draft['id']}/result").json() == {"result": [0, 1, 2]}
    late = api_a.patch(f"/v1/jobs/{draft['id']}", json={"name": "too late"})
    assert late.status_code == 409 and late.json()["error"]["state"] == "completed"
    assert api_a.post(f"/v1/jobs/{draft['id']}/run").status_code == 409


def test_patch_validates_params_at_once_and_changes_nothing_when_bad(api_a):
    draft = submit(api_a, template="echo-list", draft=True)
    answer = api_a.patch(f"/v1/jobs/{draft['id']}", json={"params": {"partitioner": {"count": "many"}},
                                                          "source": "ftp://x/y"})
    assert answer.status_code == 422
    fields = {f["field"] for f in answer.json()["error"]["fields"]}
    assert "source" in fields
    answer = api_a.patch(f"/v1/jobs/{draft['id']}", json={"params": {"partitioner": {"count": "many"}}})
    assert answer.status_code == 422 and answer.json()["error"]["fields"][0]["field"] == "partitioner.count"
    assert api_a.get(f"/v1/jobs/{draft['id']}").json()["params"] == {}


def test_cancel_ends_a_running_job(api_a, worker):
    job = submit(api_a, template="sleepy", params={"partitioner": {"count": 2}, "app": {"seconds": 30}})
    wait_job(api_a, job["id"], {"running", "partitioning", "queued"})
    answer = api_a.post(f"/v1/jobs/{job['id']}/cancel")
    assert answer.status_code == 200 and answer.json()["state"] == "cancelled"
    result = api_a.get(f"/v1/jobs/{job['id']}/result")
    assert result.status_code == 409 and result.json()["error"]["state"] == "cancelled"
    assert "cancelled by API key" in result.json()["message"] and "pid" not in result.json()["message"]
    assert api_a.post(f"/v1/jobs/{job['id']}/cancel").json()["state"] == "cancelled"  # a no-op once ended


def test_retry_reruns_the_failed_pieces(api_a, worker, tmp_path):
    flags = tmp_path / "flags"
    flags.mkdir()
    job = submit(api_a, template="flaky", max_retries=0, params={
        "partitioner": {"count": 4}, "app": {"flag_dir": str(flags), "bad_pieces": [2], "once": False}})
    assert wait_job(api_a, job["id"], {"failed", "completed"})["state"] == "failed"
    assert api_a.post(f"/v1/jobs/{job['id']}/result").status_code == 405
    (flags / "fixed").touch()
    answer = api_a.post(f"/v1/jobs/{job['id']}/retry", json={"job_timeout": 60})
    assert answer.status_code == 200, answer.text
    wait_job(api_a, job["id"], {"completed"})
    assert api_a.get(f"/v1/jobs/{job['id']}/result").json()["result"] == sum(i * 10 for i in range(4))
    assert api_a.post(f"/v1/jobs/{job['id']}/retry").status_code == 409


def test_jobs_are_listed_newest_first_a_page_at_a_time(api_client):
    api = api_client()
    ids = [submit(api, template="squares", draft=True, name=f"j{i}")["id"] for i in range(5)]
    first = api.get("/v1/jobs", params={"limit": 2}).json()
    assert first["total"] == 5 and first["limit"] == 2 and first["offset"] == 0
    assert [job["id"] for job in first["items"]] == ids[::-1][:2]
    last = api.get("/v1/jobs", params={"limit": 2, "offset": 4}).json()
    assert [job["id"] for job in last["items"]] == [ids[0]]
    api.post(f"/v1/jobs/{ids[0]}/cancel")
    drafts = api.get("/v1/jobs", params={"state": "draft"}).json()
    assert drafts["total"] == 4 and ids[0] not in [job["id"] for job in drafts["items"]]
    assert api.get("/v1/jobs", params={"state": "nonsense"}).status_code == 422
    assert api.get("/v1/jobs", params={"limit": 0}).status_code == 422


def test_logs_hold_the_jobs_lines_by_piece_and_after_a_cursor(api_a, worker):
    job = submit(api_a, template="chatty", params={"partitioner": {"count": 2}, "app": {"lines": 2}})
    wait_job(api_a, job["id"], {"completed"})
    every = api_a.get(f"/v1/jobs/{job['id']}/logs").json()
    messages = [line["msg"] for line in every["items"]]
    assert "piece 1 says 1" in messages and "piece 0 says 0" in messages
    one = api_a.get(f"/v1/jobs/{job['id']}/logs", params={"piece": 1}).json()["items"]
    assert one and all(line.get("piece") in (1, None) for line in one)
    assert not any(line["msg"].startswith("piece 0") for line in one)
    after = api_a.get(f"/v1/jobs/{job['id']}/logs", params={"after": every["next"]}).json()
    assert after["items"] == [] and after["next"] == every["next"]
    assert api_a.get(f"/v1/jobs/{job['id']}/logs", params={"after": "x"}).status_code == 422


def test_artifacts_are_listed_and_read(api_a, worker, tmp_path):
    (tmp_path / "model.bin").write_text("M1")
    job = submit(api_a, template="with-model", params={"partitioner": {"count": 2}},
                 inputs={"model": (tmp_path / "model.bin").as_uri()})
    wait_job(api_a, job["id"], {"completed"})
    names = api_a.get(f"/v1/jobs/{job['id']}/artifacts").json()["items"]
    assert {"output.json", "pieces/0.txt", "pieces/1.txt", "notes/summary.txt"} <= set(names)
    piece = api_a.get(f"/v1/jobs/{job['id']}/artifacts/pieces/1.txt")
    assert piece.status_code == 200 and piece.text == "piece 1 saw M1"
    output = api_a.get(f"/v1/jobs/{job['id']}/artifacts/output.json")
    assert output.headers["content-type"] == "application/json" and output.json()["state"] == "completed"
    assert api_a.get(f"/v1/jobs/{job['id']}/artifacts/nothing.txt").status_code == 404


def test_events_stream_ends_after_the_final_state_and_resumes_from_last_event_id(api_a, worker):
    job = submit(api_a, template="squares", params={"partitioner": {"count": 3}})
    events = sse_events(api_a, job["id"])
    states = [e["data"]["state"] for e in events if e["event"] == "state"]
    assert states[0] == "queued" and states[-1] == "completed"
    assert events[-1]["event"] == "state" and events[-1]["data"]["state"] == "completed"
    assert "progress" in {e["event"] for e in events}
    resumed = sse_events(api_a, job["id"], headers={"Last-Event-ID": events[1]["id"]})
    assert [e["id"] for e in resumed] == [e["id"] for e in events[2:]]
    query = api_a.get(f"/v1/jobs/{job['id']}/events", params={"after": events[-1]["id"]})
    assert query.status_code == 200 and query.text == ""  # nothing after the final state: ends at once


def test_delete_cancels_and_removes_every_trace_of_a_job(api_a, worker, redis_url):
    job = submit(api_a, template="sleepy", params={"partitioner": {"count": 2}, "app": {"seconds": 30}})
    wait_job(api_a, job["id"], {"running"})
    assert api_a.delete(f"/v1/jobs/{job['id']}").status_code == 204
    for path in ("", "/result", "/logs", "/artifacts", "/events"):
        assert api_a.get(f"/v1/jobs/{job['id']}{path}").status_code == 404, path
    assert api_a.delete(f"/v1/jobs/{job['id']}").status_code == 404
    store, raw = StatusStore(redis_url), redis.Redis.from_url(redis_url)
    # a task cut off by the cancel may still write once; the API sweeps after it
    wait_until(lambda: not list(raw.scan_iter(f"{store.job_key(job['id'])}*")), 60, "no key of the deleted job left")
    assert job["id"] not in [j["id"] for j in api_a.get("/v1/jobs", params={"limit": 500}).json()["items"]]


def test_delete_of_a_finished_job_removes_its_artifacts(api_a, worker, tmp_path, settings):
    job = submit(api_a, template="squares", params={"partitioner": {"count": 2}})
    wait_job(api_a, job["id"], {"completed"})
    assert "output.json" in api_a.get(f"/v1/jobs/{job['id']}/artifacts").json()["items"]
    assert api_a.delete(f"/v1/jobs/{job['id']}").status_code == 204
    from runner.artifacts import ArtifactIO, artifact_prefix
    from runner.storage import Storages

    assert ArtifactIO(Storages(settings), artifact_prefix(settings, job["id"])).list() == []


def test_templates_are_listed_with_params_json_schemas(api_a):
    listed = {t["ref"]: t for t in api_a.get("/v1/templates").json()}
    squares = listed["squares@1.0.0"]
    assert squares["partitioner"] == "replicas" and squares["assembler"] == "sum"
    assert squares["params_schema"]["partitioner"]["properties"]["count"]["type"] == "integer"
    assert listed["with-model@1.0.0"]["inputs"] == ["model"]
    one = api_a.get("/v1/templates/wordcount")
    assert one.status_code == 200 and one.json()["ref"].startswith("wordcount@")
    assert api_a.get("/v1/templates/nope@9").status_code == 404


@pytest.mark.parametrize("method,path", [
    ("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/run"), ("POST", "/cancel"), ("POST", "/retry"),
    ("GET", "/result"), ("GET", "/logs"), ("GET", "/artifacts"), ("GET", "/artifacts/output.json"),
    ("GET", "/events"),
])
def test_another_orgs_job_is_404_on_every_route(api_a, api_b, method, path):
    job = submit(api_a, template="echo-list", draft=True)
    answer = api_b.request(method, f"/v1/jobs/{job['id']}{path}", json={} if method != "GET" else None)
    assert answer.status_code == 404, answer.text
    assert api_a.get(f"/v1/jobs/{job['id']}").json()["state"] == "draft"  # untouched


def test_another_orgs_jobs_are_never_listed(api_a, api_b):
    job = submit(api_a, template="echo-list", draft=True)
    listed = api_b.get("/v1/jobs", params={"limit": 500}).json()
    assert job["id"] not in [j["id"] for j in listed["items"]]
    assert all(j["org"] != api_a.get(f"/v1/jobs/{job['id']}").json()["org"] for j in listed["items"])


def test_a_draft_refuses_an_undeclared_input_but_may_lack_a_declared_one(api_a, tmp_path):
    (tmp_path / "m").write_text("M")
    draft = submit(api_a, template="with-model", draft=True)
    assert draft["inputs"] == {}
    wrong = api_a.patch(f"/v1/jobs/{draft['id']}", json={"inputs": {"modle": (tmp_path / "m").as_uri()}})
    assert wrong.status_code == 422 and wrong.json()["error"]["fields"][0]["field"] == "inputs.modle"
    missing = api_a.post(f"/v1/jobs/{draft['id']}/run")
    assert missing.status_code == 422 and "inputs.model" in [f["field"] for f in missing.json()["error"]["fields"]]
    assert api_a.get(f"/v1/jobs/{draft['id']}").json()["state"] == "draft"  # nothing queued
    right = api_a.patch(f"/v1/jobs/{draft['id']}", json={"inputs": {"model": (tmp_path / "m").as_uri()}})
    assert right.status_code == 200 and right.json()["inputs"] == {"model": (tmp_path / "m").as_uri()}


def test_the_api_needs_no_import_of_user_code(api_env, server_dir, worker, org_a):
    """Without RUNNER_INCLUDE the API lists, validates and submits the templates the fleet published."""
    from tests.api_fixtures import run_api

    env = {key: value for key, value in api_env.items() if key != "RUNNER_INCLUDE"}
    with run_api(env, server_dir / "api-no-include.log") as server:
        with server.client(server.token(server.create_key(org_a)["key"])) as api:
            squares = api.get("/v1/templates/squares@1.0.0").json()
            assert squares["params_schema"]["partitioner"]["properties"]["count"]["type"] == "integer"
            assert "with-model@1.0.0" in {t["ref"] for t in api.get("/v1/templates").json()}
            bad = api.post("/v1/jobs", json={"template": "squares", "params": {"partitioner": {"count": "x"}}})
            assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["field"] == "partitioner.count"
            job = submit(api, template="squares", params={"partitioner": {"count": 5}})
            wait_job(api, job["id"], {"completed"})
            assert api.get(f"/v1/jobs/{job['id']}/result").json() == {"result": 30}


def test_a_stragglers_write_after_a_delete_is_swept(api_a, redis_url):
    """A task cut off by the delete's cancel may still write (HINCRBY pieces_done, a log
    line) and recreate keys with no expiry; the API deletes them again shortly after."""
    job = submit(api_a, template="echo-list", draft=True)
    assert api_a.delete(f"/v1/jobs/{job['id']}").status_code == 204
    store, raw = StatusStore(redis_url), redis.Redis.from_url(redis_url)
    raw.hincrby(store.job_key(job["id"]), "pieces_done", 1)  # what a late record_results does
    raw.xadd(store.logs_key(job["id"]), {"msg": "late"})
    wait_until(lambda: not list(raw.scan_iter(f"{store.job_key(job['id'])}*")), 30, "the straggler's keys swept")
