"""Issue 21 over a real `runner api`, real Redis, real prefork workers and real storage:
every operation of ByteNite's customer-API reference and of its older layout, results a
client can wait on, bucket destinations of several files, templates that carry their
data defaults, and the file upload of the temporary-bucket flow."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.api_fixtures import run_api
from tests.conftest import REPO
from tests.httpserver import http_server
from tests.test_api_bytenite import CUSTOMER, assert_bytenite_error, create, job_count, wait_bytenite
from tests.test_engines import ENGINES

pytestmark = pytest.mark.timeout(300)
DONE = {"JOB_STATE_COMPLETE", "JOB_STATE_FAILED"}
TEXT = "".join(f"the quick fox {i}\n" for i in range(40))


@pytest.fixture
def bytenite(api_server, api_client):
    """A ByteNite client's session: its own org, the token sent bare."""
    return api_client(bare=True)


def import_template(api_server, tmp_path: Path, engines: Path = ENGINES, **fields) -> tuple[str, str]:
    """``runner template import`` of a template of ``fields`` under a fresh name: (ref, stderr)."""
    path = tmp_path / f"template-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps({"id": f"bn-{uuid.uuid4().hex[:10]}", **fields}))
    done = api_server.cli("template", "import", str(path), "--engines", str(engines))
    return done.stdout.strip(), done.stderr


def download(link: dict) -> httpx.Response:
    """A result link fetched as ByteNite's clients do: no Authorization header."""
    answer = httpx.get(link["link"], timeout=30)
    assert answer.status_code == 200, answer.text
    return answer


# -- item 1: results a client can wait on ------------------------------------------------

def test_results_answer_202_until_the_job_completes_and_400_with_the_reason_once_it_failed(bytenite, worker):
    job = create(bytenite, templateId="sleepy", params={"partitioner": {"count": 1}, "app": {"seconds": 30}})
    draft = bytenite.get(f"{CUSTOMER}/jobs/{job['id']}/results")
    assert draft.status_code == 202 and draft.json()["results"] == [], draft.text
    assert "JOB_STATE_NEW" in draft.json()["message"] and "/run" in draft.json()["message"]
    bytenite.post(f"{CUSTOMER}/jobs/{job['id']}/run")
    wait_bytenite(bytenite, job["id"], {"JOB_STATE_RUNNING"})
    running = bytenite.get(f"{CUSTOMER}/jobs/{job['id']}/results")
    assert running.status_code == 202 and running.json()["results"] == []
    assert "JOB_STATE_RUNNING" in running.json()["message"]
    bytenite.post(f"{CUSTOMER}/jobs/{job['id']}/abort")

    failing = create(bytenite, templateId="exploding")
    bytenite.post(f"{CUSTOMER}/jobs/{failing['id']}/run")
    ended = wait_bytenite(bytenite, failing["id"], DONE)
    refused = assert_bytenite_error(bytenite.get(f"{CUSTOMER}/jobs/{failing['id']}/results"), 400)
    assert refused["message"] == ended["errorMessage"] and ended["state"] == "JOB_STATE_FAILED"


# -- items 2 and 3: template data defaults; a bucket of several files ----------------------

