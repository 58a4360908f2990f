"""A new user's first hour on the command line, round two (issue 19): every step as a
user types it, asserting the message and the exit status.

Start-up cost is structural here (which modules a command imports), never a timing:
the timings are in benchmarks/README.md (CLI start-up).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from runner.local import free_port, wait_until
from tests.cli import REPO, run_cli

pytestmark = pytest.mark.timeout(120)

# What `runner --version` and `runner --help` must never load: each costs tens to
# hundreds of milliseconds of CPU at import.
HEAVY = ("celery", "kombu", "billiard", "redis", "pydantic", "pydantic_settings", "fastapi", "starlette", "uvicorn",
         "httpx", "boto3", "botocore", "rich", "croniter", "flower", "prometheus_client")


def _modules_after(*args: str, env: dict[str, str] | None = None) -> set[str]:
    """The top-level packages loaded by the time ``runner ARGS`` exits."""
    probe = ("import atexit, json, sys\n"
             "atexit.register(lambda: sys.__stderr__.write('\\nMODULES ' + json.dumps(sorted(sys.modules)) + '\\n'))\n"
             "from runner.cli import main\n"
             f"main({list(args)!r})\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO,
                          env=env)
    line = next(line for line in done.stderr.splitlines() if line.startswith("MODULES "))
    return {name.split(".")[0] for name in json.loads(line.removeprefix("MODULES "))}


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["submit", "--help"]])
def test_version_and_help_load_no_heavy_module(args: list[str]) -> None:
    loaded = _modules_after(*args)
    assert "runner" in loaded and "click" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_import_runner_loads_nothing_until_a_name_is_used() -> None:
    probe = ("import sys, runner\n"
             "heavy = [m for m in sys.modules if m.split('.')[0] in ('celery', 'redis', 'pydantic')]\n"
             "assert not heavy, heavy\n"
             "from runner import Client, JobState, SoftTimeLimitExceeded, app, SimpleJob\n"
             "missing = [name for name in runner.__all__ if getattr(runner, name, None) is None]\n"
             "assert not missing, missing\n"
             "assert set(runner.__all__) <= set(dir(runner))\n"
             "from runner import storage  # a submodule is still a submodule\n"
             "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_status_loads_no_celery_api_or_s3(redis_url: str) -> None:
    """`runner status JOB` reads one record: Redis and pydantic, never Celery, the HTTP
    API's stack or boto3 (and so starts in a fraction of the time)."""
    from runner import Client, get_settings

    settings = get_settings(broker_url=redis_url, include=["examples.wordcount"], file_roots=[REPO])
    job = Client(settings=settings, org="startup").submit("wordcount", source=(REPO / "examples/data/book.txt").as_uri())
    env = {"RUNNER_BROKER_URL": redis_url, "RUNNER_ORG": "startup", "PATH": "/usr/bin:/bin"}
    loaded = _modules_after("status", job.id, env=env)
    assert {"redis", "pydantic"} <= loaded
    assert not loaded & {"celery", "kombu", "fastapi", "uvicorn", "boto3", "httpx", "rich"}, sorted(loaded)
    shown = run_cli("status", job.id, env={"RUNNER_BROKER_URL": redis_url, "RUNNER_ORG": "startup"}).stdout
    assert job.id in shown and "queued" in shown


# -- item 5: `runner schedules` shows the next run the fleet will fire ----------------------


