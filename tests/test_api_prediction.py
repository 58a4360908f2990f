"""Prediction-API-style routes (/api/v1) over a real `runner api`, real Redis and real
prefork workers: sources are templates, setup binds roles to inputs, one job, three views."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.api_fixtures import wait_state

API = "/api/v1"


def wait_job(api: httpx.Client, job_id: str, states: set[str], timeout: float = 90) -> dict:
    """Poll GET /api/v1/jobs/{id} until its state is one of ``states``."""
    return wait_state(api, f"{API}/jobs/{job_id}", states, timeout)


def setup(api: httpx.Client, **body) -> dict:
    answer = api.post(f"{API}/jobs/setup", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def job_count(api: httpx.Client) -> int:
    return len(api.get(f"{API}/jobs", params={"limit": 500}).json())


def assert_detail(answer: httpx.Response, status: int, loc: list | None = None) -> list[dict]:
    """``answer`` is ``status`` in FastAPI's ``{detail: [{loc, msg, type}]}``, naming ``loc``."""
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, list) and detail
    assert all(set(item) == {"loc", "msg", "type"} and item["msg"] for item in detail)
    if loc is not None:
        assert loc in [item["loc"] for item in detail], (loc, detail)
    return detail


@pytest.fixture
def api(api_client):
    """A Prediction-API client: its own org, Bearer token."""
    return api_client()


@pytest.fixture
def model_uri(tmp_path) -> str:
    path = tmp_path / "model.txt"
    path.write_text("weights-v1")
    return path.as_uri()


def test_sources_are_template_names_and_versions_are_refs(api):
    sources = {source["id"]: source for source in api.get(f"{API}/sources").json()}
    assert sources["with-model"]["name"] == "with-model" and sources["with-model"]["versions"] == ["1.0.0"]
    assert sources["with-model"]["retention_hours"] > 0
    assert api.get(f"{API}/sources/echo-list").json()["id"] == "echo-list"
    version = api.get(f"{API}/source_versions/with-model@1.0.0").json()
    assert version == {"id": "with-model@1.0.0", "source_id": "with-model", "version": "1.0.0",
                       "input_roles": [{"role": "model", "required": True, "description": None}],
                       "output_roles": [{"role": "result", "required": True, "description": None}]}
    listed = api.get(f"{API}/source_versions", params={"source_id": "with-model"}).json()
    assert [v["id"] for v in listed] == ["with-model@1.0.0"]
    assert "echo-list@1.0.0" in [v["id"] for v in api.get(f"{API}/source_versions").json()]
    assert_detail(api.get(f"{API}/sources/no-such"), 404, ["source_id"])
    assert_detail(api.get(f"{API}/source_versions/with-model@9.9.9"), 404, ["version_id"])
    assert_detail(api.get(f"{API}/source_versions", params={"source_id": "no-such"}), 404, ["source_id"])


def test_posting_a_source_or_version_never_creates_one(api):
    answer = api.post(f"{API}/sources", json={"name": "with-model", "retention_hours": 24})
    assert answer.status_code == 200 and answer.json()["id"] == "with-model"
    assert_detail(api.post(f"{API}/sources", json={"name": "with-model", "id": "other"}), 409, ["id"])
    assert_detail(api.post(f"{API}/sources", json={"name": "brand-new"}), 404, ["name"])
    agreed = api.post(f"{API}/source_versions", json={
        "source_id": "with-model", "version": "1.0.0", "input_roles": [{"role": "model", "required": True}],
        "output_roles": [{"role": "result"}]})
    assert agreed.status_code == 200 and agreed.json()["id"] == "with-model@1.0.0"
    assert_detail(api.post(f"{API}/source_versions", json={
        "source_id": "with-model", "version": "1.0.0", "input_roles": [{"role": "weights"}]}), 409, ["input_roles"])
    assert_detail(api.post(f"{API}/source_versions", json={
        "source_id": "with-model", "version": "1.0.0", "input_roles": [{"role": "model", "required": False}]}),
        409, ["input_roles", 0, "required"])
    assert_detail(api.post(f"{API}/source_versions", json={
        "source_id": "with-model", "version": "1.0.0", "output_roles": [{"role": "scores"}]}), 409, ["output_roles"])
    assert_detail(api.post(f"{API}/source_versions", json={"source_id": "nope", "version": "1"}), 404,
                  ["source_id"])
    assert_detail(api.post(f"{API}/source_versions", json={"source_id": "with-model", "version": "2.0.0"}), 404,
                  ["version"])
    assert [v["id"] for v in api.get(f"{API}/source_versions", params={"source_id": "with-model"}).json()] == \
        ["with-model@1.0.0"]


