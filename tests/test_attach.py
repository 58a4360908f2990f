"""Jobs your own process runs (``runner.attach``): the Brevetti guides' examples run as
written against a real ``runner api``, Redis and worker fleet (whose deadline sweep
notices a silent process); per-job keys are scoped; ended jobs refuse writes; artifacts
stream with bounded memory.

The API here is this module's own, started with a short ``RUNNER_ATTACH_DEAD_SECONDS``
and an artifact cap the 413 test can exceed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pydantic.dataclasses
import pytest

from runner.attach import Job, JobSettings
from runner.attach.settings import build_settings, split_argv
from tests.api_fixtures import ApiServer, run_api, wait_state
from tests.cli import cli_env, run_cli

pytestmark = pytest.mark.timeout(180)

GUIDES = Path(__file__).parent / "guides"
DEAD_SECONDS = 2.0
MAX_ARTIFACT = 250_000_000
MB = 1024 * 1024


@pytest.fixture(scope="module")
def attach_api(api_env: dict[str, str], server_dir: Path, worker) -> Iterator[ApiServer]:
    """A ``runner api`` whose attached jobs count as dead after 2 s of silence; the
    session worker's deadline sweep enforces it."""
    env = {**api_env, "RUNNER_ATTACH_DEAD_SECONDS": str(DEAD_SECONDS),
           "RUNNER_ATTACH_MAX_ARTIFACT_BYTES": str(MAX_ARTIFACT)}
    with run_api(env, server_dir / "attach-api.log") as server:
        yield server


@pytest.fixture
def org(attach_api: ApiServer) -> Iterator[httpx.Client]:
    """httpx on the API as a fresh org."""
    key = attach_api.create_key(f"at-{uuid.uuid4().hex[:8]}")
    with attach_api.client(attach_api.token(key["key"])) as client:
        yield client


def create(org: httpx.Client, **body) -> dict:
    answer = org.post("/v1/jobs", json={"attach": True, **body})
    assert answer.status_code == 201, answer.text
    return answer.json()


def as_job(server: ApiServer, key: str) -> httpx.Client:
    """httpx with the token of a job's own key."""
    return server.client(server.token(key))


def run_script(server: ApiServer, script: Path, *args: str, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120,
                          env={**environ, "RUNNER_API_URL": server.url, **(env or {})})


# -- the guides, as written ------------------------------------------------------------------

def test_guide_example_reads_argv_settings_and_fails_its_job_with_the_guides_own_attribute_error(
        attach_api, org, tmp_path):
    job = create(org, name="guide", settings={})
    script = tmp_path / "guide.py"
    script.write_text((GUIDES / "brevetti_guide.py").read_text()
                      .replace("'UUID'", repr(job["id"])).replace("'key'", repr(job["apiKey"])))
    ran = run_script(attach_api, script, "--my_custom_int_setting", "37")
    # the guide's run() reads self.my_custom_setting, which no job has: the job fails,
    # recording the exception, and the process exits with it
    assert ran.returncode == 1, ran.stderr
    assert "did you mean self.settings.my_custom_int_setting?" in ran.stderr
    ended = wait_state(org, f"/v1/jobs/{job['id']}", {"failed"}, 30)
    assert ended["error"]["type"] == "AttributeError"
    assert "my_custom_setting" in ended["error"]["message"]
    assert "Traceback" in ended["error"]["traceback"]
    output = json.loads(org.get(f"/v1/jobs/{job['id']}/artifacts/output.json").content)
    assert output["job"]["settings"] == {}  # the stored settings; argv's value is the process's
    assert output["state"] == "failed"


def test_guide_settings_class_and_start_complete_a_job_when_run_uses_its_settings(attach_api, org, tmp_path):
    job = create(org, settings={"my_custom_int_setting": 1})
    script = tmp_path / "guide_fixed_name.py"
    script.write_text((GUIDES / "brevetti_guide.py").read_text().replace("self.my_custom_setting",
                                                                         "self.settings.my_custom_int_setting"))
    ran = run_script(attach_api, script, "--job_id", job["id"], "--api_key", job["apiKey"],
                     "--my_custom_int_setting", "37")
    # the guide's init() names 'UUID' and 'key' explicitly: they win over argv, so it is refused
    assert ran.returncode == 1 and "401" in ran.stderr
    script.write_text(script.read_text().replace("MyJob.init(job_id='UUID', api_key='key')", "MyJob.init()"))
    ran = run_script(attach_api, script, "--job_id", job["id"], "--api_key", job["apiKey"],
                     "--my-custom-int-setting", "37")
    assert ran.returncode == 0, ran.stderr
    assert "My setting is 37" in ran.stdout
    assert wait_state(org, f"/v1/jobs/{job['id']}", {"completed"}, 30)["result_summary"] is None