def test_schedules_next_run_moves_with_each_firing(tmp_path: Path, file_roots) -> None:
    from runner import Client, get_settings
    from runner.local import embedded_redis
    from runner.schedules.sweep import sweep

    # A private Redis: the sweep runs an hour ahead, which must fire no other test's schedules.
    (tmp_path / "redis").mkdir()
    with embedded_redis(tmp_path / "redis") as redis_url:
        settings = get_settings(broker_url=redis_url, include=["tests.jobs"], file_roots=file_roots,
                                org="sched-next", schedule_min_interval=1)
        client = Client(settings=settings)
        client.schedule("squares@1", name="hourly", every="1h", params={"partitioner": {"count": 1}},
                        max_concurrent=3)
        env = {"RUNNER_BROKER_URL": redis_url, "RUNNER_ORG": "sched-next"}

        def next_run() -> float:
            shown = json.loads(run_cli("schedules", "--json", env=env).stdout)
            return datetime.fromisoformat(shown[0]["next_due"]).timestamp()

        first = next_run()
        assert sweep(client.services, now=first + 1) == 1  # the fleet's sweeper fires the first due time
        assert next_run() == pytest.approx(first + 3600)
        assert sweep(client.services, now=first + 3601) == 1
        assert next_run() == pytest.approx(first + 7200)
        table = run_cli("schedules", env=env).stdout
        assert datetime.fromtimestamp(first + 7200, timezone.utc).strftime("%H:%M:%S") in table
        events = run_cli("schedule", "events", "hourly", env=env).stdout.splitlines()
        assert [line.split()[3] for line in events] == ["fired", "fired"]  # date, time, UTC, type
        assert all(" job " in line for line in events)
        listed = json.loads(run_cli("schedule", "events", "hourly", "--json", env=env).stdout)
        assert [e["type"] for e in listed] == ["fired", "fired"] and all(e["job"] for e in listed)
        missing = run_cli("schedule", "events", "nope", env=env, status=1).stderr
        assert "no schedule 'nope'" in missing


# -- items 6, 12, 15: destinations, bare paths, exit codes, Runner's own files ----------------


@pytest.fixture
def cli_fleet(redis_url: str, file_roots, request: pytest.FixtureRequest) -> dict[str, str]:
    """RUNNER_* settings for commands that queue jobs (no worker is needed: they stay
    queued), in an org of the test's own."""
    org = "".join(c for c in request.node.name if c.isalnum())[-40:]
    return {"RUNNER_BROKER_URL": redis_url, "RUNNER_INCLUDE": "tests.jobs,examples.wordcount",
            "RUNNER_FILE_ROOTS": ",".join(map(str, file_roots)), "RUNNER_ORG": org}


def test_a_directory_destination_without_slash_is_refused_with_the_prefix(cli_fleet, tmp_path: Path) -> None:
    book = tmp_path / "book.txt"
    book.write_text("a b a\n")
    (tmp_path / "out").mkdir()
    done = run_cli("submit", "wordcount", "--source", book.as_uri(), "--destination", (tmp_path / "out").as_uri(),
                   env=cli_fleet, status=2)
    assert done.stdout == ""
    assert done.stderr.strip() == (f"error: destination {(tmp_path / 'out').as_uri()} is an existing directory; "
                                   f"did you mean {(tmp_path / 'out').as_uri()}/ (a prefix: the output goes under "
                                   f"it)? nothing was queued")
    assert run_cli("jobs", env=cli_fleet).stderr.strip() == "no jobs"
    queued = run_cli("submit", "wordcount", "--source", book.as_uri(), "--destination",
                     (tmp_path / "out").as_uri() + "/", env=cli_fleet)
    assert queued.stdout.strip()


def test_a_bare_path_says_the_uri_it_meant_and_exits_2(cli_fleet, tmp_path: Path) -> None:
    book = tmp_path / "book.txt"
    book.write_text("a b a\n")
    absolute = run_cli("submit", "wordcount", "--source", str(book), env=cli_fleet, status=2)
    assert f"did you mean {book.as_uri()}?" in absolute.stderr and absolute.stderr.count("error:") == 1
    relative = run_cli("submit", "wordcount", "--source", "book.txt", env=cli_fleet, status=2, cwd=tmp_path)
    assert f"'book.txt' is a path, not a URI; did you mean {book.as_uri()}?" in relative.stderr
    checked = run_cli("check-source", str(tmp_path) + "/", env=cli_fleet, status=2)
    assert f"did you mean {tmp_path.as_uri()}/?" in checked.stderr
    missing = run_cli("submit", "wordcount", "--source", (tmp_path / "gone.txt").as_uri(), env=cli_fleet, status=2)
    assert missing.stderr.strip() == f"error: source {(tmp_path / 'gone.txt').as_uri()} does not exist"
    bad_scheme = run_cli("submit", "wordcount", "--source", "ftp://host/x", env=cli_fleet, status=2)
    assert "unsupported URI scheme 'ftp'" in bad_scheme.stderr
    assert run_cli("jobs", env=cli_fleet).stderr.strip() == "no jobs"


