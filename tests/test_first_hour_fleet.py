"""A newcomer's first hour with the fleet (issue 19, the worker side): engines unpack on
every Python the package claims, one data directory every process agrees on, a worker
that fails at once on an unreachable broker, says when it is ready, and shares a host
with another worker with other templates."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from runner.engines.packing import engines_cache, extract_checked, pack
from runner.errors import EngineError

REPO = Path(__file__).resolve().parent.parent


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return raw.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    return info


def test_a_packed_engine_unpacks_on_this_python_modes_and_inner_links_kept(tmp_path: Path) -> None:
    folder = tmp_path / "engine"
    (folder / "app").mkdir(parents=True)
    (folder / "app" / "main.sh").write_text("#!/bin/sh\necho hi\n")
    (folder / "app" / "main.sh").chmod(0o755)
    (folder / "manifest.json").write_text("{}")
    data, _ = pack(folder)
    extract_checked(data, tmp_path / "out")
    assert (tmp_path / "out" / "app" / "main.sh").read_text() == "#!/bin/sh\necho hi\n"
    assert os.access(tmp_path / "out" / "app" / "main.sh", os.X_OK)
    inner = _tar((_member("a.txt"), b"x"), (_member("b.txt", tarfile.SYMTYPE, "a.txt"), None))
    extract_checked(inner, tmp_path / "inner")
    assert (tmp_path / "inner" / "b.txt").read_text() == "x"


@pytest.mark.parametrize("member, says", [
    (_member("/etc/evil"), "would unpack outside its folder"),
    (_member("../evil"), "would unpack outside its folder"),
    (_member("app/../../evil"), "would unpack outside its folder"),
    (_member("link", tarfile.SYMTYPE, "/etc/passwd"), "points outside its folder"),
    (_member("link", tarfile.SYMTYPE, "../../etc"), "points outside its folder"),
    (_member("hard", tarfile.LNKTYPE, "../outside"), "points outside its folder"),
    (_member("dev", tarfile.CHRTYPE), "is a device or FIFO"),
    (_member("fifo", tarfile.FIFOTYPE), "is a device or FIFO"),
])
def test_an_engine_that_would_escape_its_folder_is_refused_naming_the_member(
        tmp_path: Path, member: tarfile.TarInfo, says: str) -> None:
    data = _tar((member, b"" if member.isfile() else None))
    with pytest.raises(EngineError, match=says) as caught:
        extract_checked(data, tmp_path / "out")
    assert repr(member.name) in str(caught.value)
    assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "evil").exists()


def test_setuid_and_world_writable_bits_are_dropped(tmp_path: Path) -> None:
    extract_checked(_tar((_member("run", mode=0o6777), b"x")), tmp_path / "out")
    assert (tmp_path / "out" / "run").stat().st_mode & 0o7777 == 0o755


def test_the_engine_cache_is_per_user_and_per_installation(tmp_path: Path) -> None:
    code = "from runner.engines.packing import engines_cache; print(engines_cache())"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    here = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    cache = Path(here.stdout.strip())
    assert cache.parent == tmp_path / "runner" and cache.name.startswith("engines-")
    other = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.prefix = '/elsewhere'; "
                            f"sys.path[:0] = {sys.path!r}; {code}"], env=env, capture_output=True, text=True, check=True)
    assert Path(other.stdout.strip()).parent == cache.parent and Path(other.stdout.strip()) != cache
    assert not str(engines_cache()).startswith("/tmp/runner-engines-0/")


# -- the fleet: a worker that fails fast, says it is ready, and shares its host ------------

def _clean_env(**settings: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}, **settings}


def test_a_worker_with_no_redis_fails_within_seconds_with_the_clients_line(tmp_path: Path) -> None:
    from runner.local import free_port
    from tests.cli import run_cli

    url = f"redis://127.0.0.1:{free_port()}/0"
    worker = subprocess.run(RUNNER_WORKER, env=_clean_env(RUNNER_BROKER_URL=url), capture_output=True, text=True,
                            timeout=30, cwd=tmp_path)
    assert worker.returncode == 1, worker.stderr
    lines = worker.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in worker.stderr, worker.stderr
    client = run_cli("workers", env={"RUNNER_BROKER_URL": url}, status=1)
    assert lines[0] == f"runner worker: {client.stderr.strip()}"
    assert f"cannot reach the broker at {url} (" in lines[0] and "start Redis or set RUNNER_BROKER_URL" in lines[0]


RUNNER_WORKER = [sys.executable, "-m", "workers"]


def _start_worker(url: str, include: str, log: Path, cwd: Path) -> subprocess.Popen:
    """``runner worker --include INCLUDE`` with no --hostname, as a user types it."""
    return subprocess.Popen([*RUNNER_WORKER, "--include", include, "--concurrency", "1", "--loglevel", "INFO",
                             "--logfile", str(log)], env=_clean_env(RUNNER_BROKER_URL=url), cwd=cwd,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True,
                            stderr=log.with_suffix(".err").open("w"))


def _ready_line(log: Path, proc: subprocess.Popen) -> str:
    from runner.local import wait_until

    err = log.with_suffix(".err")
    found: list[str] = []

    def ready() -> bool:
        found[:] = [line for line in err.read_text().splitlines() if line.startswith("runner worker ")]
        return bool(found)

    wait_until(ready, f"the ready line in {err}", proc, err, timeout=120)
    return found[0]


@pytest.mark.timeout(300)
def test_two_workers_on_one_host_each_run_only_their_templates(tmp_path: Path) -> None:
    """Worker A has `squares` (tests.jobs), worker B only `wordcount`. A stops taking the
    plain queues, so every task of a squares job lands on B first: B passes each on to
    the template's queue, A runs it, and the job completes."""
    from runner import Client, get_settings
    from runner.local import embedded_redis, stop_process, wait_until
    from tests.cli import run_cli

    with embedded_redis() as url:
        a = _start_worker(url, "tests.jobs", tmp_path / "a.log", REPO)
        b = _start_worker(url, "examples.wordcount", tmp_path / "b.log", REPO)
        try:
            line_a, line_b = _ready_line(tmp_path / "a.log", a), _ready_line(tmp_path / "b.log", b)
            name_a, name_b = line_a.split()[2], line_b.split()[2]
            assert name_a == f"runner-{a.pid}@{os.uname().nodename}" and name_b != name_a
            assert "queues control, default; 1 process; templates " in line_b
            assert line_b.endswith("templates wordcount@1.0.0") and "squares@1.0.0" in line_a
            listed = run_cli("workers", "--json", env={"RUNNER_BROKER_URL": url})
            assert {w["hostname"] for w in __import__("json").loads(listed.stdout)} == {name_a, name_b}

            client = Client(settings=get_settings(broker_url=url))
            for queue in ("control", "default"):
                replies = client.celery.control.cancel_consumer(queue, destination=[name_a], reply=True, timeout=10)
                assert replies == [{name_a: {"ok": f"no longer consuming from {queue}"}}], replies
            job = client.submit("squares", params={"partitioner": {"count": 40}})
            assert job.wait(timeout=90) == sum(i * i for i in range(40))
            passed = (tmp_path / "b.log").read_text()
            assert "passed on to control:squares@1.0.0: this worker lacks template squares@1.0.0" in passed
            assert "passed on to default:squares@1.0.0" in passed
            wait_until(lambda: job.status().state.value == "completed", "the job's record", timeout=10)
        finally:
            stop_process(a)
            stop_process(b)


