"""Prediction-API-style routes (/api/v1) over a real `runner api`, real Redis and real
prefork workers: sources are templates, setup binds roles to inputs, one job, three views."""

from __future__ import annotations

import json
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


def is_uuid(value: str) -> bool:
    return str(uuid.UUID(value)) == value


def create(api: httpx.Client, path: str, body: dict, status: int = 201) -> dict:
    answer = api.post(f"{API}/{path}", json=body)
    assert answer.status_code == status, answer.text
    return answer.json()


def test_a_source_is_a_record_of_the_org_named_once(api, api_client):
    body = {"name": "with-model", "description": "reads a model", "expectedintervalminutes": 30,
            "retention_hours": 12}
    source = create(api, "sources", body)
    assert is_uuid(source["id"]) and source["versions"] == []
    assert {k: source[k] for k in body} == body
    assert create(api, "sources", body, 200) == source  # the same body again: idempotent
    assert_detail(api.post(f"{API}/sources", json={**body, "retention_hours": 24}), 409, ["retention_hours"])
    assert_detail(api.post(f"{API}/sources", json={"name": "a@b"}), 422, ["name"])
    assert api.get(f"{API}/sources/{source['id']}").json() == source
    assert api.get(f"{API}/sources/with-model").json() == source  # by name too
    assert api.get(f"{API}/sources").json() == [source]
    assert_detail(api.get(f"{API}/sources/{uuid.uuid4()}"), 404, ["source_id"])
    other = api_client()
    assert other.get(f"{API}/sources").json() == []
    assert_detail(other.get(f"{API}/sources/{source['id']}"), 404, ["source_id"])
    assert create(other, "sources", {"name": "with-model"})["id"] != source["id"]  # names are per org


def test_a_version_binds_to_a_template_and_never_changes(api, api_client):
    source = create(api, "sources", {"name": "with-model"})
    body = {"source_id": source["id"], "version": "1.0.0", "description": "first",
            "input_roles": [{"role": "model", "input_kind": "file"}], "output_roles": [{"role": "scores"}]}
    version = create(api, "source_versions", body)
    assert is_uuid(version["id"]) and version["template"] == "with-model@1.0.0"
    assert version["source_id"] == source["id"] and version["description"] == "first"
    assert version["input_roles"] == [{"role": "model", "input_kind": "file", "metric": None, "unit": None,
                                       "required": True, "description": None}]
    assert create(api, "source_versions", body, 200) == version
    assert create(api, "source_versions", {**body, "source_id": "with-model"}, 200) == version  # name works too
    assert_detail(api.post(f"{API}/source_versions", json={**body, "description": "changed"}), 409, ["description"])
    assert_detail(api.post(f"{API}/source_versions", json={**body, "output_roles": [{"role": "x"}]}), 409,
                  ["output_roles"])
    assert api.get(f"{API}/source_versions/{version['id']}").json() == version
    assert api.get(f"{API}/sources/{source['id']}").json()["versions"] == ["1.0.0"]
    # an explicit template: any name and version of the source's own
    named = create(api, "source_versions", {**body, "version": "7", "template": "with-model@1.0.0"})
    assert named["template"] == "with-model@1.0.0" and named["version"] == "7"
    assert [v["id"] for v in api.get(f"{API}/source_versions", params={"source_id": source["id"]}).json()] == \
        [version["id"], named["id"]]
    assert_detail(api.get(f"{API}/source_versions/{uuid.uuid4()}"), 404, ["version_id"])
    assert_detail(api_client().get(f"{API}/source_versions/{version['id']}"), 404, ["version_id"])


BAD_VERSIONS = [
    ({"version": "9.9.9"}, ["version"]),  # no template with-model@9.9.9
    ({"template": "no-such@1"}, ["template"]),
    ({"input_roles": [{"role": "weights"}]}, ["input_roles"]),
    ({"input_roles": []}, ["input_roles"]),
    ({"input_roles": [{"role": "model", "required": False}]}, ["input_roles", 0, "required"]),
    ({"output_roles": []}, ["output_roles"]),
    ({"output_roles": [{"role": "a"}, {"role": "a"}]}, ["output_roles", 1, "role"]),
    ({"source_id": "nope"}, ["source_id"]),
    ({"input_roles": [{"role": "model", "colour": "red"}]}, ["input_roles", 0, "colour"]),
]