def test_python_callers_get_the_uri_hint_too(redis_url: str) -> None:
    from runner import Client, SourceError, get_settings

    settings = get_settings(broker_url=redis_url, include=["examples.wordcount"], file_roots=[REPO])
    with pytest.raises(SourceError, match="'/data/book.txt' is a path, not a URI; did you mean file:///data/book.txt"):
        Client(settings=settings).submit("wordcount", source="/data/book.txt")


def test_usage_errors_say_error_in_lowercase_like_every_other_error(cli_fleet) -> None:
    done = run_cli("jobs", "--state", "bogus", env=cli_fleet, status=2)
    assert "error: Invalid value for '--state'" in done.stderr and "Error:" not in done.stderr
    assert "jobs --help' for help.\n\nerror: " in done.stderr  # click's usage lines, then ours


def test_a_directory_source_never_lists_runners_own_files(cli_fleet, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / ".runner" / "artifacts" / "0123abcd").mkdir(parents=True)
    (data / ".runner" / "artifacts" / "0123abcd" / "output.json").write_text("{}")
    (data / ".runner" / "flower.db").write_text("state")
    (data / "chapters").mkdir()
    (data / "chapters" / "one.txt").write_text("one\n")
    (data / "two.txt").write_text("two\n")
    (data / "runs" / "0123abcd").mkdir(parents=True)  # RUNNER_ARTIFACTS_URL pointing inside the data
    (data / "runs" / "0123abcd" / "output.json").write_text("{}")
    env = {**cli_fleet, "RUNNER_FLOWER_DB": str(data / "flower.db"), "RUNNER_ARTIFACTS_URL": (data / "runs").as_uri()}
    (data / "flower.db").write_text("state")
    shown = run_cli("check-source", data.as_uri() + "/", env=env).stdout
    assert shown.splitlines()[0] == f"{data.as_uri()}/: 2 object(s), 8 bytes"
    assert ".runner" not in shown and "flower.db" not in shown and "runs" not in shown


# -- item 11: runner doctor and Flower ------------------------------------------------------


def _flower_rows(doctor_stdout: str) -> list[str]:
    return [line for line in doctor_stdout.splitlines() if line.startswith("│ flower")]


@pytest.mark.timeout(240)
def test_doctor_checks_flowers_password_and_says_when_it_does_not(redis_url: str, worker, tmp_path: Path) -> None:
    import httpx

    from runner.local import stop_process

    env = {"RUNNER_BROKER_URL": redis_url, "RUNNER_INCLUDE": "examples.wordcount"}
    unset = run_cli("doctor", env=env).stdout  # no Flower configured: said, not a failure
    assert "not checked: RUNNER_FLOWER_URL is unset" in "".join(_flower_rows(unset)) + unset.replace("\n", " ")
    port = free_port()
    flower_env = {**{k: v for k, v in __import__("os").environ.items() if not k.startswith(("RUNNER_", "FLOWER_"))},
                  "RUNNER_BROKER_URL": redis_url, "RUNNER_FLOWER_DB": str(tmp_path / "flower.db"),
                  "RUNNER_FLOWER_BASIC_AUTH": "admin:right-pw-1"}
    with open(tmp_path / "flower.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "flower", f"--port={port}"], env=flower_env,
                                cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthcheck", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, "flower", proc=proc, log=tmp_path / "flower.log", timeout=120)
        wrong = run_cli("doctor", env={**env, "RUNNER_FLOWER_URL": f"http://admin:wrong-pw-2@127.0.0.1:{port}"},
                        status=1)
        shown = wrong.stdout.replace("\n", " ")
        assert f"http://admin:***@127.0.0.1:{port} rejected the credentials (HTTP 401)" in shown
        assert "wrong-pw-2" not in wrong.stdout + wrong.stderr
        none = run_cli("doctor", env={**env, "RUNNER_FLOWER_URL": f"http://127.0.0.1:{port}"}, status=1).stdout
        assert "needs credentials and none were given" in none.replace("\n", " ")
        right = run_cli("doctor", env={**env, "RUNNER_FLOWER_URL": f"http://127.0.0.1:{port}",
                                       "RUNNER_FLOWER_BASIC_AUTH": "admin:right-pw-1"}).stdout
        assert "credentials accepted" in right.replace("\n", " ") and "FAIL" not in right
    finally:
        stop_process(proc)


# -- issue 18 item 9, and a busy port: `runner redis` -----------------------------------------


def _gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for a reaper counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith(("Z", "X"))
    except (FileNotFoundError, ProcessLookupError):
        return True


@pytest.mark.parametrize("signum", ["SIGHUP", "SIGKILL", "SIGINT"])
def test_runner_redis_stops_with_its_parent(signum: str, tmp_path: Path) -> None:
    import os
    import signal

    import redis

    from runner.local import stop_process

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "redis", "--port", str(port), "--dir",
                             str(tmp_path / "data")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, cwd=REPO)
    client = redis.Redis(port=port)
    server_pid = 0
    try:
        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_until(up, "runner redis", proc=proc, timeout=30)
        server_pid = int(client.info("server")["process_id"])
        assert server_pid != proc.pid  # the command is the server's parent, not the server
        os.kill(proc.pid, getattr(signal, signum))  # the terminal closed / the parent was killed
        status = proc.wait(30)
        wait_until(lambda: _gone(server_pid), f"redis-server (pid {server_pid}) to stop", timeout=30)
        if signum == "SIGINT":
            assert status == 130  # Ctrl-C: the exit status of every command stopped by it
    finally:
        stop_process(proc)
        if server_pid and not _gone(server_pid):
            os.kill(server_pid, signal.SIGKILL)


