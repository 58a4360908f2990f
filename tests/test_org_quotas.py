"""Org quotas and job priority, on the real fleet: ``runner orgs set`` / ``runner orgs``;
``max_queued_jobs`` refused at submit (Python: QuotaExceeded; ``/v1``: 429 with
``Retry-After``), nothing written; ``max_running_jobs`` holding a job ``queued`` with a
visible note until a running one ends; the check-and-count scripts atomic under racing
callers; ``priority`` in every accepted form.

Every test uses orgs of its own (the session worker and other tests share the store).
Jobs meant to stay ``queued`` are sent to a control queue no worker consumes.
"""

from __future__ import annotations

import html
import json
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from runner import Client, InvalidParams, JobState, QuotaExceeded
from runner.local import worker_process
from runner.store import StatusStore
from tests.api_fixtures import run_api, wait_state
from tests.cli import cli_env, run_cli
from tests.conftest import TEST_MODULES, s3_env
from tests.test_jobs import wait_until

pytestmark = pytest.mark.timeout(180)


def new_org(kind: str) -> str:
    return f"q-{kind}-{uuid.uuid4().hex[:8]}"


def parked(settings, org: str) -> Client:
    """A client of ``org`` whose jobs stay queued: their partition tasks go to a queue no
    worker consumes."""
    return Client(org=org, settings=settings.model_copy(update={"control_queue": f"parked-{uuid.uuid4().hex[:8]}"}))


def job_count(client: Client) -> int:
    return len(client.jobs(limit=500))


def dashboard_page(api_server, org: str, path: str) -> str:
    """The dashboard's page at ``path``, signed in with a new key of ``org`` (as the login form does)."""
    with httpx.Client(base_url=api_server.url, timeout=30) as web:
        csrf = re.search(r'name="csrf" value="([^"]+)"', web.get("/ui/login").text).group(1)
        signed_in = web.post("/ui/login", data={"api_key": api_server.create_key(org)["key"], "csrf": csrf,
                                                "next": path}, follow_redirects=True)
        assert signed_in.status_code == 200 and str(signed_in.url).endswith(path), signed_in.url
        return html.unescape(signed_in.text)


# -- runner orgs set / runner orgs -----------------------------------------------------------

def test_orgs_set_and_list_round_trip_on_the_command_line(redis_url, file_roots) -> None:
    org = new_org("cli")
    env = cli_env(redis_url, file_roots, org)
    run_cli("orgs", "set", org, "--max-running-jobs", "10", "--max-pieces-in-flight", "500",
            "--max-queued-jobs", "1000", "--weight", "2", env=env)
    listed = {q["org"]: q for q in json.loads(run_cli("orgs", "--json", env=env).stdout)}
    assert listed[org] == {"org": org, "max_running_jobs": 10, "max_pieces_in_flight": 500, "max_queued_jobs": 1000,
                           "weight": 2.0, "running": 0, "queued": 0, "waiting": 0, "in_flight": 0}
    table = run_cli("orgs", env={**env, "COLUMNS": "200"}).stdout
    row = next(line for line in table.splitlines() if org in line)
    assert row.replace("│", " ").replace("┃", " ").split() == [org, "10", "500", "1000", "2", "0", "0", "0", "0"]

    run_cli("orgs", "set", org, "--max-pieces-in-flight", "none", "--max-queued-jobs", "0", env=env)  # others stay
    changed = {q["org"]: q for q in json.loads(run_cli("orgs", "--json", env=env).stdout)}[org]
    assert changed == {**listed[org], "max_pieces_in_flight": None, "max_queued_jobs": 0}