# -- small things ------------------------------------------------------------------------

def test_a_soft_time_limit_names_its_type_once() -> None:
    from runner.errors import SoftTimeLimitExceeded

    error = SoftTimeLimitExceeded("piece 3 exceeded task_timeout=1s")
    assert str(error) == "piece 3 exceeded task_timeout=1s"
    assert f"{type(error).__name__}: {error}" == "SoftTimeLimitExceeded: piece 3 exceeded task_timeout=1s"


def test_a_one_piece_job_says_1_piece_and_1_app_task(client) -> None:
    job = client.submit("squares", params={"partitioner": {"count": 1}})
    assert job.wait(timeout=60) == 0
    lines = [line.msg for line in job.logs() if line.msg.startswith("partitioned ")]
    assert len(lines) == 1 and " into 1 piece, handed to queue default" in lines[0], lines


def test_engine_log_lines_keep_their_level_and_outputs_get_the_umask(client, settings, tmp_path: Path) -> None:
    from tests.test_engines import TEXT, import_engines

    ref = import_engines(settings, tmp_path, params={"partitioner": {"lines_per_chunk": 2}, "app": {"log": True},
                                                     "assembler": {}})
    (tmp_path / "in.txt").write_bytes(TEXT)
    out = tmp_path / "out"
    job = client.submit(ref, source=(tmp_path / "in.txt").as_uri(), destination=out.as_uri() + "/")
    job.wait(timeout=60)
    app_lines = [(line.level, line.msg) for line in job.logs(piece=1) if line.source == "app"]
    assert app_lines == [("INFO", "piece 1: 23 bytes"), ("INFO", "INFO:caseconv:converting piece 1"),
                         ("WARNING", "WARNING:caseconv:piece 1 has no accents")], app_lines
    umask = os.umask(0o022)
    os.umask(umask)
    assert (out / "results.zip").stat().st_mode & 0o777 == 0o666 & ~umask


