"""`runner flower` against the suite's real Redis and worker: Flower's REST API and its
tasks page in a real browser (Debian's chromium driven by Playwright)."""

from __future__ import annotations

import ast
import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from runner import Client, JobFailed
from runner.local import wait_until, free_port, stop_process

RUNNER = [sys.executable, "-c", "from runner.cli import main; main()"]
REPO = Path(__file__).resolve().parent.parent
SCREENSHOT = REPO / "docs" / "flower-tasks.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def update_screenshot() -> bool:
    """``UPDATE_DOCS_SCREENSHOT=1``: write the screenshot to docs/ (the README shows it)."""
    return os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1"


@dataclass
class Flower:
    url: str
    user: str
    password: str
    log: Path

    def get(self, path: str, auth: bool = True, **kwargs) -> httpx.Response:
        return httpx.get(self.url + path, auth=(self.user, self.password) if auth else None, timeout=10, **kwargs)

    def app_tasks(self, job_id: str) -> list[dict]:
        """The ``runner.app`` tasks Flower lists for one job (job id first in their args)."""
        response = self.get("/api/tasks")
        response.raise_for_status()
        return [task for task in response.json().values()
                if task.get("name") == "runner.app" and (task.get("args") or "").startswith(f"({job_id!r},")]

    def wait_for_job(self, job_id: str, pieces: int, timeout: float = 30.0) -> list[dict]:
        """Poll until Flower lists app tasks covering all ``pieces`` of the job, all succeeded."""
        deadline = time.monotonic() + timeout
        tasks: list[dict] = []
        while time.monotonic() < deadline:
            tasks = self.app_tasks(job_id)
            if tasks and covered(tasks) == list(range(pieces)) and all(t.get("state") == "SUCCESS" for t in tasks):
                return tasks
            time.sleep(0.2)
        raise AssertionError(f"Flower did not list every app task of job {job_id} within {timeout:.0f}s: {tasks}\n"
                             f"{self.log.read_text(errors='replace')[-3000:]}")


def covered(tasks: list[dict]) -> list[int]:
    """The piece indices the app tasks' ``(job_id, template, start, stop)`` args cover."""
    pieces: list[int] = []
    for task in tasks:
        _job_id, _template, start, stop = ast.literal_eval(task["args"])
        pieces.extend(range(start, stop))
    return sorted(pieces)