def test_introduction_reports_a_live_metric_output_json_and_completes_with_the_model_archive(
        attach_api, org, tmp_path):
    job = create(org, name="intro")
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(b"model bytes" * 1000)
    ran = run_script(attach_api, GUIDES / "brevetti_intro.py", "--job_id", job["id"], "--api_key", job["apiKey"],
                     env={"MODEL_ARCHIVE": str(archive)})
    assert ran.returncode == 0, ran.stderr
    assert f"Uploading metrics and outputs to {attach_api.url}/ui/jobs/{job['id']}" in ran.stdout
    done = wait_state(org, f"/v1/jobs/{job['id']}", {"completed"}, 30)
    assert done["metrics"]["My custom metric"]["count"] == 1
    assert done["metrics"]["My custom metric"]["last"] == 277
    assert done["result_summary"] == {"model": "model.tar.gz"}
    assert org.get(f"/v1/jobs/{job['id']}/result").json()["result"] == {"model": "model.tar.gz"}
    assert org.get(f"/v1/jobs/{job['id']}/artifacts/model.tar.gz").content == archive.read_bytes()
    output = json.loads(org.get(f"/v1/jobs/{job['id']}/artifacts/output.json").content)
    assert output["metrics"]["My custom metric"]["last"] == 277
    assert output["result_summary"] == {"model": "model.tar.gz"}


def test_notebook_parses_argv_in_both_spellings_warns_of_unknown_keys_and_uses_temp_and_artifact_paths(
        attach_api, org):
    job = create(org, settings={"param_1": -1.0, "some_setting_i_need": 3})
    ran = run_script(attach_api, GUIDES / "brevetti_notebook.py", env={"job_id": job["id"], "api_key": job["apiKey"]})
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0] == str({'param_1': -1.0, 'param_2': 'Param2 not provided',
                            'param_3': {'test_dict_serialization': 'nested2'}, 'custom': {'custom_param': 5}})
    assert lines[1] == "MyCustomObject(custom_param=5) {'custom_param': 5}"
    assert lines[2] == "artifacts/output.json"
    assert Path(lines[3]).name == "something_i_want_to_save_temporarily.txt" and job["id"] in lines[3]
    assert not Path(lines[3]).exists()  # temp space lives until the process exits
    assert lines[4] == lines[6] == "Valuable information"
    assert lines[5] == f"Available at on the website: {attach_api.url}/ui/jobs/{job['id']}/models/{job['id']}/artifacts"
    assert "Invalid config keys: some_setting_i_need" in ran.stderr
    stored = org.get(f"/v1/jobs/{job['id']}/artifacts/something_i_want_to_save.txt")
    assert stored.content == b"Valuable information"
    assert json.loads(org.get(f"/v1/jobs/{job['id']}/artifacts/output.json").content)["settings"]["custom"] == \
        {"custom_param": 5}


def test_argv_takes_dashes_or_underscores_and_json_for_structured_fields():
    class Custom(JobSettings):
        custom_param: int = 0

    class Settings(JobSettings):
        batch_size: int = 1
        tags: list[str] = []
        custom: Custom = Custom()

    for spelling in ("--custom.custom_param", "--custom.custom-param"):
        options, overrides = split_argv(["--job_id", "J", "--batch-size=4", "--tags", '["a"]', spelling, "5"])
        settings = build_settings(Settings, {"batch_size": 2}, overrides)
        assert options == {"job_id": "J"}
        assert settings.get_config() == {"batch_size": 4, "tags": ["a"], "custom": {"custom_param": 5}}


@pydantic.dataclasses.dataclass
class Schedule:
    warmup_steps: int = 0


@dataclasses.dataclass
class Data:
    paths: list[str] = dataclasses.field(default_factory=list)
    schedule: Schedule = dataclasses.field(default_factory=Schedule)


class DataSettings(JobSettings):
    data: Data = Data()


def test_settings_nest_pydantic_dataclasses_and_stdlib_dataclasses():
    Settings = DataSettings
    _, overrides = split_argv(["--data.paths", '["a", "b"]', "--data.schedule.warmup-steps", "7"])
    settings = build_settings(Settings, {"data": {"paths": ["x"]}}, overrides)
    assert settings.data.paths == ["a", "b"] and settings.data.schedule.warmup_steps == 7
    assert settings.get_config() == {"data": {"paths": ["a", "b"], "schedule": {"warmup_steps": 7}}}