def test_an_imported_templates_destination_and_default_params_are_each_new_jobs(api_server, bytenite, worker,
                                                                               tmp_path):
    ref, stderr = import_template(
        api_server, tmp_path, partitioner="fanout", app="caseconv", assembler="zipper",
        params={"partitioner": {"lines_per_chunk": 10}}, default_params={"assembler": {"name": "results_archive.zip"}},
        dataSource={"dataSourceDescriptor": "bypass"}, dataDestination={"dataSourceDescriptor": "bucket"})
    assert "kept as each job's defaults (a client's own win): dataSource, dataDestination" in stderr
    assert "ignored" not in stderr
    listed = bytenite.get(f"{CUSTOMER}/jobs/templates", params={"limit": 500}).json()["data"]
    mine = next(template for template in listed if template["id"] == ref)
    assert mine["params"]["assembler"] == {"name": "results_archive.zip"} and mine["testPieces"] == 3
    assert mine["dataDestination"] == {"dataSourceDescriptor": "bucket", "params": {}}

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "in.txt").write_text(TEXT)
    with http_server(tmp_path / "site") as site:
        url = {"dataSourceDescriptor": "url", "params": {"url": site.url_for("/in.txt")}}
        job = create(bytenite, templateId=ref, name="no destination given")
        assert job["dataDestination"] == {"dataSourceDescriptor": "bucket", "params": {}}
        assert job["dataSource"] == {"dataSourceDescriptor": "bypass", "params": {}}
        assert bytenite.patch(f"{CUSTOMER}/jobs/{job['id']}/datasource", json={"dataSource": url}).status_code == 200
        given = create(bytenite, templateId=ref, dataSource=url, dataDestination={"dataSourceDescriptor": "bypass"})
        assert given["dataDestination"] == {"dataSourceDescriptor": "bypass", "params": {}}  # the client's own wins
        for each in (job, given):
            bytenite.post(f"{CUSTOMER}/jobs/{each['id']}/run", json={})
            assert wait_bytenite(bytenite, each["id"], DONE)["state"] == "JOB_STATE_COMPLETE"
    links = bytenite.get(f"{CUSTOMER}/jobs/{job['id']}/results").json()["results"]
    assert [(link["name"], link["contentType"]) for link in links] == [("results_archive.zip", "application/zip")]
    archive = zipfile.ZipFile(io.BytesIO(download(links[0]).content))
    assert len(archive.namelist()) == 4  # 40 lines, 10 a chunk
    kept = bytenite.get(f"{CUSTOMER}/jobs/{given['id']}/results").json()["results"]  # bypass: the artifacts, not
    assert [link["name"] for link in kept] == ["results_archive.zip"]               # a summary of file:// paths
    assert zipfile.ZipFile(io.BytesIO(download(kept[0]).content)).namelist() == archive.namelist()


def wordcount_template(api_server, tmp_path: Path) -> str:
    """Runner's own examples/bytenite template (its assembler writes two files), imported anew."""
    template = json.loads((REPO / "examples" / "bytenite" / "template.json").read_text())
    return import_template(api_server, tmp_path, engines=REPO / "examples" / "bytenite",
                           **{k: v for k, v in template.items() if k != "id"})[0]


@pytest.mark.parametrize("name,prefix", [(None, ""), ("out/", "out/")])
def test_a_bucket_destination_takes_every_file_the_assembler_writes(api_server, bytenite, worker, tmp_path,
                                                                    name, prefix):
    ref = wordcount_template(api_server, tmp_path)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "book.txt").write_text(TEXT)
    destination = {"dataSourceDescriptor": "bucket", "params": {"name": name} if name else {}}
    with http_server(tmp_path / "site") as site:
        job = create(bytenite, templateId=ref, dataDestination=destination,
                     dataSource={"dataSourceDescriptor": "url", "params": {"url": site.url_for("/book.txt")}})
        assert job["dataDestination"] == destination
        bytenite.post(f"{CUSTOMER}/jobs/{job['id']}/run", json={})
        done = wait_bytenite(bytenite, job["id"], DONE)
    assert done["state"] == "JOB_STATE_COMPLETE", done
    links = bytenite.get(f"{CUSTOMER}/jobs/{job['id']}/results").json()["results"]
    assert [(link["name"], link["contentType"]) for link in links] == [
        (f"{prefix}counts.json", "application/json"), (f"{prefix}top.txt", "text/plain")]
    counts = download(links[0])
    assert counts.headers["content-type"].startswith("application/json") and counts.json()["fox"] == 40
    assert "40 fox" in download(links[1]).text


# -- items 4 and 5: route coverage, paging -----------------------------------------------

