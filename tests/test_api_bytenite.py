"""ByteNite's customer API (/v1/customer) over a real `runner api`, real Redis, real prefork
workers and real SeaweedFS: a ByteNite client works with only its base URL changed."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from runner.api.bytenite_views import sign
from runner.api.keys import ApiKeys
from runner.store import StatusStore
from tests.api_fixtures import wait_state
from tests.httpserver import http_server

CUSTOMER = "/v1/customer"


def wait_bytenite(api: httpx.Client, job_id: str, states: set[str], timeout: float = 90) -> dict:
    """Poll GET /jobs/{id} as ByteNite's clients do, until the state is one of ``states``."""
    return wait_state(api, f"{CUSTOMER}/jobs/{job_id}", states, timeout, job_of=lambda body: body["job"])


def create(api: httpx.Client, **body) -> dict:
    answer = api.post(f"{CUSTOMER}/jobs", json={"templateId": "echo-list", **body})
    assert answer.status_code == 200, answer.text
    return answer.json()["job"]


def job_count(api: httpx.Client) -> int:
    return api.get(f"{CUSTOMER}/jobs").json()["pagination"]["total"]


def assert_bytenite_error(answer: httpx.Response, status: int, field: str | None = None) -> dict:
    """``answer`` is ``status`` in ByteNite's error shape, naming ``field`` when given."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["ok"] is False and isinstance(body["message"], str) and body["message"]
    assert set(body["error"]) == {"code", "message", "description"} and body["error"]["code"] == status
    if field is not None:
        assert field in body["error"]["description"], (field, body)
    return body


@pytest.fixture
def bytenite(api_server, api_client):
    """A ByteNite client's session: its own org, the token sent bare."""
    return api_client(bare=True)


def test_a_bytenite_client_runs_its_documented_flow_with_only_the_base_url_changed(api_server, worker):
    org = f"bn-{uuid.uuid4().hex[:8]}"
    api_key = api_server.create_key(org)["key"]
    base = httpx.Client(base_url=api_server.url, timeout=30)
    token = base.post("/v1/auth/access_token", json={"apiKey": api_key}).json()
    assert token["expiresIn"] == "3600" and token["scope"] == f"org:{org}"
    api = httpx.Client(base_url=api_server.url, headers={"Authorization": token["token"]}, timeout=30)

    created = api.post(f"{CUSTOMER}/jobs", json={"templateId": "echo-list", "name": "flow", "description": "demo"})
    assert created.status_code == 200, created.text
    job, info = created.json()["job"], created.json()["templateInfo"]
    assert job["state"] == "JOB_STATE_NEW" and job["runnerState"] == "draft" and job["description"] == "demo"
    assert info == {"id": "echo-list@1.0.0", "owner": "", "description": "", "app": "echo",
                    "partitioner": "replicas", "assembler": "json_list"}
    job_id = job["id"]
    bypass = {"dataSourceDescriptor": "bypass", "params": {"@type": "type.googleapis.com/api.v1.BypassParams"}}
    answer = api.patch(f"{CUSTOMER}/jobs/{job_id}/datasource", json={"dataSource": bypass, "dataDestination": bypass})
    assert answer.status_code == 200 and answer.json()["job"]["dataDestination"]["dataSourceDescriptor"] == "bypass"
    answer = api.patch(f"{CUSTOMER}/jobs/{job_id}/params", json={"partitioner": {"count": 5}, "app": {},
                                                                 "assembler": {}})
    assert answer.status_code == 200 and answer.json()["job"]["params"]["partitioner"] == {"count": 5}
    ran = api.post(f"{CUSTOMER}/jobs/{job_id}/run", json={"taskTimeout": "60", "jobTimeout": 120})
    assert ran.status_code == 200 and ran.json()["ok"] is True, ran.text

    done = wait_bytenite(api, job_id, {"JOB_STATE_COMPLETE", "JOB_STATE_FAILED"})
    assert done["state"] == "JOB_STATE_COMPLETE" and done["runnerState"] == "completed", done
    assert done["numChunks"] == 5 and done["endedAt"] and done["errorMessage"] is None
    assert done["config"] == {"taskTimeout": 60, "jobTimeout": 120, "isTestJob": False}

    results = api.get(f"{CUSTOMER}/jobs/{job_id}/results")
    assert results.status_code == 200, results.text
    links = results.json()["results"]
    assert [link["name"] for link in links] == ["result.json"]
    native = api.get(f"/v1/jobs/{job_id}/result").json()["result"]
    assert native == [0, 1, 2, 3, 4]
    for link in links:
        download = httpx.get(link["link"], timeout=30)  # no Authorization header
        assert download.status_code == 200, download.text
        assert json.loads(download.content) == native