def test_simple_job_argv_accepts_underscore_spellings():
    from tests.simple_jobs import Train

    settings = Train.parse_args(["--optimizer.name", "adam", "--tags", '{"a_b": "c"}', "--lr", "0.5"])
    assert settings.optimizer.name == "adam" and settings.tags == {"a_b": "c"}
    assert Train.parse_args(["--optimizer.betas", "[0.5, 0.6]"]).optimizer.betas == [0.5, 0.6]


# -- keys and states ---------------------------------------------------------------------------

def test_a_job_key_reaches_only_its_own_job_and_cannot_list_jobs(attach_api, org, api_client):
    mine, other = create(org, settings={"a": 1}), create(org)
    exchanged = httpx.post(f"{attach_api.url}/v1/auth/access_token", json={"apiKey": mine["apiKey"]}, timeout=30)
    assert exchanged.json()["scope"] == f"job:{mine['id']}"
    with as_job(attach_api, mine["apiKey"]) as job_http:
        own = job_http.get(f"/v1/jobs/{mine['id']}")
        assert own.status_code == 200 and own.json()["settings"] == {"a": 1}
        assert job_http.post(f"/v1/jobs/{mine['id']}/metrics", json=[{"name": "m", "value": 1}]).status_code == 200
        for method, tail, body in [("GET", "", None), ("GET", "/artifacts", None),
                                   ("POST", "/metrics", [{"name": "m", "value": 1}]), ("POST", "/start", {}),
                                   ("POST", "/heartbeat", None), ("POST", "/complete", {}),
                                   ("POST", "/fail", {"error": "x"})]:
            answer = job_http.request(method, f"/v1/jobs/{other['id']}{tail}", json=body)
            assert answer.status_code == 404, (method, tail, answer.text)
        assert job_http.put(f"/v1/jobs/{other['id']}/artifacts/x.txt", content=b"x").status_code == 404
        assert job_http.get("/v1/jobs").status_code == 403
        assert job_http.post(f"/v1/jobs/{mine['id']}/cancel").status_code == 403
        assert job_http.post("/v1/jobs", json={"attach": True}).status_code == 403
    stranger = api_client()  # another org, on the suite's API: same store
    assert stranger.get(f"/v1/jobs/{mine['id']}").status_code == 404
    assert org.get(f"/v1/jobs/{other['id']}").json()["state"] == "queued"


def test_an_ended_job_refuses_every_write_with_409(attach_api, org):
    job = create(org)
    with as_job(attach_api, job["apiKey"]) as job_http:
        path = f"/v1/jobs/{job['id']}"
        assert job_http.post(f"{path}/start", json={"host": "h", "pid": 1}).json()["state"] == "running"
        assert job_http.post(f"{path}/fail", json={"error": "boom", "type": "ValueError"}).json()["state"] == "failed"
        for method, tail, body in [("POST", "/metrics", [{"name": "m", "value": 1}]), ("POST", "/start", {}),
                                   ("POST", "/heartbeat", None), ("POST", "/complete", {}),
                                   ("POST", "/fail", {"error": "again"})]:
            assert job_http.request(method, f"{path}{tail}", json=body).status_code == 409, tail
        assert job_http.put(f"{path}/artifacts/late.txt", content=b"x").status_code == 409
        assert job_http.get(path).json()["error"]["message"] == "boom"


def test_an_artifact_over_the_cap_is_refused_413_before_its_body_is_read(attach_api, org):
    job = create(org)
    host, port = attach_api.url.removeprefix("http://").split(":")
    token = org.headers["Authorization"]
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(f"PUT /v1/jobs/{job['id']}/artifacts/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n"
                     f"Content-Length: {MAX_ARTIFACT + 1}\r\n\r\n".encode())  # and no body at all
        answer = b""
        while chunk := conn.recv(65536):  # the server closes the connection after its answer
            answer += chunk
        head = answer.decode(errors="replace")
    assert head.startswith("HTTP/1.1 413"), head
    assert "RUNNER_ATTACH_MAX_ARTIFACT_BYTES" in head
    assert org.get(f"/v1/jobs/{job['id']}/artifacts").json()["items"] == []


def test_bad_artifact_names_and_bad_create_bodies_are_422(attach_api, org):
    job = create(org)
    for name in ("..%2Fescape.txt", "a/../../b"):
        assert org.put(f"/v1/jobs/{job['id']}/artifacts/{name}", content=b"x").status_code in (404, 422)
    assert org.post("/v1/jobs", json={"attach": True, "template": "squares"}).status_code == 422
    assert org.post("/v1/jobs", json={"attach": True, "job_timeout": -1}).status_code == 422
    assert org.post("/v1/jobs", json={"settings": {"a": 1}, "template": "squares"}).status_code == 422