def test_the_docs_flow_runs_through_every_route_of_the_reference_with_a_bare_token(bytenite, worker):
    info = bytenite.get(f"{CUSTOMER}/info")
    assert info.status_code == 200 and info.json()["api"] == "customer"
    templates = bytenite.get(f"{CUSTOMER}/jobs/templates", params={"limit": 2, "offset": 1}).json()
    assert len(templates["data"]) == 2 and templates["pagination"]["offset"] == 1
    assert templates["pagination"]["hasPrevious"] is True
    upload = {"dataSourceDescriptor": "file", "params": {"@type": "type.googleapis.com/bytenite.data_source."
                                                                  "LocalFileDataSource", "name": "lines.txt"}}
    tested = bytenite.post(f"{CUSTOMER}/datasource/test", json={"dataSource": upload})
    assert tested.status_code == 200 and tested.json()["ok"] is True

    job = create(bytenite, templateId="echo-lines", name="docs flow")
    renamed = bytenite.patch(f"{CUSTOMER}/jobs/{job['id']}/jobname", json={"name": "docs flow, renamed"})
    assert renamed.status_code == 200 and renamed.json()["job"]["name"] == "docs flow, renamed"
    answer = bytenite.patch(f"{CUSTOMER}/jobs/{job['id']}/datasource",
                            json={"dataSource": upload, "dataDestination": {"dataSourceDescriptor": "bucket"}})
    assert answer.status_code == 200, answer.text
    temp_url = answer.json()["job"]["dataSource"]["params"]["tempUrl"]
    assert httpx.put(temp_url, content=TEXT.encode(), timeout=30).status_code == 200  # no token: the link is signed
    completed = bytenite.patch(f"{CUSTOMER}/jobs/{job['id']}/uploadcompleted", json={})
    assert completed.status_code == 200 and completed.json()["bytes"] == len(TEXT), completed.text
    assert bytenite.patch(f"{CUSTOMER}/jobs/{job['id']}/params", json={"partitioner": {}, "app": {},
                                                                       "assembler": {}}).status_code == 200
    configs = bytenite.patch(f"{CUSTOMER}/jobs/{job['id']}/configs", json={"taskTimeout": 60, "jobTimeout": "300"})
    assert configs.status_code == 200, configs.text
    assert bytenite.get(f"{CUSTOMER}/jobs/{job['id']}/configs").json() == {
        "config": {"taskTimeout": 60, "jobTimeout": 300, "isTestJob": False}}
    assert bytenite.post(f"{CUSTOMER}/jobs/{job['id']}/run", json={}).status_code == 200
    tasks = bytenite.post(f"{CUSTOMER}/jobs/runningTasks", json={"jobId": job["id"]})
    assert tasks.status_code == 200 and tasks.json()["total"] >= len(tasks.json()["tasks"])
    done = wait_bytenite(bytenite, job["id"], DONE)
    assert done["state"] == "JOB_STATE_COMPLETE" and done["name"] == "docs flow, renamed", done
    assert bytenite.post(f"{CUSTOMER}/jobs/runningTasks", json={"jobId": job["id"]}).json() == {"tasks": [],
                                                                                                "total": 0}

    found = bytenite.post(f"{CUSTOMER}/jobs/filter", json={"state": ["JOB_STATE_COMPLETE"], "name": "RENAMED"})
    assert [row["id"] for row in found.json()["data"]] == [job["id"]]
    assert bytenite.post(f"{CUSTOMER}/jobs/filter", json={"state": ["JOB_STATE_FAILED"]}).json()["data"] == []
    assert_bytenite_error(bytenite.post(f"{CUSTOMER}/jobs/filter", json={"state": ["DONE"]}), 422, "state[0]")
    kinds = [event["type"] for event in bytenite.get(f"{CUSTOMER}/events", params={"jobId": job["id"]}).json()
             ["events"]]
    assert "state" in kinds
    assert bytenite.get(f"{CUSTOMER}/jobs", params={"limit": 1}).json()["data"][0]["id"] == job["id"]
    assert bytenite.get(f"{CUSTOMER}/jobs/{job['id']}").json()["job"]["state"] == "JOB_STATE_COMPLETE"
    links = bytenite.get(f"{CUSTOMER}/jobs/{job['id']}/results").json()["results"]
    assert [(link["name"], link["contentType"]) for link in links] == [("result.txt", "text/plain")]
    assert download(links[0]).text == TEXT
    assert bytenite.post(f"{CUSTOMER}/logs", json={"jobId": job["id"]}).status_code == 200
    assert "already ended" in bytenite.post(f"{CUSTOMER}/jobs/{job['id']}/abort").json()["message"]
    assert bytenite.delete(f"{CUSTOMER}/jobs/{job['id']}").status_code == 200
    assert job_count(bytenite) == 0