# -- item 2: one data dir every process agrees on ------------------------------------------

@pytest.mark.timeout(300)
def test_a_worker_in_another_folder_refuses_by_name_and_artifacts_are_found_from_anywhere(tmp_path: Path) -> None:
    """The README's walk: a worker started in the template's folder, commands run from the
    clone. A file only the clone's roots allow is refused at submit, naming the worker and
    the setting to change on it (and, for a job queued before any worker was live, by the
    worker itself); artifacts are in the data dir, found from any folder."""
    from runner import Client, JobFailed, get_settings
    from runner.local import embedded_redis, stop_process
    from tests.cli import run_cli

    demo, clone, elsewhere = tmp_path / "demo", tmp_path / "clone", tmp_path / "elsewhere"
    for folder in (demo, clone, elsewhere):
        folder.mkdir()
    (clone / "book.txt").write_text("the cat sat\nthe end\n")
    (demo / "book.txt").write_text("a b a\n")
    with embedded_redis() as url:
        env = {"RUNNER_BROKER_URL": url}
        early = Client(settings=get_settings(broker_url=url, file_roots=[clone], include=["examples.wordcount"])).submit(
            "wordcount", source=(clone / "book.txt").as_uri())  # no worker yet: nothing to check against
        worker = _start_worker(url, "examples.wordcount", tmp_path / "w.log", demo)
        try:
            name = _ready_line(tmp_path / "w.log", worker).split()[2]
            with pytest.raises(JobFailed) as failed:
                early.wait(timeout=60)
            message = failed.value.error["message"]
            assert (f"is outside the allowed file roots of worker {name} ({demo}," in message
                    and f",{clone} in that worker's environment and restart it" in message), message

            refused = run_cli("submit", "wordcount", "--source", (clone / "book.txt").as_uri(), env=env, cwd=clone,
                              status=2)  # a source the job cannot use: a usage error, as every bad source
            assert refused.stderr.strip().splitlines()[-1] == (
                f"error: source: {(clone / 'book.txt').as_uri()} is outside the allowed file roots of worker {name} "
                f"({demo},{get_settings().data_root}); set RUNNER_FILE_ROOTS={demo},{get_settings().data_root},"
                f"{clone} in that worker's environment and restart it (or put the file under the data dir, "
                f"{get_settings().data_root})")
            assert "submitted job" not in refused.stderr

            done = run_cli("submit", "wordcount", "--source", (demo / "book.txt").as_uri(), "--wait", env=env,
                           cwd=demo)
            job_id = done.stderr.split("submitted job ")[1].split()[0]
            listed = run_cli("artifacts", job_id, env=env, cwd=elsewhere)
            assert listed.stdout.split() == ["output.json"]
            assert (get_settings().data_root / "artifacts" / job_id / "output.json").is_file()

            lost = run_cli("artifacts", job_id, env={**env, "RUNNER_ARTIFACTS_URL": elsewhere.as_uri()}, status=1)
            assert lost.stdout == ""
            assert lost.stderr.strip() == (
                f"no artifacts of job {job_id} under {elsewhere.as_uri()}/{job_id}/; the live workers write theirs "
                f"under {get_settings().artifacts_root}: run this with RUNNER_ARTIFACTS_URL="
                f"{get_settings().artifacts_root} (or give every process the same RUNNER_DATA_DIR)")
        finally:
            stop_process(worker)


@pytest.mark.parametrize("extra, name", [
    ([], None), (["--loglevel", "INFO"], None), (["--hostname", "gpu1@%h"], "gpu1@%h"), (["--hostname=b@x"], "b@x"),
    (["-n", "c@x"], "c@x"), (["-nd@x"], "d@x"),
])
def test_a_name_given_to_celery_is_kept_else_each_worker_gets_its_own(extra: list[str], name: str | None) -> None:
    from workers.boot import _given_name, default_name

    assert _given_name(extra) == name
    assert default_name() == f"runner-{os.getpid()}@%h"