def flower_env(redis_url: str, directory: Path, basic_auth: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNNER_", "FLOWER_"))}
    env.update(RUNNER_BROKER_URL=redis_url, RUNNER_FLOWER_DB=str(directory / "flower.db"))
    if basic_auth is not None:
        env["RUNNER_FLOWER_BASIC_AUTH"] = basic_auth
    return env


@contextlib.contextmanager
def flower_process(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> Iterator[subprocess.Popen]:
    with open(log, "ab") as out:
        proc = subprocess.Popen([*RUNNER, "flower", *args], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def runner_client(settings, worker) -> Client:
    return Client(settings=settings)


@pytest.fixture(scope="module")
def flower(redis_url: str, runner_client: Client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flower]:
    directory = tmp_path_factory.mktemp("flower")
    port = free_port()
    user, password = "runner", secrets.token_urlsafe(16)
    server = Flower(f"http://127.0.0.1:{port}", user, password, directory / "flower.log")
    env = flower_env(redis_url, directory, f"{user}:{password}")
    with flower_process([f"--port={port}"], env, directory, server.log) as proc:

        def healthy() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return server.get("/healthcheck", auth=False).status_code == 200
            return False

        wait_until(healthy, "flower", proc=proc, log=server.log, timeout=60)
        # /healthcheck answers before the event receiver listens: tasks sent in that gap
        # appear without name or args (or not at all). Send canaries until one is seen whole.
        deadline = time.monotonic() + 60
        while True:
            canary = runner_client.submit("squares", params={"partitioner": {"count": 1}})
            canary.wait(timeout=30)
            seen_by = time.monotonic() + 5
            while time.monotonic() < seen_by and not server.app_tasks(canary.id):
                time.sleep(0.1)
            if server.app_tasks(canary.id):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Flower never listed a canary task:\n{server.log.read_text(errors='replace')[-3000:]}")
        yield server


def test_api_lists_app_tasks_with_job_id_and_worker(flower: Flower, runner_client: Client) -> None:
    job = runner_client.submit("squares", params={"partitioner": {"count": 6}})
    assert job.wait(timeout=60) == sum(i * i for i in range(6))

    tasks = flower.wait_for_job(job.id, pieces=6)
    for task in tasks:
        job_id, template, _start, _stop = ast.literal_eval(task["args"])
        assert job_id == job.id
        assert template.startswith("squares")
        assert task["worker"], task  # the hostname of the worker that ran it

    assert flower.get("/api/tasks", auth=False).status_code == 401
    wrong = httpx.get(flower.url + "/api/tasks", auth=(flower.user, "not-the-password"), timeout=10)
    assert wrong.status_code == 401


@pytest.mark.parametrize("template, batches", [("not-json-by-2", [(0, 2), (2, 4)]),
                                               ("not-json-by-3", [(0, 3), (3, 4)])])
def test_a_batch_whose_piece_failed_for_good_is_a_failed_task_with_the_error(
        flower: Flower, runner_client: Client, template: str, batches: list[tuple[int, int]]) -> None:
    # Piece 2 is not JSON (no retry). In batches of 2 it fails in a batch sent as its own
    # task; in batches of 3, in the first batch, which runs inside the partition task.
    job = runner_client.submit(template, params={"partitioner": {"count": 4}})
    with pytest.raises(JobFailed, match=r"piece 2: TypeError"):
        job.wait(timeout=60)

    def tasks(name: str, state: str) -> list[dict]:
        listed = flower.get("/api/tasks").json().values()
        return [task for task in listed if task.get("name") == name and task.get("state") == state
                and repr(job.id) in (task.get("args") or "")]

    failing = next(batch for batch in batches if batch[0] <= 2 < batch[1])
    wait_until(lambda: tasks("runner.app", "FAILURE"), "the failed batch", timeout=30)
    (failed,) = tasks("runner.app", "FAILURE")  # that batch only
    assert ast.literal_eval(failed["args"])[2:] == failing
    assert "piece 2: TypeError: app returned a value that is not JSON-serializable" in failed["exception"]
    wait_until(lambda: tasks("runner.partition", "SUCCESS"), "the partition task, succeeded", timeout=30)


def test_metrics_and_healthcheck_need_no_auth(flower: Flower) -> None:
    health = flower.get("/healthcheck", auth=False)
    assert health.status_code == 200
    metrics = flower.get("/metrics", auth=False)
    assert metrics.status_code == 200
    assert "flower_" in metrics.text


def test_flower_refuses_to_start_without_auth(redis_url: str, tmp_path: Path) -> None:
    log = tmp_path / "flower.log"
    with flower_process([f"--port={free_port()}"], flower_env(redis_url, tmp_path, None), tmp_path, log) as proc:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            pytest.fail("runner flower started without RUNNER_FLOWER_BASIC_AUTH or --unsafe-no-auth")
    assert proc.returncode != 0
    assert "RUNNER_FLOWER_BASIC_AUTH" in log.read_text(errors="replace")


def test_tasks_page_in_a_real_browser(flower: Flower, runner_client: Client, tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), "Debian's chromium is not installed: apt-get install chromium (.ci/run does)"
    from playwright.sync_api import sync_playwright  # a test dependency: an ImportError fails the test

    job = runner_client.submit("squares", params={"partitioner": {"count": 4}})
    job.wait(timeout=60)
    flower.wait_for_job(job.id, pieces=4)

    target = SCREENSHOT if update_screenshot() else tmp_path / "flower-tasks.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(http_credentials={"username": flower.user, "password": flower.password},
                                          viewport={"width": 1800, "height": 900})
            page = context.new_page()
            response = page.goto(flower.url + "/tasks", wait_until="load", timeout=30_000)
            assert response is not None and response.status == 200
            # The table is filled by an XHR after the page loads: wait for the job's rows.
            rows = page.locator("#tasks-table tbody tr", has_text=job.id)
            rows.first.wait_for(state="visible", timeout=30_000)
            app_row = page.locator("#tasks-table tbody tr", has_text=job.id).filter(has_text="runner.app")
            app_row.first.wait_for(state="visible", timeout=30_000)
            text = page.inner_text("#tasks-table")
            assert job.id in text
            assert "runner.app" in text
            page.screenshot(path=str(target), full_page=True)
        finally:
            browser.close()
    data = target.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_MAGIC)