def test_the_older_layout_runs_its_notebook_flow(bytenite, worker):
    info = bytenite.get(f"{CUSTOMER}/jobs/datasource/info").json()
    assert "file" in [entry["dataSourceDescriptor"] for entry in info["dataSources"]]
    job = bytenite.post(f"{CUSTOMER}/jobs", json={"name": "Example job", "templateId": "echo-lines"}).json()["job"]
    body = {"dataSource": {"dataSourceDescriptor": "file", "params": {
                "@type": "type.googleapis.com/bytenite.data_source.LocalFileDataSource", "name": "", "url": "",
                "password": "", "username": ""}},
            "dataDestination": {"dataSourceDescriptor": "bucket", "params": {}}}
    answer = bytenite.post(f"{CUSTOMER}/jobs/datasource/{job['id']}", json=body)
    assert answer.status_code == 200, answer.text
    temp_url = answer.json()["job"]["dataSource"]["params"]["tempUrl"]
    put = httpx.put(temp_url, content=TEXT.encode(), headers={"Content-Disposition": 'attachment; filename="a.txt"'},
                    timeout=30)
    assert put.status_code == 200, put.text
    assert bytenite.post(f"{CUSTOMER}/jobs/uploadcompleted/{job['id']}", json={}).status_code == 200
    params = bytenite.post(f"{CUSTOMER}/jobs/params/{job['id']}", json={"data": {}, "preset": "unpackaged"})
    assert params.status_code == 200, params.text
    assert bytenite.post(f"{CUSTOMER}/jobs/run/{job['id']}", json={}).json()["ok"] is True
    assert wait_bytenite(bytenite, job["id"], DONE)["state"] == "JOB_STATE_COMPLETE"
    links = bytenite.get(f"{CUSTOMER}/jobs/{job['id']}/results").json()["results"]
    assert [download(link).text for link in links] == [TEXT]
    assert_bytenite_error(bytenite.post(f"{CUSTOMER}/jobs/params/{job['id']}", json={"data": {"x": 1}}), 409)


def test_templates_is_a_route_not_a_job_and_lists_page_by_limit_and_offset(bytenite):
    listed = bytenite.get(f"{CUSTOMER}/jobs/templates")
    assert listed.status_code == 200 and "echo-list@1.0.0" in [t["id"] for t in listed.json()["data"]]
    ids = [create(bytenite, name=f"n{i}")["id"] for i in range(3)]
    pages = [bytenite.get(f"{CUSTOMER}/jobs", params={"limit": 1, "offset": offset}).json() for offset in range(3)]
    assert [page["data"][0]["id"] for page in pages] == ids[::-1]
    assert pages[1]["pagination"] == {"total": 3, "offset": 1, "hasPrevious": True, "hasNext": True}
    both = bytenite.get(f"{CUSTOMER}/jobs", params={"limit": 1, "offset": 0, "pagination.offset": 2}).json()
    assert [job["id"] for job in both["data"]] == [ids[0]]  # pagination.* wins
    assert_bytenite_error(bytenite.get(f"{CUSTOMER}/jobs", params={"offset": "x"}), 422, "offset")


def test_renames_configs_and_events_stay_in_the_callers_org(api_client, worker):
    owner, other = api_client(bare=True), api_client(bare=True)
    job = create(owner, params={"partitioner": {"count": 2}})
    calls = [("PATCH", f"/jobs/{job['id']}/jobname", {"name": "theirs"}), ("GET", f"/jobs/{job['id']}/configs", None),
             ("PATCH", f"/jobs/{job['id']}/configs", {"taskTimeout": 5}),
             ("PATCH", f"/jobs/{job['id']}/uploadcompleted", {}), ("POST", f"/jobs/uploadcompleted/{job['id']}", {}),
             ("POST", f"/jobs/run/{job['id']}", {}), ("POST", f"/jobs/datasource/{job['id']}", {}),
             ("POST", f"/jobs/params/{job['id']}", {"data": {}}), ("POST", "/jobs/runningTasks", {"jobId": job["id"]}),
             ("GET", f"/events?jobId={job['id']}", None)]
    for method, path, body in calls:
        assert_bytenite_error(other.request(method, CUSTOMER + path, json=body), 404)
    assert other.post(f"{CUSTOMER}/jobs/filter", json={}).json()["data"] == []
    assert owner.get(f"{CUSTOMER}/jobs/{job['id']}").json()["job"] == job
    assert_bytenite_error(owner.patch(f"{CUSTOMER}/jobs/{job['id']}/configs", json={"jobTimeout": 10**9}), 422,
                          "jobTimeout")
    too_long = owner.patch(f"{CUSTOMER}/jobs/{job['id']}/configs", json={"jobTimeout": 200 * 24 * 3600})
    assert "RUNNER_MAX_TIMEOUT_SECONDS" in assert_bytenite_error(too_long, 422, "jobTimeout")["error"]["description"]
    owner.post(f"{CUSTOMER}/jobs/{job['id']}/run")
    wait_bytenite(owner, job["id"], DONE)
    assert_bytenite_error(owner.patch(f"{CUSTOMER}/jobs/{job['id']}/configs", json={"taskTimeout": 5}), 409)
    assert owner.patch(f"{CUSTOMER}/jobs/{job['id']}/jobname", json={"name": "after"}).json()["job"]["name"] == "after"