@pytest.mark.parametrize("option, value, says", [
    ("--max-running-jobs", "-1", "at least 1"), ("--max-queued-jobs", "-5", "at least 0"),
    ("--max-pieces-in-flight", "0", "at least 1"), ("--weight", "-2", "above 0"),
    ("--max-running-jobs", "ten", "whole"),
])
def test_orgs_set_refuses_a_bad_limit_with_one_line_naming_the_option(redis_url, file_roots, option, value,
                                                                       says) -> None:
    org = new_org("bad")
    env = cli_env(redis_url, file_roots, org)
    done = run_cli("orgs", "set", org, option, value, env=env, status=2)
    error = done.stderr.strip().splitlines()[-1]
    assert option in error and says in error and "Traceback" not in done.stderr
    assert org not in run_cli("orgs", "--json", env=env).stdout  # nothing stored


def test_orgs_set_without_a_limit_says_which_options_there_are(redis_url, file_roots) -> None:
    done = run_cli("orgs", "set", new_org("none"), env=cli_env(redis_url, file_roots, "x"), status=2)
    assert "--max-running-jobs" in done.stderr and "--max-queued-jobs" in done.stderr


def test_the_store_refuses_bad_limits_naming_each_and_changes_nothing(redis_url) -> None:
    store, org = StatusStore(redis_url), new_org("store")
    store.org_quotas.set(org, max_running_jobs=3)
    with pytest.raises(InvalidParams) as caught:
        store.org_quotas.set(org, max_running_jobs=-1, weight=0, max_queued_jobs=True, max_pieces_in_flight=10)
    assert [field for field, _ in caught.value.errors] == ["max_running_jobs", "weight", "max_queued_jobs"]
    quota = store.org_quotas.get(org)
    assert quota.max_running_jobs == 3 and quota.max_pieces_in_flight is None
    assert store.org_quotas.set(org, max_running_jobs=None).max_running_jobs is None
    assert org not in {q.org for q in store.org_quotas.all()}  # no limit left: no longer listed


# -- max_queued_jobs: refused at submit -----------------------------------------------------

def test_over_max_queued_jobs_a_submit_is_refused_in_python_and_with_429_over_http(settings, worker, api_client,
                                                                                   redis_url, file_roots) -> None:
    org = new_org("queued")
    client = parked(settings, org)
    client.store.org_quotas.set(org, max_queued_jobs=2)
    first, _ = client.submit("squares", params={"partitioner": {"count": 1}}), client.submit("squares")
    before = job_count(client)

    with pytest.raises(QuotaExceeded) as caught:
        client.submit("squares")
    assert str(caught.value) == (f"org {org} has 2 queued jobs, its max_queued_jobs; wait for some to start or raise "
                                 f"it with `runner orgs set {org} --max-queued-jobs N`")
    assert caught.value.quota == "max_queued_jobs"

    api = api_client(org)
    answer = api.post("/v1/jobs", json={"template": "squares", "priority": "high"})
    assert answer.status_code == 429, answer.text
    assert answer.headers["Retry-After"] == "5"
    body = answer.json()
    assert body["ok"] is False and body["error"]["code"] == "quota_exceeded"
    assert body["error"]["quota"] == "max_queued_jobs" and "max_queued_jobs" in body["message"]
    assert "runner orgs" not in body["message"]  # the operator's command is not the caller's
    done = run_cli("submit", "squares", env=cli_env(redis_url, file_roots, org), status=1)
    assert done.stdout == "" and done.stderr.strip() == f"error: {caught.value}"
    assert job_count(client) == before  # nothing written
    assert client.store.org_quotas.get(org).queued == 2

    assert client.cancel(first.id)  # a queued job ending frees its place
    assert client.store.org_quotas.get(org).queued == 1
    assert api.post("/v1/jobs", json={"template": "squares"}).status_code == 201
    for job in client.jobs():
        client.cancel(job.id)
    assert client.store.org_quotas.get(org).queued == 0