@pytest.mark.parametrize("change,loc", BAD_VERSIONS, ids=[".".join(map(str, loc)) for _, loc in BAD_VERSIONS])
def test_a_bad_version_is_a_422_naming_the_field_and_stores_nothing(api, change, loc):
    source = create(api, "sources", {"name": "with-model"})
    body = {"source_id": source["id"], "version": "1.0.0", "input_roles": [{"role": "model"}],
            "output_roles": [{"role": "prediction"}], **change}
    assert_detail(api.post(f"{API}/source_versions", json=body), 422, loc)
    assert api.get(f"{API}/source_versions").json() == []


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
    assert paused.status_code == 200 and paused.json()["active"] is False, paused.text
    assert schedule_rows()[0]["paused"]
    assert api.get(f"{API}/jobs/{job['id']}").json()["active"] is False
    assert [j["active"] for j in api.get(f"{API}/jobs").json()] == [False]
    resumed = api.put(f"{API}/jobs/{job['id']}", json={"active": True})
    assert resumed.status_code == 200 and resumed.json()["active"] is True
    assert not schedule_rows()[0]["paused"]
    assert api.delete(f"{API}/jobs/{job['id']}").status_code == 204
    assert schedule_rows() == []


def test_a_one_off_job_deactivated_is_cancelled_and_reads_inactive(api):
    answer = api.post("/v1/jobs", json={"template": "sleepy", "params": {"app": {"seconds": 300}}})
    assert answer.status_code == 201, answer.text
    job = api.get(f"{API}/jobs/{answer.json()['id']}").json()  # queued or running, whether a worker is up or not
    assert job["active"] is True and job["expectedintervalminutes"] is None
    stopped = api.put(f"{API}/jobs/{job['id']}", json={"active": False})
    assert stopped.status_code == 200 and stopped.json()["active"] is False, stopped.text
    assert stopped.json()["state"] == "cancelled"
    assert api.put(f"{API}/jobs/{job['id']}", json={"active": False}).json()["active"] is False  # idempotent
    assert_detail(api.put(f"{API}/jobs/{job['id']}", json={"active": True}), 409, ["active"])
    outputs = api.get(f"{API}/jobs/{job['id']}/outputs").json()
    assert outputs["outputs"] is None and outputs["state"] == "cancelled" and "cancelled" in outputs["error"]


def test_metrics_are_served_in_prometheus_format(api_server):
    from prometheus_client.parser import text_string_to_metric_families

    answer = httpx.get(f"{api_server.url}/metrics", timeout=30,
                       headers={"Authorization": f"Bearer {api_server.env['RUNNER_METRICS_TOKEN']}"})
    assert answer.status_code == 200
    names = {family.name for family in text_string_to_metric_families(answer.text)}
    assert any(name.startswith("runner_") for name in names), names


# -- the tutorial (reference-docs/prediction-api-jobs-tutorial.md), bodies as written ----------

TUTORIAL_SOURCE = {  # step 1 (the tutorial elides its middle lines; these are the fields it documents)
    "name": "mildew-predictor",
    "description": "Predicts powdery mildew risk from field temperature",
    "expectedintervalminutes": 60,
    "retention_hours": 720,
}


def tutorial_version(source_id: str) -> dict:
    """Step 2's body, only its id changed."""
    return {
        "source_id": source_id,
        "version": "1.0.0",
        "input_roles": [
            {"role": "temperature", "input_kind": "sensor", "metric": "celsius", "required": True}
        ],
        "output_roles": [
            {"role": "prediction", "metric": "celsius", "unit": "°C", "required": True}
        ],
    }


@pytest.fixture
def sensor_uri(tmp_path) -> str:
    path = tmp_path / "temperature.txt"
    path.write_text("18.5")
    return path.as_uri()