def test_a_second_runner_redis_on_a_busy_port_says_so_in_one_line(redis_url: str, tmp_path: Path) -> None:
    port = redis_url.rsplit(":", 1)[1].split("/")[0]
    done = run_cli("redis", "--port", port, "--dir", str(tmp_path / "data"), env={}, status=1)
    assert done.stdout == ""
    assert done.stderr.strip() == (f"error: port {port} on 127.0.0.1 is already in use (a Redis already running? "
                                   f"check: runner doctor); stop it, or run this one with --port {int(port) + 1} and "
                                   f"set RUNNER_BROKER_URL=redis://127.0.0.1:{int(port) + 1}/0")


# -- small things ------------------------------------------------------------------------------


def test_status_shows_result_summary_as_json_and_outputs_get_the_umask(redis_url: str, worker, file_roots,
                                                                      tmp_path: Path) -> None:
    import os
    import stat

    book = tmp_path / "book.txt"
    book.write_text("b a b\n")
    env = {"RUNNER_BROKER_URL": redis_url, "RUNNER_INCLUDE": "examples.wordcount", "RUNNER_ORG": "small-things",
           "RUNNER_FILE_ROOTS": ",".join(map(str, file_roots))}
    done = run_cli("submit", "wordcount", "--source", book.as_uri(), "--destination", (tmp_path / "out").as_uri() + "/",
                   "--wait", env=env)
    job_id = done.stderr.split("submitted job ")[1].split()[0]
    shown = run_cli("status", job_id, env=env).stdout
    row = next(line for line in shown.splitlines() if line.startswith("result_summary"))
    summary = json.loads(row.split(None, 1)[1])
    assert summary["destination"] == (tmp_path / "out").as_uri() + "/" and "{'" not in row
    written = [p for p in (tmp_path / "out").iterdir() if p.is_file()]
    umask = os.umask(0o022)
    os.umask(umask)  # the worker inherited the suite's umask
    assert written and all(stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask for p in written), \
        [oct(p.stat().st_mode) for p in written]


def test_the_no_worker_warning_names_include_not_queues_control(tmp_path: Path, file_roots) -> None:
    from runner.local import embedded_redis

    with embedded_redis(tmp_path) as url:  # a Redis no worker consumes
        env = {"RUNNER_BROKER_URL": url, "RUNNER_INCLUDE": "tests.jobs"}
        done = run_cli("submit", "squares", "-p", "partitioner.count=1", env=env)
        assert "warning: no live worker consumes queue 'control'" in done.stderr
        assert "(runner worker --include MODULE" in done.stderr and "--queues control" not in done.stderr
        gpu = run_cli("submit", "gpu-squares", "-p", "partitioner.count=1", env=env).stderr
        assert "runner worker --queues gpu --include MODULE" in gpu


