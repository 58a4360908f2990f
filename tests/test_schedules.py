"""Recurring jobs on real workers: each due time fires exactly once across a fleet (also
when the worker that fired is SIGKILLed), catch-up after the whole fleet was stopped,
the overlap skip, overdue once per period, and validation at create.

Each test runs its own Redis and ``runner worker`` processes, so the session's worker
never sweeps these schedules. Intervals are 1-2 s; the minimum interval is lowered for
the tests' clients only (it is checked at create).
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from runner import Client, InvalidSchedule, ScheduleNotFound, TemplateNotFound, get_settings
from runner.doctor import check_schedules
from runner.local import embedded_redis, wait_until, worker_process
from tests.conftest import TEST_MODULES

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    with embedded_redis(tmp_path) as url:
        yield url


def client_for(url: str, file_roots: list[Path]) -> Client:
    return Client(settings=get_settings(broker_url=url, result_backend=url, store_url=url, include=TEST_MODULES,
                                        file_roots=file_roots, schedule_min_interval=0.5))


def worker(url: str, log: Path, name: str):
    return worker_process(url, include=TEST_MODULES, concurrency=1, hostname=f"{name}@%h", log_path=log)


def due_counts(client: Client, name: str) -> Counter:
    """How many jobs each due time of the schedule produced (from the jobs' own records)."""
    return Counter(job.due_at.timestamp() for job in client.get_schedule(name).jobs(limit=10_000))


def firing_pid(client: Client, job_id: str) -> int:
    """The pid of the process that queued the job (its ``queued by`` log line)."""
    line = next(line.msg for line in client.get(job_id).logs() if line.msg.startswith("queued by"))
    return int(re.search(r"pid (\d+)", line).group(1))


def test_each_due_time_fires_once_across_three_workers_and_after_the_firing_one_is_killed(
        redis_url: str, tmp_path: Path, file_roots) -> None:
    client = client_for(redis_url, file_roots)
    with ExitStack() as stack:
        procs = [stack.enter_context(worker(redis_url, tmp_path / f"w{i}.log", f"w{i}")) for i in range(3)]
        sched = client.schedule("squares@1", name="every-2s", every="2s", params={"partitioner": {"count": 3}},
                                max_concurrent=10)
        wait_until(lambda: sched.info().firings >= 6, "six firings with three sweepers", timeout=40)
        before = due_counts(client, "every-2s")
        assert set(before.values()) == {1}, before

        last = sched.info().last_job
        killed = next(p for p in procs if p.pid == firing_pid(client, last))
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(10)
        firings = sched.info().firings
        wait_until(lambda: sched.info().firings >= firings + 2, "two firings after the SIGKILL", timeout=30)
        sched.pause()

    counts = due_counts(client, "every-2s")
    assert set(counts.values()) == {1}, f"a due time fired twice: {counts}"
    dues = sorted(counts)
    assert all(abs((b - a) - 2.0) < 0.01 for a, b in zip(dues, dues[1:])), f"a due time was missed: {dues}"
    assert sched.info().skipped == 0


def test_catch_up_after_the_whole_fleet_was_stopped_follows_each_policy(
        redis_url: str, tmp_path: Path, file_roots) -> None:
    client = client_for(redis_url, file_roots)
    params = {"partitioner": {"count": 1}}
    with worker(redis_url, tmp_path / "a.log", "before"):
        for policy in ("latest", "none", "all"):
            client.schedule("squares@1", name=f"catch-{policy}", every="1s", catch_up=policy, params=params,
                            max_concurrent=100)
        wait_until(lambda: all(s.firings >= 2 for s in client.schedules()), "every schedule firing", timeout=30)
    stopped = time.time()
    last_before = {s.name: s.last_due.timestamp() for s in client.schedules()}
    time.sleep(5)  # the outage under test: no sweeper runs (the 10 s, shortened; 5 due times missed)
    with worker(redis_url, tmp_path / "b.log", "after"):
        restarted = time.time()
        wait_until(lambda: all(s.last_due and s.last_due.timestamp() > restarted + 1 for s in client.schedules()),
                   "every schedule firing after the restart", timeout=30)
    caught = {name: next(e for e in client.get_schedule(name).events() if e["type"] == "caught_up")
              for name in last_before}
    missed = {name: [d for d in due_counts(client, name) if last_before[name] < d <= float(caught[name]["at"])]
              for name in last_before}
    assert all(int(e["missed"]) >= 4 for e in caught.values()), caught
    assert len(missed["catch-latest"]) == 1 and caught["catch-latest"]["fired"] == "1", missed
    assert missed["catch-none"] == [] and caught["catch-none"]["fired"] == "0", missed
    assert len(missed["catch-all"]) == int(caught["catch-all"]["missed"]), (missed, caught)
    assert max(due_counts(client, "catch-all").values()) == 1
    dues = sorted(due_counts(client, "catch-all"))
    assert all(abs((b - a) - 1.0) < 0.01 for a, b in zip(dues, dues[1:])), f"catch_up=all missed one: {dues}"
    assert restarted - stopped >= 5


def test_a_run_that_outlives_the_interval_makes_the_next_firing_skipped_with_its_reason(
        redis_url: str, tmp_path: Path, file_roots) -> None:
    client = client_for(redis_url, file_roots)
    with worker(redis_url, tmp_path / "w.log", "w"):
        sched = client.schedule("sleepy@1", name="slow", every="1s",
                                params={"partitioner": {"count": 1}, "app": {"seconds": 4}})
        wait_until(lambda: sched.info().skipped >= 2, "a skipped firing", timeout=40)
        sched.pause()
    skipped = [e for e in sched.events() if e["type"] == "skipped"]
    first_job = sched.jobs()[-1].id
    assert f"previous run {first_job} still" in skipped[0]["reason"] and "max_concurrent=1" in skipped[0]["reason"]
    assert len(sched.jobs()) < sched.info().firings + sched.info().skipped


def test_a_schedule_whose_runs_fail_becomes_overdue_once(redis_url: str, tmp_path: Path, file_roots) -> None:
    client = client_for(redis_url, file_roots)
    with worker(redis_url, tmp_path / "w.log", "w"):
        sched = client.schedule("exploding@1", name="broken", every="1s", expected_interval="3s")
        assert not sched.info().overdue
        wait_until(lambda: any(e["type"] == "overdue" for e in sched.events()), "the overdue event", timeout=30)
        flagged = sched.info().firings
        wait_until(lambda: sched.info().firings >= flagged + 8, "two more expected intervals of firings", timeout=40)
        seen: list = []  # a snapshot between firings: the newest run has failed (not just been queued)
        wait_until(lambda: seen.append(sched.info()) or seen[-1].last_state == "failed", "a failed newest run",
                   timeout=30)
        info = seen[-1]
        (doctor,) = check_schedules(client.settings, client.store)
        sched.pause()
    assert info.overdue and info.last_success is None and info.last_state == "failed"
    assert doctor.name == "schedule broken" and not doctor.ok and "runner jobs --schedule broken" in doctor.fix
    overdue = [e for e in sched.events() if e["type"] == "overdue"]
    assert len(overdue) == 1, overdue
    assert "expected_interval=3s" in overdue[0]["reason"]


def test_a_healthy_schedule_is_not_overdue_and_runs_are_listed_by_schedule(
        redis_url: str, tmp_path: Path, file_roots) -> None:
    client = client_for(redis_url, file_roots)
    with worker(redis_url, tmp_path / "w.log", "w"):
        sched = client.schedule("squares@1", name="fine", every="1s", expected_interval="3s",
                                params={"partitioner": {"count": 2}})
        job = sched.run_now()
        assert job.wait(timeout=30) == 1
        wait_until(lambda: sched.info().firings >= 5, "five firings", timeout=30)
        info = sched.info()
        sched.delete()
    assert not info.overdue and info.last_success is not None
    assert all(j.schedule == "fine" for j in client.jobs(limit=100))
    assert not any(e for e in client.schedules())
    with pytest.raises(ScheduleNotFound, match="no schedule 'fine'"):
        client.get_schedule("fine")
    assert job.status().state.value == "completed"  # past jobs keep their own retention


@pytest.mark.parametrize("kwargs, field, words", [
    ({"every": "10s", "cron": "* * * * *"}, "every", "exactly one"),
    ({"cron": "61 * * * *"}, "cron", "not a cron expression"),
    ({"every": "0.1s"}, "every", "under the minimum"),
    ({"every": "soon"}, "every", "not a duration"),
    ({"every": "1m", "tz": "Mars/Olympus"}, "tz", "unknown time zone"),
    ({"every": "1m", "params": {"partitioner": {"count": "many"}}}, "partitioner.count", "integer"),
    ({"every": "1m", "catch_up": "some"}, "catch_up", "latest, none, all"),
    ({"every": "1m", "inputs": {"model": "bypass:"}}, "inputs.model", "unknown input"),
    ({"every": "1m", "source": "file:///etc/hostname"}, "source", "/etc/hostname"),
    ({"every": "1m", "job_timeout": -1}, "job_timeout", "greater than 0"),
])
def test_bad_input_is_named_and_nothing_is_stored(redis_url: str, file_roots, kwargs, field, words) -> None:
    client = client_for(redis_url, file_roots)
    with pytest.raises(InvalidSchedule) as caught:
        client.schedule("squares@1", name="bad", **kwargs)
    assert any(path == field and words in message for path, message in caught.value.errors), caught.value.errors
    assert client.schedules() == [] and client.store.redis.keys("*schedule*") == []


def test_an_unknown_template_is_named_and_nothing_is_stored(redis_url: str, file_roots) -> None:
    client = client_for(redis_url, file_roots)
    with pytest.raises(TemplateNotFound, match="nope"):
        client.schedule("nope@1", name="bad", every="1m")
    assert client.store.redis.keys("*schedule*") == []


def test_a_name_is_taken_once(redis_url: str, file_roots) -> None:
    client = client_for(redis_url, file_roots)
    client.schedule("squares@1", name="once", cron="*/5 * * * *", tz="Europe/Copenhagen")
    with pytest.raises(InvalidSchedule, match="already exists"):
        client.schedule("squares@1", name="once", every="1m")
    (info,) = client.schedules()
    assert info.timing == "cron '*/5 * * * *' (Europe/Copenhagen)" and info.next_due.minute % 5 == 0


def test_the_commands_create_list_control_and_list_runs_of_a_schedule(redis_url: str, file_roots) -> None:
    from tests.cli import cli_env, one_line_error, run_cli

    env = cli_env(redis_url, file_roots, "cli-org", RUNNER_SCHEDULE_MIN_INTERVAL="1")
    bad = run_cli("schedule", "create", "nightly", "squares@1", "--cron", "99 * * * *", env=env, status=2)
    assert "cron: '99 * * * *' is not a cron expression" in one_line_error(bad)
    created = run_cli("schedule", "create", "nightly", "squares@1", "--cron", "0 3 * * *", "--tz", "Europe/Copenhagen",
                      "-p", "partitioner.count=2", "--expected-interval", "1d", env=env)
    assert created.stdout.strip() == "nightly" and "next run" in created.stderr
    listed = run_cli("schedules", env=env)
    assert "nightly" in listed.stdout and "squares@1.0.0" in listed.stdout and "ok" in listed.stdout
    run_cli("schedule", "pause", "nightly", env=env)
    assert "paused" in run_cli("schedules", env=env).stdout
    run_cli("schedule", "resume", "nightly", env=env)
    job_id = run_cli("schedule", "run-now", "nightly", env=env).stdout.strip()
    runs = run_cli("jobs", "--schedule", "nightly", "--json", env=env).stdout
    assert job_id in runs and '"schedule": "nightly"' in runs
    run_cli("schedule", "delete", "nightly", env=env)
    gone = run_cli("schedule", "pause", "nightly", env=env, status=1)
    assert "no schedule 'nightly' in org 'cli-org'" in one_line_error(gone)


def test_of_many_racing_claims_of_one_due_time_exactly_one_wins_and_its_replay_still_wins(
        redis_url: str, file_roots) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client = client_for(redis_url, file_roots)
    client.schedule("squares@1", name="raced", every="1m")
    schedules = client.store.schedules
    spec, state = schedules.get(client.org, "raced")
    due = int(state["next_due"])
    with ThreadPoolExecutor(16) as pool:
        wins = list(pool.map(lambda i: schedules.claim_due(spec, due, due + 60_000, f"token-{i}"), range(64)))
    assert wins.count(True) == 1
    winner = f"token-{wins.index(True)}"
    assert schedules.claim_due(spec, due, due + 60_000, winner)  # a retry after a lost reply
    assert not schedules.claim_due(spec, due, due + 60_000, "token-late")
    assert schedules.get(client.org, "raced")[1]["claim_token"] == winner


def test_a_worker_stopped_mid_sweep_leaves_every_job_it_admitted_on_its_schedule(
        redis_url: str, tmp_path: Path, file_roots) -> None:
    """SIGTERM (a warm shutdown) while a sweep fires many schedules: the sweep runs to its
    end, so every job a schedule fired is listed on that schedule (its firings are
    recorded at the sweep's end; a cut sweep left jobs no schedule listed)."""
    client = client_for(redis_url, file_roots)
    names = [f"many-{i}" for i in range(120)]
    for name in names:
        client.schedule("squares@1", name=name, every="1s", params={"partitioner": {"count": 1}}, max_concurrent=1000)
    store = client.store

    def admitted() -> int:
        return store.redis.zcard(store.keys.org_jobs_key(client.org))

    with worker(redis_url, tmp_path / "w.log", "w"):
        wait_until(lambda: sum(s.firings for s in client.schedules()) >= len(names), "a sweep of firings", timeout=60)
        # stop while a sweep is under way: more jobs admitted than firings recorded
        wait_until(lambda: admitted() > sum(s.firings for s in client.schedules()), "a sweep under way", timeout=60)
    fired = {job.id: job.schedule for job in client.jobs(limit=100_000) if job.schedule}
    listed = {job.id for name in names for job in client.get_schedule(name).jobs(limit=10_000)}
    unlisted = sorted(job_id for job_id in fired if job_id not in listed)
    assert fired and not unlisted, f"{len(unlisted)} of {len(fired)} fired jobs are on no schedule: {unlisted[:5]}"