def test_the_tutorials_four_steps_run_to_a_result(api_client, api_server, worker, sensor_uri):
    org = str(uuid.uuid4())
    api = api_client(org)
    source = create(api, "sources", TUTORIAL_SOURCE)  # step 1
    assert is_uuid(source["id"]) and source["expectedintervalminutes"] == 60 and source["retention_hours"] == 720
    version = create(api, "source_versions", tutorial_version(source["id"]))  # step 2 (step 3: roles are in it)
    assert version["template"] == "mildew-predictor@1.0.0" and version["description"] is None
    assert version["input_roles"][0] == {"role": "temperature", "input_kind": "sensor", "metric": "celsius",
                                         "unit": None, "required": True, "description": None}
    assert version["output_roles"][0]["unit"] == "°C"
    sensor = create(api, "inputs", {"uri": sensor_uri, "kind": "sensor"})
    assert is_uuid(sensor["id"]) and sensor["uri"] == sensor_uri
    step4 = {  # step 4, with the source as step 1 read it back
        "organisation_id": org,
        "source": api.get(f"{API}/sources/{source['id']}").json(),
        "job": {"name": "Job A"},
        "role_bindings": [
            {"role": "temp", "input_id": sensor["id"], "input_type": "sensor"}
        ],
    }
    # the example binds "temp", a role its own step 2 never declared: refused, naming it and the fix
    (item,) = assert_detail(api.post(f"{API}/jobs/setup", json=step4), 422, ["role_bindings", 0, "role"])
    assert "temperature" in item["msg"] and job_count(api) == 0
    step4["role_bindings"][0]["role"] = "temperature"
    job = create(api, "jobs/setup", step4)
    assert job["active"] is False and job["state"] == "draft" and job["name"] == "Job A"
    assert job["source_id"] == source["id"] and job["source_version_id"] == version["id"]
    assert job["role_bindings"] == [{"role": "temperature", "input_id": sensor["id"], "input_type": "sensor"}]
    assert job["output_roles"] == ["prediction"] and job["organisation_id"] == org
    assert job["expectedintervalminutes"] == 60 and job["retention_hours"] == 720  # the source's
    ran = api.put(f"{API}/jobs/{job['id']}", json={"active": True})  # "Update a Job"
    assert ran.status_code == 200 and ran.json()["active"] is True, ran.text
    assert wait_job(api, job["id"], {"completed", "failed"})["state"] == "completed"
    outputs = api.get(f"{API}/jobs/{job['id']}/outputs").json()
    assert outputs == {"id": job["id"], "state": "completed", "error": None,
                       "outputs": {"prediction": {"celsius": 18.5, "risk": "high"}}}
    assert api.get(f"/v1/jobs/{job['id']}").json()["inputs"] == {"temperature": sensor_uri}
    # the prose's job shape: active, organisation_id null, role_bindings inside the job
    direct = create(api, "jobs/setup", {"organisation_id": org, "source_version": version, "job": {
        "name": "Job B", "active": True, "organisation_id": None,
        "role_bindings": [{"role": "temperature", "input_id": sensor["id"]}]}})
    assert direct["role_bindings"][0]["input_type"] == "sensor"  # the input's kind
    assert wait_job(api, direct["id"], {"completed", "failed"})["state"] == "completed"
    # both are standing (active + the source's 60 minutes): one schedule each, checked for overdue
    rows = json.loads(api_server.cli("schedules", "--json", "--org", org).stdout)
    assert sorted(row["name"] for row in rows) == sorted(f"prediction-{j['id']}" for j in (job, direct))
    assert {(row["template"], row["expected_interval"], row["paused"]) for row in rows} == \
        {("mildew-predictor@1.0.0", 3600, False)}  # the overdue check: 60 minutes
    listed = api.get(f"{API}/jobs").json()
    assert [j["name"] for j in listed] == ["Job B", "Job A"]
    for made in (job, direct):
        assert api.delete(f"{API}/jobs/{made['id']}").status_code == 204
    assert json.loads(api_server.cli("schedules", "--json", "--org", org).stdout) == []


def test_setup_takes_objects_as_read_back_and_inputs_by_id(api, model_uri):
    source = create(api, "sources", {"name": "with-model", "retention_hours": 3})
    version = create(api, "source_versions", {"source_id": source["id"], "version": "1.0.0",
                                              "input_roles": [{"role": "model"}], "output_roles": [{"role": "y"}]})
    model = create(api, "inputs", {"uri": model_uri, "kind": "weights"})
    assert api.get(f"{API}/inputs/{model['id']}").json() == model and api.get(f"{API}/inputs").json() == [model]
    binding = [{"role": "model", "input_id": model["id"]}]
    for given in ({"source": source}, {"source_version": version}, {"source": source, "source_version": version},
                  {"job": {"source_id": source["id"]}}, {"job": {"source_version_id": version["id"]}},
                  {"source": {"name": "with-model"}, "source_version": {"version": "1.0.0"}}):
        body = {"job": {}, **given, "role_bindings": binding}
        job = create(api, "jobs/setup", body)
        assert (job["source_id"], job["source_version_id"]) == (source["id"], version["id"]), given
        assert job["role_bindings"] == [{"role": "model", "input_id": model["id"], "input_type": "weights"}]
        assert job["retention_hours"] == 3 and job["output_roles"] == ["y"]
    by_uri = create(api, "jobs/setup", {"source": source, "job": {}, "role_bindings": [
        {"role": "model", "input_id": model_uri}]})
    assert by_uri["role_bindings"][0]["input_id"] == model_uri