def test_an_active_setup_binds_roles_to_inputs_and_runs(api, worker, model_uri):
    job = setup(api, job={"name": "scored", "active": True, "source_version_id": "with-model@1.0.0",
                          "retention_hours": 5, "expectedintervalminutes": 60},
                role_bindings=[{"role": "model", "input_id": model_uri, "input_type": "file"}])
    assert job["active"] is True and job["state"] in {"queued", "partitioning", "running", "assembling", "completed"}
    assert job["source_id"] == "with-model" and job["source_version_id"] == "with-model@1.0.0"
    assert job["role_bindings"] == [{"role": "model", "input_id": model_uri, "input_type": "file"}]
    assert job["retention_hours"] == 5 and job["expectedintervalminutes"] == 60 and job["name"] == "scored"
    done = wait_job(api, job["id"], {"completed", "failed"})
    assert done["state"] == "completed", done
    native = api.get(f"/v1/jobs/{job['id']}").json()
    assert native["inputs"] == {"model": model_uri} and native["retention_hours"] == 5
    assert api.get(f"/v1/jobs/{job['id']}/result").json()["result"][0]["model"] == "weights-v1"
    bytenite = api.get(f"/v1/customer/jobs/{job['id']}").json()["job"]
    assert bytenite["state"] == "JOB_STATE_COMPLETE"