def test_a_redis_without_a_password_is_shown_without_a_mask(redis_url: str) -> None:
    from runner import get_settings
    from runner.dispatch import make_celery

    plain = make_celery(get_settings(broker_url=redis_url)).connection_for_write().as_uri()
    assert plain == redis_url and ":**@" not in plain
    locked = make_celery(get_settings(broker_url=redis_url.replace("://", "://:sekrit@")))
    assert locked.connection_for_write().as_uri() == redis_url.replace("://", "://:**@")


def test_the_api_names_the_key_and_keeps_numbers_and_server_details_to_itself(api_server, worker, file_roots) -> None:
    from tests.test_api_jobs import sse_events

    org = "who-" + free_port().__str__()
    key = api_server.create_key(org)
    with api_server.client(api_server.token(key["key"])) as api:
        job = api.post("/v1/jobs", json={"template": "squares@1", "params": {"partitioner": {"count": 3}}}).json()
        events = sse_events(api, job["id"])
        batches = [e["data"] for e in events if e["event"] == "batch"]
        assert batches and all(isinstance(b["start"], int) and isinstance(b["stop"], int) for b in batches)
        assert all(isinstance(b["host"], str) for b in batches)
        lines = [line["msg"] for line in api.get(f"/v1/jobs/{job['id']}/logs").json()["items"]]
        assert f"queued by API key {key['id']} (org {org})" in lines
        unknown = api.post("/v1/jobs", json={"template": "no-such-template"})
        assert unknown.status_code in (404, 422)
        text = unknown.text
        assert "-I MODULE" not in text and "RUNNER_INCLUDE" not in text and "a worker publishes a template" in text
        outside = api.post("/v1/jobs", json={"template": "squares@1", "source": "file:///etc/passwd"})
        assert outside.status_code == 422
        assert "outside the directories this server may read" in outside.text
        assert all(str(root) not in outside.text for root in file_roots) and "RUNNER_FILE_ROOTS" not in outside.text


# -- item 14: engine params, shown and checked ------------------------------------------------


def test_engine_params_show_their_defaults_validate_with_schema_json_and_warn_without(tmp_path: Path) -> None:
    import shutil

    from runner.local import embedded_redis
    from tests.test_engines import ENGINES

    engines = tmp_path / "engines"
    shutil.copytree(ENGINES, engines)
    (engines / "caseconv" / "app" / "schema.json").rename(engines / "caseconv" / "schema.json")  # where ByteNite puts it
    template = tmp_path / "template.json"
    template.write_text(json.dumps({"id": "engine-params", "partitioner": "fanout", "app": "caseconv",
                                    "assembler": "zipper", "params": {"partitioner": {"lines_per_chunk": 2}}}))
    (tmp_path / "in.txt").write_text("a\nb\n")
    source = (tmp_path / "in.txt").as_uri()
    (tmp_path / "redis").mkdir()
    with embedded_redis(tmp_path / "redis") as url:
        env = {"RUNNER_BROKER_URL": url, "RUNNER_FILE_ROOTS": str(tmp_path)}
        ref = run_cli("template", "import", str(template), "--engines", str(engines), env=env).stdout.strip()
        shown = run_cli("templates", ref, env=env).stdout
        partitioner = shown.split("partitioner fanout")[1].split("app caseconv")[0]
        assert "lines_per_chunk" in partitioner and "2" in partitioner and "no params" not in partitioner
        assert "not checked" in partitioner
        app = shown.split("app caseconv")[1].split("assembler zipper")[0]
        assert "mode" in app and '"upper"' in app  # the root schema.json is read
        assert "any params, not checked (no schema.json)" in shown.split("assembler zipper")[1]
        warned = run_cli("submit", ref, "--source", source, "-p", "partitioner.bogus=1", env=env)
        assert ("warning: partitioner.bogus: not a param the template names (partitioner fanout@0.1"
                in warned.stderr) and "the template's partitioner params: lines_per_chunk)" in warned.stderr
        assert "warning: partitioner.lines_per_chunk" not in run_cli(
            "submit", ref, "--source", source, "-p", "partitioner.lines_per_chunk=3", env=env).stderr
        refused = run_cli("submit", ref, "--source", source, "-p", "app.bogus=1", "-p", "app.mode=sideways", env=env,
                          status=2)
        assert "app.bogus: unexpected field" in refused.stderr and "app.mode:" in refused.stderr