def test_a_bytenite_run_over_max_queued_jobs_is_429_in_bytenites_shape_and_the_draft_stays(api_client,
                                                                                            redis_url) -> None:
    org = new_org("bytenite")
    StatusStore(redis_url).org_quotas.set(org, max_queued_jobs=0)  # 0: the org's new jobs stop
    api = api_client(org, bare=True)
    created = api.post("/v1/customer/jobs", json={"templateId": "echo-list", "name": "over"})
    assert created.status_code == 200, created.text  # a draft is not queued: it counts nowhere
    job_id = created.json()["job"]["id"]
    ran = api.post(f"/v1/customer/jobs/{job_id}/run", json={})
    assert ran.status_code == 429 and ran.headers["Retry-After"] == "5", ran.text
    assert ran.json()["ok"] is False and ran.json()["error"]["code"] == 429
    assert "max_queued_jobs" in ran.json()["message"]
    assert StatusStore(redis_url).jobs.state(job_id) is JobState.DRAFT


def test_racing_submits_at_the_limit_admit_exactly_the_limit(settings, worker) -> None:
    org, limit, racers = new_org("race"), 5, 12
    clients = [parked(settings, org) for _ in range(racers)]
    clients[0].store.org_quotas.set(org, max_queued_jobs=limit)
    start = threading.Barrier(racers)

    def submit(client: Client) -> str:
        start.wait(timeout=30)
        try:
            return client.submit("squares").id
        except QuotaExceeded:
            return "refused"

    with ThreadPoolExecutor(racers) as pool:
        outcomes = list(pool.map(submit, clients))
    assert outcomes.count("refused") == racers - limit
    assert job_count(clients[0]) == limit and clients[0].store.org_quotas.get(org).queued == limit
    for job_id in outcomes:
        if job_id != "refused":
            clients[0].cancel(job_id)


# -- max_running_jobs: held queued, started when a slot frees ---------------------------------

def test_over_max_running_jobs_a_job_waits_queued_visibly_then_runs_when_the_first_ends(
        client, settings, redis_url, file_roots, api_client, api_server, tmp_path: Path) -> None:
    org = new_org("running")
    mine = Client(org=org, settings=settings)
    mine.store.org_quotas.set(org, max_running_jobs=1)
    gate = tmp_path / "gate"
    first = mine.submit("gated-piece", params={"partitioner": {"count": 1}, "app": {"gate": str(gate)}})
    wait_until(lambda: first.status().state is JobState.RUNNING, 60, "the first job running")
    second = mine.submit("squares", params={"partitioner": {"count": 3}}, priority="high")
    third = mine.submit("squares", params={"partitioner": {"count": 2}})
    note = f"waiting: org {org} has 1 running jobs, its limit (max_running_jobs)"
    held = wait_until(lambda: second.status().waiting, 60, "the second job held")
    assert held == note and second.status().state is JobState.QUEUED
    wait_until(lambda: third.status().waiting, 60, "the third job held")

    status = run_cli("status", second.id, env=cli_env(redis_url, file_roots, org)).stdout
    assert any(line.split(None, 1) == ["waiting", note] for line in status.splitlines()), status
    assert any(line.split() == ["priority", "8"] for line in status.splitlines()), status
    view = api_client(org).get(f"/v1/jobs/{second.id}").json()
    assert view["state"] == "queued" and view["waiting"] == note and view["priority"] == 8
    page = dashboard_page(api_server, org, f"/ui/jobs/{second.id}")
    assert note in page and re.search(r'priority <span id="priority">8</span>', page)
    usage = mine.store.org_quotas.get(org)
    assert (usage.running, usage.queued, usage.waiting) == (1, 2, 2)

    assert mine.cancel(third.id)  # a waiting job cancels like any queued one, and leaves the count
    assert mine.store.org_quotas.get(org).waiting == 1 and third.status().waiting is None
    assert second.status().state is JobState.QUEUED  # still held: the first job runs on

    gate.touch()
    assert first.wait(timeout=60) == [0]
    assert second.wait(timeout=60) == 0 + 1 + 4
    assert second.status().waiting is None
    assert any("under its max_running_jobs again" in line.msg for line in second.logs())
    assert third.status().state is JobState.CANCELLED
    usage = mine.store.org_quotas.get(org)
    assert (usage.running, usage.queued, usage.waiting) == (0, 0, 0)