def test_an_inactive_setup_is_a_draft_that_put_changes_and_runs(api, worker, model_uri):
    job = setup(api, job={"name": "later", "active": False, "source_id": "with-model"})
    assert job["active"] is False and job["state"] == "draft" and job["role_bindings"] == []
    assert job["source_version_id"] == "with-model@1.0.0" and job["expectedintervalminutes"] is None
    changed = api.put(f"{API}/jobs/{job['id']}", json={
        "name": "now", "expectedintervalminutes": 15,
        "role_bindings": [{"role": "model", "input_id": model_uri, "input_type": "file"}]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "now" and changed.json()["expectedintervalminutes"] == 15
    assert changed.json()["state"] == "draft" and changed.json()["role_bindings"][0]["input_id"] == model_uri
    ran = api.put(f"{API}/jobs/{job['id']}", json={"active": True})
    assert ran.status_code == 200 and ran.json()["active"] is True, ran.text
    assert ran.json()["role_bindings"] == [{"role": "model", "input_id": model_uri, "input_type": "file"}]
    assert wait_job(api, job["id"], {"completed", "failed"})["state"] == "completed"
    assert_detail(api.put(f"{API}/jobs/{job['id']}", json={"name": "too late"}), 409, ["state"])
    assert api.get(f"{API}/jobs/{job['id']}").json()["name"] == "now"


def test_setup_finds_the_template_by_source_and_version(api):
    by_source = setup(api, source={"id": "echo-list"}, source_version={"version": "1.0.0"}, job={"name": "x"})
    assert by_source["source_version_id"] == "echo-list@1.0.0"
    newest = setup(api, job={"source_id": "echo-list"})
    assert newest["source_version_id"] == "echo-list@1.0.0"


def test_get_list_and_delete(api, worker):
    first = setup(api, job={"source_id": "echo-list", "name": "one"})
    second = setup(api, job={"source_id": "echo-list", "name": "two", "active": True})
    listed = api.get(f"{API}/jobs").json()
    assert [job["id"] for job in listed] == [second["id"], first["id"]]
    assert [job["id"] for job in api.get(f"{API}/jobs", params={"limit": 1, "offset": 1}).json()] == [first["id"]]
    assert api.get(f"{API}/jobs/{first['id']}").json() == first
    assert api.delete(f"{API}/jobs/{second['id']}").status_code == 204
    assert_detail(api.get(f"{API}/jobs/{second['id']}"), 404)
    assert api.get(f"/v1/jobs/{second['id']}").status_code == 404
    assert_detail(api.delete(f"{API}/jobs/{second['id']}"), 404)
    assert [job["id"] for job in api.get(f"{API}/jobs").json()] == [first["id"]]


def test_another_orgs_job_is_404_on_every_route_and_never_listed(api_client):
    owner, other = api_client(), api_client()
    job = setup(owner, job={"source_id": "echo-list", "name": "mine"})
    for method, body in (("GET", None), ("PUT", {"name": "theirs"}), ("DELETE", None)):
        assert_detail(other.request(method, f"{API}/jobs/{job['id']}", json=body), 404)
    assert other.get(f"{API}/jobs").json() == []
    assert owner.get(f"{API}/jobs/{job['id']}").json() == job


def test_organisation_id_must_be_the_keys(api_client, org_b):
    mine = f"p-{uuid.uuid4().hex[:8]}"
    api = api_client(mine)
    assert_detail(api.post(f"{API}/jobs/setup", json={"organisation_id": org_b, "job": {"source_id": "echo-list"}}),
                  422, ["organisation_id"])
    assert job_count(api) == 0
    job = setup(api, organisation_id=mine, job={"source_id": "echo-list"})
    assert job["organisation_id"] == mine


BAD_SETUPS = [
    ({"job": {"source_id": "echo-list"}, "role_bindings": [{"role": "model", "input_id": "file:///x"}]},
     ["role_bindings", 0, "role"]),
    ({"job": {"source_id": "with-model", "role_bindings": [{"role": "weights", "input_id": "file:///x"}]}},
     ["job", "role_bindings", 0, "role"]),
    ({"job": {"source_id": "with-model"}, "role_bindings": [{"role": "model", "input_id": "ftp://host/m"}]},
     ["role_bindings", 0, "input_id"]),
    ({"job": {"source_id": "with-model"}, "role_bindings": [{"role": "model", "input_id": "file:///etc/passwd"}]},
     ["role_bindings", 0, "input_id"]),
    ({"job": {"source_id": "with-model"}, "role_bindings": [{"role": "model", "input_id": "http://[::1"}]},
     ["role_bindings", 0, "input_id"]),
    ({"job": {"source_id": "with-model", "active": True}}, ["role_bindings"]),
    ({"job": {"source_id": "with-model"}, "role_bindings": [{"role": "model"}]}, ["role_bindings", 0, "input_id"]),
    ({"job": {"source_id": "no-such-model"}}, ["job", "source_id"]),
    ({"job": {"source_version_id": "echo-list@9.9.9"}}, ["job", "source_version_id"]),
    ({"job": {"source_version_id": "echo-list"}}, ["job", "source_version_id"]),
    ({"job": {"source_id": "echo-list"}, "source_version": {"version": "7"}}, ["source_version", "version"]),
    ({"job": {"source_version_id": "echo-list@1.0.0", "source_id": "with-model"}}, ["job", "source_id"]),
    ({"job": {"name": "no source"}}, ["job", "source_version_id"]),
    ({"job": {"source_id": "echo-list", "expectedintervalminutes": 0}}, ["job", "expectedintervalminutes"]),
    ({"job": {"source_id": "echo-list", "actve": True}}, ["job", "actve"]),
    ({"job": {"source_id": "echo-list", "active": "sometimes"}}, ["job", "active"]),
    ({"source": {"id": "echo-list"}}, ["job"]),
]


@pytest.mark.parametrize("body,loc", BAD_SETUPS, ids=[".".join(map(str, loc)) for _, loc in BAD_SETUPS])
def test_a_bad_setup_is_refused_naming_the_field_and_writes_nothing(api, body, loc):
    assert_detail(api.post(f"{API}/jobs/setup", json=body), 422, loc)
    assert job_count(api) == 0


def test_malformed_json_is_a_422_in_fastapis_shape(api):
    answer = api.post(f"{API}/jobs/setup", content=b"{nope", headers={"Content-Type": "application/json"})
    assert_detail(answer, 422)
    assert job_count(api) == 0


BAD_PUTS = [
    ({"role_bindings": [{"role": "nope", "input_id": "file:///x"}]}, ["role_bindings", 0, "role"]),
    ({"role_bindings": [{"role": "model", "input_id": "gopher://x"}]}, ["role_bindings", 0, "input_id"]),
    ({"active": True}, ["role_bindings"]),
    ({"name": 5}, ["name"]),
    ({"organisation_id": "someone"}, ["organisation_id"]),
]


@pytest.mark.parametrize("body,loc", BAD_PUTS, ids=[".".join(map(str, loc)) for _, loc in BAD_PUTS])
def test_a_bad_put_is_refused_naming_the_field_and_leaves_the_draft_as_it_was(api, body, loc):
    job = setup(api, job={"source_id": "with-model", "name": "kept"})
    assert_detail(api.put(f"{API}/jobs/{job['id']}", json=body), 422, loc)
    assert api.get(f"{API}/jobs/{job['id']}").json() == job
    assert job_count(api) == 1


def test_bad_queries_and_no_token(api, api_server):
    assert_detail(api.get(f"{API}/jobs", params={"limit": 0}), 422, ["query", "limit"])
    assert_detail(httpx.get(f"{api_server.url}{API}/jobs", timeout=30), 401)


def test_a_job_submitted_through_v1_reads_in_every_family(api, tmp_path):
    deep = tmp_path / ("d" * 200) / ("e" * 200)
    deep.mkdir(parents=True)
    (deep / "model.txt").write_text("m")
    uri = (deep / "model.txt").as_uri()
    answer = api.post("/v1/jobs", json={"template": "with-model", "draft": True, "inputs": {"model": uri},
                                        "name": "native"})
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["id"]
    prediction = api.get(f"{API}/jobs/{job_id}").json()
    assert prediction["role_bindings"] == [{"role": "model", "input_id": uri, "input_type": None}]
    assert prediction["active"] is False and prediction["name"] == "native"
    bytenite = api.get(f"/v1/customer/jobs/{job_id}").json()["job"]
    assert bytenite["state"] == "JOB_STATE_NEW" and bytenite["config"]["taskTimeout"] == answer.json()["task_timeout"]
    assert [job["id"] for job in api.get(f"{API}/jobs").json()] == [job_id]


def test_an_active_job_with_an_interval_is_a_schedule_that_put_pauses_and_delete_removes(api, api_server):
    import json as _json

    job = setup(api, job={"name": "standing", "active": True, "source_version_id": "echo-list@1.0.0",
                          "expectedintervalminutes": 60})
    assert job["expectedintervalminutes"] == 60

    def schedule_rows() -> list[dict]:
        listed = api_server.cli("schedules", "--json", "--org", job["organisation_id"])
        return [row for row in _json.loads(listed.stdout) if row["name"] == f"prediction-{job['id']}"]

    (row,) = schedule_rows()
    assert row["template"] == "echo-list@1.0.0" and not row["paused"]
    paused = api.put(f"{API}/jobs/{job['id']}", json={"active": False})
    assert paused.status_code == 200, paused.text
    assert schedule_rows()[0]["paused"]
    assert api.put(f"{API}/jobs/{job['id']}", json={"active": True}).status_code == 200
    assert not schedule_rows()[0]["paused"]
    assert api.delete(f"{API}/jobs/{job['id']}").status_code == 204
    assert schedule_rows() == []


def test_metrics_are_served_in_prometheus_format(api_server):
    from prometheus_client.parser import text_string_to_metric_families

    answer = httpx.get(f"{api_server.url}/metrics", timeout=30,
                       headers={"Authorization": f"Bearer {api_server.env['RUNNER_METRICS_TOKEN']}"})
    assert answer.status_code == 200
    names = {family.name for family in text_string_to_metric_families(answer.text)}
    assert any(name.startswith("runner_") for name in names), names
