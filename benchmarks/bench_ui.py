"""The dashboard (``/ui``) with 100,000 jobs in the store: page times, bytes, and the live
feed's fan-out to 50 open job pages.

    .venv/bin/python benchmarks/bench_ui.py             # the full run (100,000 jobs)
    .venv/bin/python benchmarks/bench_ui.py --quick     # 10,000 jobs, fewer requests
    .venv/bin/python benchmarks/bench_ui.py --json      # machine-readable results

Starts a private Redis, writes ``--jobs`` job records of one org (as ``Client.submit``
writes them: one record hash and the org index entry each) plus one job with 10,000 log
lines and 1,000 metric points, then starts a real ``runner api`` (through the CLI) and
signs in with an API key as a browser does. Timed, sequentially from one client on the
same machine (so a request's time is the server's plus loopback):

- ``GET /ui/jobs``: the list's first page (50 rows), and a filtered one (``state=failed``,
  which no job is in: the scan stops at its bound and offers to carry on);
- ``GET /ui/jobs/{id}``: the big job's page (500-line log tail, 1,000 metric points);
- the peer: the API's own list, ``GET /v1/jobs?limit=50`` (``StatusStore.page_jobs``, which
  reads every job's state to count), over the same store.

Then the fan-out: 50 concurrent ``/ui/jobs/{id}/live`` streams on one running job; each of
``--events`` progress events is appended to the job's stream and the time until every
page has received it is measured.

No worker runs: nothing changes the store but this script.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if sys.path[:1] != [str(REPO_ROOT)]:
    sys.path.insert(0, str(REPO_ROOT))
for _key in [k for k in os.environ if k.startswith("RUNNER_")]:
    del os.environ[_key]

import httpx  # noqa: E402
from rich.console import Console  # noqa: E402

from benchmarks.bench_api import serve  # noqa: E402
from runner.api.keys import ApiKeys  # noqa: E402
from runner.local import embedded_redis  # noqa: E402
from runner.store import StatusStore  # noqa: E402

ORG = "bench"
console = Console(stderr=True)


def _record(job_id: str, created: float, state: str) -> dict[str, Any]:
    return {"id": job_id, "org": ORG, "template": "bench@1.0.0", "state": state, "name": f"job {job_id[-6:]}",
            "params": {"partitioner": {"count": 100}}, "source": "bypass:", "destination": "bypass:", "inputs": {},
            "test": False, "task_timeout": 300.0, "job_timeout": 3600.0, "max_retries": 3, "retention_hours": 168.0,
            "queue": "default", "created_at": created, "queued_at": created, "started_at": created + 1,
            "finished_at": created + 30, "pieces_total": 100, "pieces_done": 100, "pieces_failed": 0}


def seed(store: StatusStore, jobs: int) -> None:
    """``jobs`` completed jobs of ``ORG``, one second apart, in pipelined chunks."""
    start = time.time() - jobs
    for first in range(0, jobs, 2000):
        with store.redis.pipeline(transaction=False) as pipe:
            for n in range(first, min(jobs, first + 2000)):
                job_id = f"{n:016x}"
                record = _record(job_id, start + n, "completed")
                pipe.hset(store.job_key(job_id), mapping={k: json.dumps(v) for k, v in record.items()})
                pipe.zadd(store.org_jobs_key(ORG), {job_id: record["created_at"]})
            pipe.execute()


def big_job(store: StatusStore, job_id: str, state: str = "completed") -> None:
    """A job with 10,000 log lines and 1,000 metric points (two metrics, 500 steps each)."""
    record = _record(job_id, time.time(), state)
    store.create({**record, "state": "queued"}, expire_seconds=86400)
    for target in ("partitioning", "running") + (("assembling", state) if state == "completed" else ()):
        store.add_event(job_id, "state", state=target)
    store.redis.hset(store.job_key(job_id), "state", json.dumps(state))
    for first in range(0, 10_000, 1000):
        store.add_logs(job_id, [{"level": "WARNING" if n % 10 == 0 else "INFO", "source": "app", "piece": n % 100,
                                 "msg": f"piece {n % 100} step {n}: loss going down"}
                                for n in range(first, first + 1000)])
    store.metric_series.add(job_id, [{"name": name, "value": 1.0 / (step + 1), "step": step, "piece": step % 100,
                                      "t": time.time()} for step in range(500) for name in ("loss", "accuracy")])


def sign_in(url: str, key: str) -> httpx.Client:
    """A client holding a dashboard session, signed in as a browser does."""
    client = httpx.Client(base_url=url, timeout=60)
    form = client.get("/ui/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    answer = client.post("/ui/login", data={"csrf": token, "api_key": key, "next": "/ui/jobs"})
    assert answer.status_code == 303, answer.text
    return client


def timed(client: httpx.Client, path: str, requests: int, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """p50/p99 milliseconds and bytes of ``requests`` sequential GETs (after 3 warm-ups)."""
    for _ in range(3):
        client.get(path, headers=headers).raise_for_status()
    times, size = [], 0
    for _ in range(requests):
        began = time.perf_counter()
        answer = client.get(path, headers=headers)
        times.append((time.perf_counter() - began) * 1000)
        answer.raise_for_status()
        size = len(answer.content)
    times.sort()
    return {"path": path, "requests": requests, "p50_ms": statistics.median(times),
            "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))], "bytes": size}


async def fan_out(url: str, cookie: str, store: StatusStore, job_id: str, pages: int, events: int) -> dict[str, Any]:
    """``pages`` open live feeds of one job; per appended event, ms until all pages got it."""
    received: list[asyncio.Queue] = [asyncio.Queue() for _ in range(pages)]
    newest = [store.redis.xrevrange(key, "+", "-", count=1)[0][0]  # where a freshly loaded page starts
              for key in (store.events_key(job_id), store.logs_key(job_id))]
    ready = asyncio.Event()
    opened = 0

    async def page(index: int, client: httpx.AsyncClient) -> None:
        nonlocal opened
        async with client.stream("GET", f"/ui/jobs/{job_id}/live?events={newest[0]}&logs={newest[1]}") as answer:
            opened += 1
            if opened == pages:
                ready.set()
            async for line in answer.aiter_lines():
                if line.startswith("data: ") and '"bench-mark"' in line:
                    await received[index].put(time.perf_counter())

    limits = httpx.Limits(max_connections=pages + 5)
    async with httpx.AsyncClient(base_url=url, cookies={"runner_ui": cookie}, timeout=None, limits=limits) as client:
        tasks = [asyncio.create_task(page(i, client)) for i in range(pages)]
        await asyncio.wait_for(ready.wait(), 60)
        delays = []
        for n in range(events):
            sent = time.perf_counter()
            await asyncio.to_thread(store.add_event, job_id, "progress", done=str(n), note="bench-mark")
            arrivals = [await asyncio.wait_for(queue.get(), 30) for queue in received]
            delays.append((max(arrivals) - sent) * 1000)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    delays.sort()
    return {"pages": pages, "events": events, "all_pages_p50_ms": statistics.median(delays),
            "all_pages_max_ms": delays[-1]}


def run(jobs: int, requests: int, events: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp, embedded_redis(tmp) as redis_url:
        store = StatusStore(redis_url)
        began = time.perf_counter()
        seed(store, jobs)
        big_job(store, "b" * 16)
        big_job(store, "r" * 16, state="running")
        console.print(f"seeded {jobs:,} jobs in {time.perf_counter() - began:.1f}s")
        _, key = ApiKeys(store).create(ORG)
        env = {**os.environ, "RUNNER_BROKER_URL": redis_url, "RUNNER_INCLUDE": "benchmarks.tasks",
               "RUNNER_API_RATE_LIMIT": "100000000/hour"}
        command = [str(Path(sys.executable).with_name("runner")), "api", "--log-level", "warning"]
        with serve(command, env, Path(tmp) / "api.log") as url, contextlib.closing(sign_in(url, key)) as browser:
            token = httpx.post(f"{url}/v1/auth/access_token", json={"apiKey": key}).json()["token"]
            rows = [timed(browser, "/ui/jobs", requests), timed(browser, "/ui/jobs?state=failed", requests),
                    timed(browser, f"/ui/jobs/{'b' * 16}", requests),
                    timed(browser, "/v1/jobs?limit=50", max(3, requests // 10), {"Authorization": f"Bearer {token}"})]
            for row in rows:
                console.print(f"{row['path']}: p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, "
                              f"{row['bytes']:,} bytes")
            cookie = browser.cookies.get("runner_ui")
            fan = asyncio.run(fan_out(url, cookie, store, "r" * 16, 50, events))
            console.print(f"fan-out to {fan['pages']} pages: every page had an event after "
                          f"p50 {fan['all_pages_p50_ms']:.1f} ms, max {fan['all_pages_max_ms']:.1f} ms")
    return {"jobs": jobs, "pages": rows, "fan_out": fan, "machine": {
        "cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(), "python": platform.python_version()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10,000 jobs, 30 requests per page, 10 events")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    jobs = args.jobs or (10_000 if args.quick else 100_000)
    result = run(jobs, 30 if args.quick else 200, 10 if args.quick else 50)
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