def test_setup_creates_its_source_and_version_on_the_fly(api, model_uri):
    roles = {"input_roles": [{"role": "model", "input_kind": "file"}], "output_roles": [{"role": "y"}]}
    body = {"source": {"name": "with-model", "description": "fly", "retention_hours": 2},
            "source_version": {"version": "1.0.0", **roles}, "job": {"name": "fly"}}
    refused = [
        ({**body, "source_version": {"version": "1.0.0", **roles, "input_roles": []}},
         ["source_version", "input_roles"]),
        ({**body, "source_version": {"version": "2", **roles}}, ["source_version", "version"]),  # no template
        ({**body, "source": {"name": "a/b"}}, ["source", "name"]),
        ({**body, "role_bindings": [{"role": "nope", "input_id": model_uri}]}, ["role_bindings", 0, "role"]),
    ]
    for bad, loc in refused:
        assert_detail(api.post(f"{API}/jobs/setup", json=bad), 422, loc)
    assert api.get(f"{API}/sources").json() == [] and api.get(f"{API}/source_versions").json() == []
    job = create(api, "jobs/setup", body)
    (source,) = api.get(f"{API}/sources").json()
    (version,) = api.get(f"{API}/source_versions").json()
    assert (source["name"], source["description"], source["versions"]) == ("with-model", "fly", ["1.0.0"])
    assert version["template"] == "with-model@1.0.0" and version["input_roles"][0]["input_kind"] == "file"
    assert (job["source_id"], job["source_version_id"], job["retention_hours"]) == (source["id"], version["id"], 2)
    again = create(api, "jobs/setup", body)  # the records exist now: the same ones are used
    assert (again["source_id"], again["source_version_id"]) == (source["id"], version["id"])
    newer = create(api, "jobs/setup", {"source": source, "job": {},
                                       "source_version": {"version": "7", "template": "with-model@1.0.0", **roles}})
    assert api.get(f"{API}/sources/{source['id']}").json()["versions"] == ["1.0.0", "7"]
    assert newer["source_version_id"] == api.get(f"{API}/source_versions").json()[1]["id"]
    assert_detail(api.post(f"{API}/jobs/setup", json={**body, "source_version": {
        "version": "1.0.0", **roles, "output_roles": [{"role": "z"}]}}), 422, ["source_version", "output_roles"])
    assert_detail(api.post(f"{API}/jobs/setup", json={**body, "source": {"name": "with-model", "retention_hours": 9}}),
                  422, ["source", "retention_hours"])
    assert job_count(api) == 3


def test_bad_references_in_a_setup_are_422s_naming_the_field(api, api_client, model_uri):
    source = create(api, "sources", {"name": "with-model"})
    version = create(api, "source_versions", {"source_id": source["id"], "version": "1.0.0",
                                              "input_roles": [{"role": "model"}], "output_roles": [{"role": "y"}]})
    empty = create(api, "sources", {"name": "echo-list"})
    theirs = api_client()
    their_input = create(theirs, "inputs", {"uri": model_uri})
    bad = [
        ({"source": {**source, "colour": 1}, "job": {}}, ["source", "colour"]),
        ({"source": empty, "job": {}}, ["source", "id"]),  # no version yet
        ({"source": source, "source_version": {"version": "2"}, "job": {}}, ["source_version", "version"]),
        ({"source": {"id": source["id"], "name": "echo-list"}, "job": {}}, ["source", "name"]),
        ({"source_version": {**version, "version": "2"}, "job": {}}, ["source_version", "version"]),
        ({"job": {"source_version_id": str(uuid.uuid4())}}, ["job", "source_version_id"]),
        ({"source": source, "job": {}, "role_bindings": [{"role": "model", "input_id": their_input["id"]}]},
         ["role_bindings", 0, "input_id"]),
        ({"source": source, "job": {"organisation_id": "someone-else"}}, ["job", "organisation_id"]),
    ]
    for body, loc in bad:
        assert_detail(api.post(f"{API}/jobs/setup", json=body), 422, loc)
    # another org's source and version are unknown there
    assert_detail(theirs.post(f"{API}/jobs/setup", json={"source_version": version, "job": {}}), 422,
                  ["source_version", "id"])
    assert_detail(theirs.post(f"{API}/source_versions", json={"source_id": source["id"], "version": "1.0.0",
                  "input_roles": [{"role": "model"}], "output_roles": [{"role": "y"}]}), 422, ["source_id"])
    assert_detail(api.get(f"{API}/inputs/{their_input['id']}"), 404, ["input_id"])
    assert_detail(api.post(f"{API}/inputs", json={"uri": "file:///etc/passwd"}), 422, ["uri"])
    assert job_count(api) == 0 and job_count(theirs) == 0