# -- item 12: the upload ----------------------------------------------------------------

def upload_job(api: httpx.Client, name: str = "in.txt") -> tuple[dict, str]:
    job = create(api, templateId="echo-lines", dataSource={"dataSourceDescriptor": "file", "params": {"name": name}})
    return job, job["dataSource"]["params"]["tempUrl"]


def test_an_upload_is_streamed_past_the_body_limit_and_only_its_signed_link_takes_it(bytenite, api_server, worker):
    job, temp_url = upload_job(bytenite)
    assert_bytenite_error(bytenite.patch(f"{CUSTOMER}/jobs/{job['id']}/uploadcompleted"), 409)
    big = b"0123456789abcdef\n" * (3 * 1024 * 1024 // 17)  # 3 MiB: over the 1 MiB request-body limit

    def chunks():
        for start in range(0, len(big), 256 * 1024):
            yield big[start:start + 256 * 1024]

    assert httpx.put(temp_url, content=chunks(), timeout=60).status_code == 200  # chunked, no Content-Length
    assert bytenite.patch(f"{CUSTOMER}/jobs/{job['id']}/uploadcompleted").json()["bytes"] == len(big)
    form = httpx.put(temp_url, files={"my_file_name": ("a.txt", b"x")}, timeout=30)
    assert "raw bytes" in assert_bytenite_error(form, 415)["message"]
    assert bytenite.patch(f"{CUSTOMER}/jobs/{job['id']}/uploadcompleted").json()["bytes"] == len(big)  # kept
    forged = httpx.URL(temp_url).copy_set_param("signature", "0" * 64)
    assert_bytenite_error(httpx.put(forged, content=b"x", timeout=30), 403)
    other, _ = upload_job(bytenite)
    moved = temp_url.replace(f"/uploads/{job['id']}/", f"/uploads/{other['id']}/")
    assert_bytenite_error(httpx.put(moved, content=b"x", timeout=30), 403)
    assert_bytenite_error(bytenite.post(f"{CUSTOMER}/jobs", json={"templateId": "echo-lines", "dataSource": {
        "dataSourceDescriptor": "file", "params": {"name": "../x"}}}), 422, "dataSource.params.name")
    bucket = create(bytenite, templateId="echo-lines", dataSource={"dataSourceDescriptor": "bucket"})
    assert bucket["dataSource"]["dataSourceDescriptor"] == "file" and bucket["dataSource"]["params"]["tempUrl"]
    assert httpx.put(bucket["dataSource"]["params"]["tempUrl"], content=b"a\n", timeout=30).status_code == 200
    ran = bytenite.post(f"{CUSTOMER}/jobs/{bucket['id']}/run")
    assert ran.status_code == 200, ran.text
    assert "tempUrl" not in bytenite.get(f"{CUSTOMER}/jobs/{bucket['id']}").json()["job"]["dataSource"]["params"]
    assert wait_bytenite(bytenite, bucket["id"], DONE)["state"] == "JOB_STATE_COMPLETE"


def test_an_upload_over_the_cap_is_refused_and_stores_nothing(api_env, server_dir):
    env = {**api_env, "RUNNER_API_MAX_UPLOAD_BYTES": "4096"}
    with run_api(env, server_dir / "api-upload-cap.log") as server:
        key = server.create_key(f"cap-{uuid.uuid4().hex[:8]}")["key"]
        with server.client(server.token(key), bare=True) as api:
            job, temp_url = upload_job(api)
            assert_bytenite_error(httpx.put(temp_url, content=b"x" * 5000, timeout=30), 413)
            assert_bytenite_error(httpx.put(temp_url, content=iter([b"x" * 3000, b"y" * 3000]), timeout=30), 413)
            assert_bytenite_error(api.patch(f"{CUSTOMER}/jobs/{job['id']}/uploadcompleted"), 409)
            assert httpx.put(temp_url, content=b"x" * 4096, timeout=30).status_code == 200
            assert api.patch(f"{CUSTOMER}/jobs/{job['id']}/uploadcompleted").json()["bytes"] == 4096