# -- the process's life -------------------------------------------------------------------------

FOREVER = """
import threading
from runner.attach import Job

class Forever(Job):
    def run(self):
        print("running", flush=True)
        threading.Event().wait()  # works until killed or interrupted

Forever.init().start()
"""


def _start_forever(server: ApiServer, org: httpx.Client, tmp_path: Path) -> tuple[dict, subprocess.Popen]:
    job = create(org)
    script = tmp_path / "forever.py"
    script.write_text(FOREVER)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**environ, "RUNNER_API_URL": server.url, "RUNNER_JOB_ID": job["id"],
                                 "RUNNER_JOB_KEY": job["apiKey"]})
    assert proc.stdout.readline().strip() == "running"  # the barrier: run() has begun
    assert org.get(f"/v1/jobs/{job['id']}").json()["state"] == "running"
    return job, proc


def test_a_sigkilled_process_fails_its_job_within_the_dead_seconds(attach_api, org, tmp_path):
    job, proc = _start_forever(attach_api, org, tmp_path)
    beats_before = org.get(f"/v1/jobs/{job['id']}").json()["seen_at"]
    proc.kill()
    proc.wait(30)
    # dead seconds plus the sweep's half-second period and a loaded machine's slack
    ended = wait_state(org, f"/v1/jobs/{job['id']}", {"failed"}, DEAD_SECONDS + 20)
    assert "the attached process stopped reporting" in ended["error"]["message"]
    assert ended["seen_at"] >= beats_before and ended["error"]["stage"] == "attached"


def test_job_timeout_holds_for_a_job_nobody_starts(attach_api, org):
    job = create(org, job_timeout=1)
    ended = wait_state(org, f"/v1/jobs/{job['id']}", {"timed_out"}, 30)
    assert ended["error"]["type"] == "JobTimedOut"


def test_ctrl_c_fails_the_job_as_interrupted(attach_api, org, tmp_path):
    job, proc = _start_forever(attach_api, org, tmp_path)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) != 0
    ended = wait_state(org, f"/v1/jobs/{job['id']}", {"failed"}, 30)
    assert ended["error"]["type"] == "KeyboardInterrupt"
    assert "interrupted" in ended["error"]["message"]


# -- metrics and artifacts ------------------------------------------------------------------------

def test_metric_series_summarize_every_value_and_keep_the_latest_points(attach_api, org):
    from runner.store.metric_series import SERIES_MAX

    job = create(org)
    values = [{"name": "loss", "value": float(i), "step": i} for i in range(SERIES_MAX + 5)]
    assert org.post(f"/v1/jobs/{job['id']}/metrics", json=values).json() == {"added": SERIES_MAX + 5}
    loss = org.get(f"/v1/jobs/{job['id']}").json()["metrics"]["loss"]
    assert (loss["count"], loss["min"], loss["max"], loss["last"]) == (SERIES_MAX + 5, 0, SERIES_MAX + 4, SERIES_MAX + 4)
    assert loss["mean"] == pytest.approx((SERIES_MAX + 4) / 2)
    assert len(loss["series"]) == SERIES_MAX and loss["series"][0] == [5, 5]


def test_app_metrics_are_live_while_the_job_runs_and_kept_after(client, tmp_path, redis_url, file_roots, attach_api):

    gate = tmp_path / "gate"
    job = client.submit("gated-scores", params={"partitioner": {"count": 4}, "assembler": {"gate": str(gate)}})
    deadline = time.monotonic() + 60
    while job.status().state.value != "assembling":
        assert time.monotonic() < deadline, job.status().state
        time.sleep(0.05)  # polling the job's state
    during = json.loads(run_cli("status", job.id, "--json", env=cli_env(redis_url, file_roots, client.org)).stdout)
    score = during["metrics"]["score"]
    assert during["state"] == "assembling"
    assert (score["count"], score["sum"], score["max"]) == (4, 9.0, 4.5)
    assert sorted(score["series"]) == [[0, 0.0], [1, 1.5], [2, 3.0], [3, 4.5]]
    with attach_api.client(attach_api.token(attach_api.create_key(client.org)["key"])) as http:
        assert http.get(f"/v1/jobs/{job.id}").json()["metrics"]["score"] == score
    table = run_cli("status", job.id, env=cli_env(redis_url, file_roots, client.org)).stdout
    assert "metric score" in table and "count=4 mean=2.25 min=0 max=4.5 last=" in table
    gate.touch()
    assert job.wait(timeout=60) == 6
    assert job.status().metrics["score"].count == 4