def test_a_bucket_destination_writes_under_output_and_its_link_downloads_it(bytenite, worker, tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    text = "".join(f"line {i}\n" for i in range(30))
    (root / "in.txt").write_text(text)
    with http_server(root) as site:
        job = create(bytenite, templateId="echo-lines@1.0.0",
                     dataSource={"dataSourceDescriptor": "url", "params": {"url": site.url_for("/in.txt")}},
                     dataDestination={"dataSourceDescriptor": "bucket", "params": {"name": "all.txt"}})
        assert job["dataSource"] == {"dataSourceDescriptor": "url", "params": {"url": site.url_for("/in.txt")}}
        assert job["dataDestination"] == {"dataSourceDescriptor": "bucket", "params": {"name": "all.txt"}}
        assert bytenite.post(f"{CUSTOMER}/jobs/{job['id']}/run", json={}).status_code == 200
        done = wait_bytenite(bytenite, job["id"], {"JOB_STATE_COMPLETE", "JOB_STATE_FAILED"})
    assert done["state"] == "JOB_STATE_COMPLETE", done
    assert "output/all.txt" in bytenite.get(f"/v1/jobs/{job['id']}/artifacts").json()["items"]
    links = bytenite.get(f"{CUSTOMER}/jobs/{job['id']}/results").json()["results"]
    assert [link["name"] for link in links] == ["all.txt"]
    download = httpx.get(links[0]["link"], timeout=30)
    assert download.status_code == 200 and download.text == text


def test_s3_descriptors_use_the_fleets_credentials_and_ignore_a_secret(bytenite, worker, s3, bucket):
    s3.client().put_object(Bucket=bucket, Key="in/lines.txt", Body=b"a\nb\nc\n")
    source = {"dataSourceDescriptor": "s3", "params": {"bucketName": bucket, "name": "in/lines.txt",
                                                       "secretId": "my-aws-key", "cloudRegion": "us-east-1"}}
    destination = {"dataSourceDescriptor": "aws", "params": {"bucketName": bucket, "name": "out/all.txt"}}
    job = create(bytenite, templateId="echo-lines", dataSource=source, dataDestination=destination)
    assert job["dataSource"] == {"dataSourceDescriptor": "s3", "params": {"bucketName": bucket,
                                                                          "name": "in/lines.txt"}}
    native = bytenite.get(f"/v1/jobs/{job['id']}").json()
    assert native["source"] == f"s3://{bucket}/in/lines.txt" and native["destination"] == f"s3://{bucket}/out/all.txt"
    assert any("my-aws-key" in warning and "ignored" in warning for warning in native["warnings"])
    bytenite.post(f"{CUSTOMER}/jobs/{job['id']}/run")
    assert wait_bytenite(bytenite, job["id"], {"JOB_STATE_COMPLETE", "JOB_STATE_FAILED"})["state"] == \
        "JOB_STATE_COMPLETE"
    links = bytenite.get(f"{CUSTOMER}/jobs/{job['id']}/results").json()["results"]
    assert [link["name"] for link in links] == ["all.txt"]
    written = s3.client().get_object(Bucket=bucket, Key="out/all.txt")["Body"].read()
    assert written == b"a\nb\nc\n" and httpx.get(links[0]["link"], timeout=30).content == written


def test_create_takes_everything_in_one_body_and_reads_back_as_the_same_job(bytenite):
    job = create(bytenite, name="all-in-one", description="one body",
                 params={"partitioner": {"count": 7}, "preset": "ignored"},
                 config={"taskTimeout": "45", "jobTimeout": "90", "isTestJob": True},
                 dataDestination={"dataSourceDescriptor": "bucket", "params": {}})
    assert job["templateId"] == "echo-list@1.0.0" and job["name"] == "all-in-one"
    assert job["config"] == {"taskTimeout": 45, "jobTimeout": 90, "isTestJob": True}
    assert job["params"]["partitioner"] == {"count": 7}
    assert job["dataDestination"] == {"dataSourceDescriptor": "bucket", "params": {}}
    assert job["createdAt"].endswith("Z") and job["startedAt"] is None and job["endedAt"] is None
    native = bytenite.get(f"/v1/jobs/{job['id']}").json()
    assert native["state"] == "draft" and native["task_timeout"] == 45 and native["test"] is True
    assert native["destination"].endswith(f"/{job['id']}/output/")  # a folder: whatever the assembler writes
    assert bytenite.get(f"{CUSTOMER}/jobs/{job['id']}").json()["job"] == job


def test_run_takes_the_config_form_and_runs_a_test_job(bytenite, worker):
    job = create(bytenite, params={"partitioner": {"count": 10}})
    ran = bytenite.post(f"{CUSTOMER}/jobs/{job['id']}/run",
                        json={"config": {"taskTimeout": "30", "jobTimeout": "120", "isTestJob": True}})
    assert ran.status_code == 200, ran.text
    done = wait_bytenite(bytenite, job["id"], {"JOB_STATE_COMPLETE", "JOB_STATE_FAILED"})
    assert done["state"] == "JOB_STATE_COMPLETE" and done["config"]["isTestJob"] is True
    assert bytenite.get(f"/v1/jobs/{job['id']}/result").json()["result"] == [0, 1, 2, 3]  # test_pieces=4
    again = bytenite.post(f"{CUSTOMER}/jobs/{job['id']}/run", json={})
    assert_bytenite_error(again, 409)


def test_abort_deletes_a_job_never_run_and_cancels_a_running_one(bytenite, worker):
    never = create(bytenite)
    answer = bytenite.post(f"{CUSTOMER}/jobs/{never['id']}/abort")
    assert answer.status_code == 200 and "deleted" in answer.json()["message"]
    assert_bytenite_error(bytenite.get(f"{CUSTOMER}/jobs/{never['id']}"), 404)

    job = create(bytenite, templateId="sleepy", params={"partitioner": {"count": 2}, "app": {"seconds": 30}})
    bytenite.post(f"{CUSTOMER}/jobs/{job['id']}/run")
    wait_bytenite(bytenite, job["id"], {"JOB_STATE_RUNNING"})
    answer = bytenite.post(f"{CUSTOMER}/jobs/{job['id']}/abort")
    assert answer.status_code == 200 and "cancelled" in answer.json()["message"]
    ended = bytenite.get(f"{CUSTOMER}/jobs/{job['id']}").json()["job"]
    assert ended["state"] == "JOB_STATE_FAILED" and ended["runnerState"] == "cancelled"
    assert "cancelled by API key" in ended["errorMessage"] and ended["endedAt"]
    refused = assert_bytenite_error(bytenite.get(f"{CUSTOMER}/jobs/{job['id']}/results"), 400)
    assert refused["message"] == ended["errorMessage"]


def test_a_failed_job_reads_as_failed_with_the_reason(bytenite, worker):
    job = create(bytenite, templateId="exploding")
    bytenite.post(f"{CUSTOMER}/jobs/{job['id']}/run")
    done = wait_bytenite(bytenite, job["id"], {"JOB_STATE_COMPLETE", "JOB_STATE_FAILED"})
    assert done["state"] == "JOB_STATE_FAILED" and done["runnerState"] == "failed"
    assert done["errorMessage"].startswith(f"job {job['id']} failed")


def test_delete_removes_the_job_everywhere(bytenite):
    job = create(bytenite)
    answer = bytenite.delete(f"{CUSTOMER}/jobs/{job['id']}")
    assert answer.status_code == 200 and answer.json()["ok"] is True
    assert_bytenite_error(bytenite.get(f"{CUSTOMER}/jobs/{job['id']}"), 404)
    assert bytenite.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert_bytenite_error(bytenite.delete(f"{CUSTOMER}/jobs/{job['id']}"), 404)
    assert job_count(bytenite) == 0


def test_the_list_pages_newest_first(bytenite):
    ids = [create(bytenite, name=f"n{i}")["id"] for i in range(3)]
    first = bytenite.get(f"{CUSTOMER}/jobs", params={"pagination.limit": "2", "pagination.offset": "0"}).json()
    assert first["pagination"] == {"total": 3, "offset": 0, "hasPrevious": False, "hasNext": True}
    assert [job["id"] for job in first["data"]] == ids[::-1][:2]
    second = bytenite.get(f"{CUSTOMER}/jobs", params={"pagination.limit": 2, "pagination.offset": 2}).json()
    assert second["pagination"] == {"total": 3, "offset": 2, "hasPrevious": True, "hasNext": False}
    assert [job["id"] for job in second["data"]] == [ids[0]]


def test_logs_group_lines_by_stage_and_task(bytenite, worker):
    job = create(bytenite, templateId="chatty", params={"partitioner": {"count": 3}, "app": {"lines": 2}})
    bytenite.post(f"{CUSTOMER}/jobs/{job['id']}/run")
    assert wait_bytenite(bytenite, job["id"], {"JOB_STATE_COMPLETE", "JOB_STATE_FAILED"})["state"] == \
        "JOB_STATE_COMPLETE"
    everything = bytenite.post(f"{CUSTOMER}/logs", json={"jobId": job["id"]})
    assert everything.status_code == 200, everything.text
    body = everything.json()
    assert set(body) == {"partitioner", "assembler", "taskrunner"} and set(body["taskrunner"]) == {"0", "1", "2"}
    said = [entry for entry in body["taskrunner"]["1"]["logs"] if entry["container"] == "app"]
    assert [entry["log"] for entry in said] == ["piece 1 says 0", "piece 1 says 1"]
    assert said[0]["level"] == "info" and said[0]["timestamp"].endswith("Z")
    assert body["partitioner"]["logs"], "the job's own lines (partitioned, completed) are the partitioner's"
    only = bytenite.post(f"{CUSTOMER}/logs", json={"jobId": job["id"], "taskIds": ["2"], "levels": ["INFO"]}).json()
    assert set(only["taskrunner"]) == {"2"} and only["partitioner"]["logs"] == []
    assert bytenite.post(f"{CUSTOMER}/logs", json={"jobId": job["id"], "levels": ["error"]}).json()["taskrunner"] == {}


def test_result_links_refuse_a_changed_name_a_bad_signature_and_expiry(bytenite, worker, redis_url):
    job = create(bytenite, params={"partitioner": {"count": 2}})
    bytenite.post(f"{CUSTOMER}/jobs/{job['id']}/run")
    wait_bytenite(bytenite, job["id"], {"JOB_STATE_COMPLETE"})
    link = httpx.URL(bytenite.get(f"{CUSTOMER}/jobs/{job['id']}/results").json()["results"][0]["link"])
    assert httpx.get(link, timeout=30).json() == [0, 1]
    renamed = link.copy_with(path=link.path.replace("result.json", "other.json"))
    assert_bytenite_error(httpx.get(renamed, timeout=30), 403)
    forged = link.copy_set_param("signature", "0" * 64)
    assert_bytenite_error(httpx.get(forged, timeout=30), 403)
    assert_bytenite_error(httpx.get(link.copy_remove_param("signature"), timeout=30), 422, "signature")
    expires, signature = sign(ApiKeys(StatusStore(redis_url)).link_secret(), job["id"], "result.json", -10)
    expired = link.copy_set_param("expires", str(expires)).copy_set_param("signature", signature)
    assert_bytenite_error(httpx.get(expired, timeout=30), 403)
    bytenite.delete(f"{CUSTOMER}/jobs/{job['id']}")
    assert_bytenite_error(httpx.get(link, timeout=30), 404)


def test_another_orgs_job_is_404_on_every_route_and_never_listed(api_client):
    owner, other = api_client(bare=True), api_client(bare=True)
    job = create(owner)
    job_id = job["id"]
    calls = [("GET", f"/jobs/{job_id}", None), ("PATCH", f"/jobs/{job_id}/datasource", {}),
             ("PATCH", f"/jobs/{job_id}/params", {"partitioner": {"count": 2}}),
             ("POST", f"/jobs/{job_id}/run", {}), ("POST", f"/jobs/{job_id}/abort", None),
             ("GET", f"/jobs/{job_id}/results", None), ("POST", "/logs", {"jobId": job_id}),
             ("POST", "/jobs", {"jobId": job_id, "templateId": "echo-list", "name": "theirs"}),
             ("DELETE", f"/jobs/{job_id}", None)]
    for method, path, body in calls:
        answer = other.request(method, CUSTOMER + path, json=body)
        assert_bytenite_error(answer, 404)
    assert job_count(other) == 0
    assert owner.get(f"{CUSTOMER}/jobs/{job_id}").json()["job"] == job  # untouched


def test_no_token_is_401_in_bytenites_shape(api_server):
    assert_bytenite_error(httpx.get(f"{api_server.url}{CUSTOMER}/jobs", timeout=30), 401)


BAD_CREATES = [
    ({"templateId": "no-such-template"}, "templateId"),
    ({"templateId": "echo-list", "priorityy": 1}, "priorityy"),
    ({"templateId": "echo-list", "dataSource": {"dataSourceDescriptor": "ftp", "params": {}}},
     "dataSource.dataSourceDescriptor"),
    ({"templateId": "echo-list", "dataDestination": {"dataSourceDescriptor": "file", "params": {}}},
     "dataDestination.dataSourceDescriptor"),
    ({"templateId": "echo-list", "dataSource": {"dataSourceDescriptor": "url", "params": {}}},
     "dataSource.params.url"),
    ({"templateId": "echo-list", "dataSource": {"dataSourceDescriptor": "url", "params": {"url": "ftp://x/y"}}},
     "dataSource.params.url"),
    ({"templateId": "echo-list", "dataSource": {"dataSourceDescriptor": "url",
                                                "params": {"url": "http://169.254.169.254/latest"}}},
     "dataSource.params.url"),
    ({"templateId": "echo-list", "dataSource": {"dataSourceDescriptor": "url", "params": {"url": "http://[::1"}}},
     "dataSource.params.url"),
    ({"templateId": "echo-list", "dataDestination": {"dataSourceDescriptor": "url",
                                                     "params": {"url": "https://example.com/out"}}},
     "dataDestination.dataSourceDescriptor"),
    ({"templateId": "echo-list", "dataDestination": {"dataSourceDescriptor": "s3", "params": {"bucketName": "b"}}},
     "dataDestination.params.name"),
    ({"templateId": "echo-list", "dataDestination": {"dataSourceDescriptor": "bucket",
                                                     "params": {"name": "../escape"}}},
     "dataDestination.params.name"),
    ({"templateId": "echo-list", "params": {"partitioner": {"count": "many"}}}, "params.partitioner.count"),
    ({"templateId": "echo-list", "params": {"app": {"nope": 1}}}, "params.app.nope"),
    ({"templateId": "echo-list", "config": {"taskTimeout": "soon"}}, "config.taskTimeout"),
    ({"templateId": "echo-list", "config": {"jobTimeout": -5}}, "config.jobTimeout"),
    ({"name": "no template"}, "templateId"),
]


@pytest.mark.parametrize("body,field", BAD_CREATES, ids=[field for _, field in BAD_CREATES])
def test_a_bad_create_is_refused_naming_the_field_and_writes_nothing(bytenite, body, field):
    answer = bytenite.post(f"{CUSTOMER}/jobs", json=body)
    assert_bytenite_error(answer, 422, field)
    assert job_count(bytenite) == 0


def test_malformed_json_is_a_4xx_in_bytenites_shape(bytenite):
    answer = bytenite.post(f"{CUSTOMER}/jobs", content=b"{not json", headers={"Content-Type": "application/json"})
    assert_bytenite_error(answer, 422)
    assert job_count(bytenite) == 0


BAD_CHANGES = [
    ("PATCH", "/params", {"partitioner": {"count": "many"}}, "partitioner.count"),
    ("PATCH", "/params", {"mapper": {}}, "mapper"),
    ("PATCH", "/datasource", {"dataSource": {"dataSourceDescriptor": "url", "params": {"url": "file:///etc/passwd"}}},
     "dataSource.params.url"),
    ("PATCH", "/datasource", {"dataDestination": {"params": {}}}, "dataDestination.dataSourceDescriptor"),
    ("POST", "/run", {"taskTimeout": "soon"}, "taskTimeout"),
    ("POST", "/run", {"config": {"jobTimeout": "1.5"}}, "config.jobTimeout"),
    ("POST", "/run", {"isTestJob": "maybe"}, "isTestJob"),
]


@pytest.mark.parametrize("method,path,body,field", BAD_CHANGES, ids=[f"{p}:{f}" for _, p, _, f in BAD_CHANGES])
def test_a_bad_change_is_refused_naming_the_field_and_leaves_the_job_as_it_was(bytenite, method, path, body, field):
    job = create(bytenite)
    answer = bytenite.request(method, f"{CUSTOMER}/jobs/{job['id']}{path}", json=body)
    assert_bytenite_error(answer, 422, field)
    assert bytenite.get(f"{CUSTOMER}/jobs/{job['id']}").json()["job"] == job
    assert job_count(bytenite) == 1


def test_bad_list_and_logs_queries_name_the_field(bytenite):
    assert_bytenite_error(bytenite.get(f"{CUSTOMER}/jobs", params={"pagination.limit": "0"}), 422,
                          "pagination.limit")
    assert_bytenite_error(bytenite.get(f"{CUSTOMER}/jobs", params={"pagination.offset": "x"}), 422,
                          "pagination.offset")
    job = create(bytenite)
    assert_bytenite_error(bytenite.post(f"{CUSTOMER}/logs", json={"jobId": job["id"], "taskIds": ["x"]}), 422,
                          "taskIds[0]")
    assert_bytenite_error(bytenite.post(f"{CUSTOMER}/logs", json={"taskIds": []}), 422, "jobId")


def test_a_job_that_has_run_cannot_be_changed(bytenite, worker):
    job = create(bytenite)
    bytenite.post(f"{CUSTOMER}/jobs/{job['id']}/run")
    wait_bytenite(bytenite, job["id"], {"JOB_STATE_COMPLETE"})
    assert_bytenite_error(bytenite.patch(f"{CUSTOMER}/jobs/{job['id']}/params", json={"partitioner": {"count": 2}}),
                          409)
    assert_bytenite_error(bytenite.patch(f"{CUSTOMER}/jobs/{job['id']}/datasource", json={}), 409)


def test_create_with_the_id_of_a_new_job_updates_it(bytenite):
    job = create(bytenite, name="first", description="kept")
    again = bytenite.post(f"{CUSTOMER}/jobs", json={"jobId": job["id"], "templateId": "echo-list", "name": "second",
                                                   "params": {"partitioner": {"count": 3}}})
    assert again.status_code == 200, again.text
    updated = again.json()["job"]
    assert updated["id"] == job["id"] and updated["name"] == "second" and updated["description"] == "kept"
    assert updated["params"]["partitioner"] == {"count": 3} and job_count(bytenite) == 1
    fresh = bytenite.post(f"{CUSTOMER}/jobs", json={"jobId": None, "templateId": "echo-list"})
    assert fresh.status_code == 200 and fresh.json()["job"]["id"] != job["id"] and job_count(bytenite) == 2
    assert_bytenite_error(bytenite.post(f"{CUSTOMER}/jobs", json={"jobId": "nope", "templateId": "echo-list"}), 404,
                          "jobId")
    assert_bytenite_error(bytenite.post(f"{CUSTOMER}/jobs", json={"jobId": job["id"], "templateId": "squares"}), 409,
                          "templateId")
    assert bytenite.get(f"{CUSTOMER}/jobs/{job['id']}").json()["job"] == updated and job_count(bytenite) == 2


def test_running_a_job_whose_template_needs_an_input_is_refused_and_queues_nothing(bytenite):
    job = create(bytenite, templateId="with-model")
    answer = bytenite.post(f"{CUSTOMER}/jobs/{job['id']}/run", json={"isTestJob": "true"})
    assert_bytenite_error(answer, 422, "inputs.model")
    after = bytenite.get(f"{CUSTOMER}/jobs/{job['id']}").json()["job"]
    assert after["state"] == "JOB_STATE_NEW" and after == job
    assert bytenite.get(f"/v1/jobs/{job['id']}").json()["queued_at"] is None


def test_aborting_a_job_that_has_ended_leaves_it_as_it_was(bytenite, worker):
    job = create(bytenite, params={"partitioner": {"count": 1}})
    bytenite.post(f"{CUSTOMER}/jobs/{job['id']}/run")
    done = wait_bytenite(bytenite, job["id"], {"JOB_STATE_COMPLETE"})
    answer = bytenite.post(f"{CUSTOMER}/jobs/{job['id']}/abort")
    assert answer.status_code == 200 and "already ended" in answer.json()["message"]
    assert bytenite.get(f"{CUSTOMER}/jobs/{job['id']}").json()["job"] == done


def test_a_job_timeout_over_the_limit_is_a_422_naming_config_job_timeout(bytenite, worker):
    days_200 = 200 * 86400
    created = bytenite.post(f"{CUSTOMER}/jobs", json={"templateId": "echo-list", "config": {"jobTimeout": days_200}})
    assert created.status_code == 422, created.text
    assert "config.jobTimeout" in created.json()["error"]["description"]
    made = bytenite.post(f"{CUSTOMER}/jobs", json={"templateId": "echo-list"}).json()["job"]["id"]
    ran = bytenite.post(f"{CUSTOMER}/jobs/{made}/run", json={"jobTimeout": days_200})
    assert ran.status_code == 422 and "config.jobTimeout" in ran.json()["error"]["description"], ran.text
    assert bytenite.get(f"{CUSTOMER}/jobs/{made}").json()["job"]["runnerState"] == "draft"