def test_quotas_hold_across_two_workers_and_two_api_processes(api_server, api_env, worker, s3, redis_url,
                                                              file_roots, tmp_path: Path) -> None:
    org, gate = new_org("fleet"), tmp_path / "gate"
    store = StatusStore(redis_url)
    store.org_quotas.set(org, max_running_jobs=1, max_queued_jobs=4)
    with (worker_process(redis_url, include=TEST_MODULES, concurrency=2, log_path=tmp_path / "worker2.log",
                         file_roots=file_roots, env=s3_env(s3)),
          run_api(api_env, tmp_path / "api2.log") as second_api):
        key = api_server.create_key(org)["key"]
        servers = [api_server, second_api]
        apis = [servers[i % 2].client(servers[i % 2].token(key)) for i in range(10)]  # a client a thread
        first = apis[0].post("/v1/jobs", json={"template": "gated-piece", "params": {
            "partitioner": {"count": 1}, "app": {"gate": str(gate)}}}).json()["id"]
        wait_state(apis[0], f"/v1/jobs/{first}", {"running"}, 60)
        start = threading.Barrier(len(apis))

        def submit(api: httpx.Client) -> httpx.Response:
            start.wait(timeout=30)
            return api.post("/v1/jobs", json={"template": "squares", "params": {"partitioner": {"count": 3}}})

        with ThreadPoolExecutor(len(apis)) as pool:  # half through each API process, at once
            answers = list(pool.map(submit, apis))
        assert sorted(a.status_code for a in answers) == [201] * 4 + [429] * 6, [a.text for a in answers]
        held = [a.json()["id"] for a in answers if a.status_code == 201]
        wait_until(lambda: all(row["waiting"] for row in store.jobs.fields_each(held, "waiting")), 60, "all held")

        gate.touch()  # now each held job runs, one at a time, started by one of two sweeping workers
        ids, busy = [first, *held], (JobState.PARTITIONING.value, JobState.RUNNING.value, JobState.ASSEMBLING.value)

        def all_ended() -> bool:
            states = [row["state"] for row in store.jobs.fields_each(ids, "state")]
            assert sum(state in busy for state in states) <= 1, states  # never two of the org's jobs at once
            return all(JobState(state).is_final for state in states)

        wait_until(all_ended, 90, "every job ended")
        results = [apis[0].get(f"/v1/jobs/{job_id}/result").json()["result"] for job_id in ids]
        assert results == [[0]] + [0 + 1 + 4] * 4
        starts = [sum("under its max_running_jobs again" in fields["msg"] for _, fields in store.logs(job_id))
                  for job_id in held]
        assert starts == [1] * 4  # each started once, though two workers sweep
        for api in apis:
            api.close()


def _fake_job(store: StatusStore, org: str, state: str = "queued") -> str:
    """A bare job record in a private keyspace (no worker reads it), for the gate's scripts."""
    job_id = uuid.uuid4().hex[:16]
    store.jobs.create({"id": job_id, "org": org, "state": state, "created_at": 0.0}, expire_seconds=600)
    return job_id