def test_a_200_mb_artifact_round_trips_with_bounded_memory(attach_api, org, tmp_path):
    job = create(org)
    source, digest = tmp_path / "model.bin", hashlib.sha256()
    with source.open("wb") as out:
        for index in range(200):
            chunk = index.to_bytes(4, "big") * (MB // 4)
            digest.update(chunk)
            out.write(chunk)
    attached = Job.init(job["id"], job["apiKey"], host=attach_api.url, argv=[])
    assert psutil.Process(attach_api.proc.pid).children() == []  # one uvicorn process serves it all
    peaks = _watch_rss([psutil.Process(), psutil.Process(attach_api.proc.pid)])
    try:
        path = attached.io.upload(source, "models/model.bin")
        back = attached.io.download(path, tmp_path / "back.bin")
    finally:
        grown = peaks.stop()
    assert hashlib.sha256(back.read_bytes()).hexdigest() == digest.hexdigest()
    client_growth, api_growth = grown
    assert client_growth < 100 * MB, f"client RSS grew {client_growth / MB:.0f} MB"
    assert api_growth < 100 * MB, f"API RSS grew {api_growth / MB:.0f} MB"


class _watch_rss:
    """Samples processes' RSS in a thread; ``stop()`` gives each one's peak growth."""

    def __init__(self, processes: list[psutil.Process]) -> None:
        self.processes = processes
        self.base = [p.memory_info().rss for p in processes]
        self.peak = list(self.base)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.done.wait(0.02):
            self.peak = [max(peak, p.memory_info().rss) for peak, p in zip(self.peak, self.processes)]

    def stop(self) -> list[int]:
        self.done.set()
        self.thread.join(10)
        return [peak - base for peak, base in zip(self.peak, self.base)]


def test_sdk_and_cli_create_attached_jobs(client, attach_api, redis_url, file_roots):

    job, key = client.create_attached(name="from-sdk", settings={"lr": 0.1}, job_timeout=60)
    assert job.status().settings == {"lr": 0.1} and job.status().state.value == "queued"
    assert key.startswith("rk_") and as_job(attach_api, key).get(f"/v1/jobs/{job.id}").status_code == 200
    made = json.loads(run_cli("attach", "--name", "from-cli", "--settings", '{"a": 1}', "--json",
                              env=cli_env(redis_url, file_roots, client.org)).stdout)
    assert client.get(made["id"]).status().settings == {"a": 1}
    assert as_job(attach_api, made["apiKey"]).get(f"/v1/jobs/{made['id']}").json()["name"] == "from-cli"


def test_the_readme_example_trains_reports_and_completes(attach_api, org, tmp_path):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    script = tmp_path / "train.py"
    script.write_text(readme.split("cat > train.py <<'PY'\n", 1)[1].split("\nPY\n", 1)[0])
    job = create(org, name="train", settings={"lr": 0.1})
    ran = run_script(attach_api, script, "--job_id", job["id"], "--api_key", job["apiKey"], "--epochs", "5",
                     "--optimizer.name", "adam")
    assert ran.returncode == 0, ran.stderr
    done = wait_state(org, f"/v1/jobs/{job['id']}", {"completed"}, 30)
    assert done["metrics"]["loss"]["count"] == 5 and done["result_summary"] == {"model": "model.txt"}
    assert org.get(f"/v1/jobs/{job['id']}/artifacts/model.txt").content == b"adam lr=0.1"


def test_artifacts_on_s3_upload_multipart_and_download_streamed(api_env, server_dir, worker, s3, bucket, tmp_path):
    env = {**api_env, "RUNNER_ARTIFACTS_URL": f"s3://{bucket}/artifacts"}
    with run_api(env, server_dir / "attach-s3-api.log") as server:
        key = server.create_key(f"s3-{uuid.uuid4().hex[:8]}")
        with server.client(server.token(key["key"])) as org:
            job = create(org)
            source = tmp_path / "weights.bin"
            source.write_bytes(os.urandom(MB) * 20)  # three 8 MiB parts
            attached = Job.init(job["id"], job["apiKey"], host=server.url, argv=[])
            path = attached.io.upload(source, "weights.bin")
            head = s3.client().head_object(Bucket=bucket, Key=f"artifacts/{job['id']}/weights.bin")
            assert head["ContentLength"] == 20 * MB and head["ETag"].strip('"').endswith("-3")
            back = attached.io.download(path, tmp_path / "back.bin")
            assert back.read_bytes() == source.read_bytes()
