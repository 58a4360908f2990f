"""No process of an executable piece outlives it: an app that starts a child and then
sleeps is stopped, child included, at its task_timeout and when its job is cancelled (the
worker process running it is then SIGKILLed; the guard stops the group), and its scratch
directory is removed. Checked with psutil against the real processes."""

from __future__ import annotations

import tempfile
from pathlib import Path

import psutil
import pytest

from runner import Client, JobCancelled, JobFailed
from tests.test_engines import import_engines
from tests.test_jobs import wait_until


def running(pids: list[int]) -> list[int]:
    """The pids still running (a zombie waiting for its reaper is not running)."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def started_pids(pidfile: Path) -> list[int]:
    """The app's pid and its child's, once the app has written them."""
    path = Path(f"{pidfile}.0")
    text = wait_until(lambda: path.exists() and path.read_text().strip(), 30, "the app to start its child")
    pids = [int(p) for p in text.split()]
    assert len(pids) == 2 and running(pids) == pids
    return pids


def scratch_dirs(job_id: str) -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob(f"runner-{job_id}-*"))


def test_an_app_and_its_child_are_stopped_at_task_timeout(client: Client, settings, tmp_path: Path) -> None:
    ref = import_engines(settings, tmp_path, params={"partitioner": {"lines_per_chunk": 100}})
    (tmp_path / "in.txt").write_text("one piece\n")
    pidfile = tmp_path / "pids"
    job = client.submit(ref, source=(tmp_path / "in.txt").as_uri(), task_timeout=1, max_retries=0,
                        params={"app": {"spawn": True, "sleep": 120, "pidfile": str(pidfile)}})
    pids = started_pids(pidfile)
    with pytest.raises(JobFailed, match="exceeded task_timeout=1s"):
        job.wait(timeout=60)
    wait_until(lambda: not running(pids), 15, "the app and its child to be gone")
    assert scratch_dirs(job.id) == []


def test_a_cancelled_app_and_its_child_are_stopped(client: Client, settings, tmp_path: Path) -> None:
    ref = import_engines(settings, tmp_path, params={"partitioner": {"lines_per_chunk": 100}})
    (tmp_path / "in.txt").write_text("one piece\n")
    pidfile = tmp_path / "pids"
    job = client.submit(ref, source=(tmp_path / "in.txt").as_uri(),
                        params={"app": {"spawn": True, "sleep": 120, "pidfile": str(pidfile)}})
    pids = started_pids(pidfile)
    assert job.cancel()
    with pytest.raises(JobCancelled):
        job.wait(timeout=30)
    wait_until(lambda: not running(pids), 20, "the app and its child to be gone after cancel")
    wait_until(lambda: scratch_dirs(job.id) == [], 10, "the piece's scratch directory to be removed")


def test_an_app_and_its_child_are_stopped_when_the_job_deadline_passes(client: Client, settings,
                                                                        tmp_path: Path) -> None:
    from runner import JobTimedOut

    ref = import_engines(settings, tmp_path, params={"partitioner": {"lines_per_chunk": 100}})
    (tmp_path / "in.txt").write_text("one piece\n")
    pidfile = tmp_path / "pids"
    job = client.submit(ref, source=(tmp_path / "in.txt").as_uri(), job_timeout=4,
                        params={"app": {"spawn": True, "sleep": 120, "pidfile": str(pidfile)}})
    pids = started_pids(pidfile)
    with pytest.raises(JobTimedOut):
        job.wait(timeout=30)
    wait_until(lambda: not running(pids), 20, "the app and its child to be gone after the deadline")