def test_racing_gates_and_sweepers_start_exactly_the_limit_each_job_once(redis_url) -> None:
    prefix = f"quota-test-{uuid.uuid4().hex[:8]}"  # out of the session worker's sight: only this test sweeps
    stores = [StatusStore(redis_url, prefix=prefix) for _ in range(8)]  # a connection each: really concurrent
    quotas, org = stores[0].org_quotas, new_org("gate")
    quotas.set(org, max_running_jobs=3)
    jobs = [_fake_job(stores[0], org) for _ in range(8)]
    start = threading.Barrier(len(jobs))

    def gate(i: int) -> bool:
        start.wait(timeout=30)
        return stores[i].org_quotas.admit_to_run(org, jobs[i], f"task-{i}")[0]

    with ThreadPoolExecutor(len(jobs)) as pool:
        admitted = list(pool.map(gate, range(len(jobs))))
    assert admitted.count(True) == 3
    assert quotas.get(org).running == 3 and quotas.get(org).waiting == 5
    waiting = [job for job, ok in zip(jobs, admitted) if not ok]
    assert stores[0].jobs.fields(waiting[0], "waiting")["waiting"] == (
        f"waiting: org {org} has 3 running jobs, its limit (max_running_jobs)")

    running = [job for job, ok in zip(jobs, admitted) if ok]
    stores[0].jobs.transition(running[0], JobState.CANCELLED)  # ended, its slot not yet freed
    stores[0].jobs.delete_job(running[1], org)  # gone without an ending (expired)
    sweep = threading.Barrier(4)

    def promote(i: int) -> list[str]:
        sweep.wait(timeout=30)
        return stores[i].org_quotas.promote(org)

    with ThreadPoolExecutor(4) as pool:
        moved = [job for batch in pool.map(promote, range(4)) for job in batch]
    assert len(moved) == len(set(moved)) == 2 and set(moved) <= set(waiting), moved  # two slots: two started, once
    assert quotas.get(org).running == 3 and quotas.get(org).waiting == 3
    assert all(stores[0].jobs.fields(job, "waiting")["waiting"] is None for job in moved)
    assert stores[0].org_quotas.admit_to_run(org, moved[0], "again")[0]  # its resent partition task passes

    left = [job for job in waiting if job not in moved]
    stores[0].jobs.transition(left[-1], JobState.CANCELLED)
    stores[0].org_quotas.set(org, max_running_jobs=10)
    assert sorted(stores[0].org_quotas.promote(org)) == sorted(left[:-1])
    assert quotas.get(org).waiting == 0  # the cancelled one dropped, not started


# -- priority ---------------------------------------------------------------------------------

@pytest.mark.parametrize("given, stored", [(None, 5), ("low", 2), ("normal", 5), ("HIGH", 8), (0, 0), (9, 9), ("7", 7)])
def test_priority_takes_a_name_or_0_to_9_and_is_stored_as_an_int(settings, given, stored) -> None:
    client = parked(settings, new_org("prio"))
    job = client.submit("squares", **({} if given is None else {"priority": given}))
    assert job.status().priority == stored
    assert client.store.jobs.fields(job.id, "priority")["priority"] == stored
    client.cancel(job.id)


@pytest.mark.parametrize("bad", ["urgent", 10, -1, True, 2.5, "", [5]])
def test_a_bad_priority_is_one_error_naming_the_field_and_nothing_is_written(settings, bad) -> None:
    client = parked(settings, new_org("badprio"))
    with pytest.raises(InvalidParams) as caught:
        client.submit("squares", priority=bad)
    ((field, message),) = caught.value.errors
    assert field == "priority" and "0-9" in message and "low, normal, high" in message
    assert job_count(client) == 0


def test_priority_on_the_command_line_the_api_and_a_schedule(settings, worker, redis_url, file_roots,
                                                             api_client) -> None:
    org = new_org("faces")
    env = cli_env(redis_url, file_roots, org)
    record = json.loads(run_cli("submit", "squares", "--priority", "high", "--json", env=env).stdout)
    assert record["priority"] == 8
    done = run_cli("submit", "squares", "--priority", "urgent", env=env, status=2)
    assert "priority" in done.stderr and "low, normal, high" in done.stderr

    api = api_client(org)
    answer = api.post("/v1/jobs", json={"template": "squares", "priority": "low"})
    assert answer.status_code == 201 and answer.json()["priority"] == 2
    bad = api.post("/v1/jobs", json={"template": "squares", "priority": 12})
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["field"] == "priority"

    client = Client(org=org, settings=settings)
    schedule = client.schedule("squares", name="prio", every="1h", priority="low")
    assert schedule.spec().job["priority"] == "low"
    assert schedule.run_now().status().priority == 2
    with pytest.raises(InvalidParams, match="priority"):
        client.schedule("squares", name="badprio", every="1h", priority="urgent")
    schedule.delete()
