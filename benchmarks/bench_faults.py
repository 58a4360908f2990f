"""Faults, timed: how long a job takes to complete after each fault, and how many pieces
ran more than once; then many small jobs at once, Runner beside a plain Celery chord per
job on the same Redis and workers.

    .venv/bin/python benchmarks/bench_faults.py            # every fault + 2,000 small jobs
    .venv/bin/python benchmarks/bench_faults.py --jobs 10000 --threads 50

Each fault runs on a fresh Redis (AOF on) with two worker processes per worker and
``RUNNER_WORKER_DEAD_SECONDS=5``: a 2,000-piece job of 5 ms pieces, the fault injected once
a quarter of the pieces are done. "pieces in re-run batches" counts the pieces of batches
started more than once (from the job's ``batch`` events); a re-run skips the pieces that
already have results, so it is an upper bound on the work done twice. Figures go to
``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
for _key in [k for k in os.environ if k.startswith("RUNNER_")]:
    del os.environ[_key]

from celery import chord, group  # noqa: E402

from runner import Client, get_settings  # noqa: E402
from runner.dispatch import make_celery  # noqa: E402
from runner.local import wait_until, worker_process  # noqa: E402
from tests.test_faults import RedisServer  # noqa: E402

DEAD = 5
PIECES = 2000
INCLUDE = ["tests.jobs", "benchmarks.tasks"]


def client_for(url: str) -> Client:
    return Client(settings=get_settings(broker_url=url, result_backend=url, store_url=url, include=INCLUDE,
                                        file_roots=[REPO]))


def reruns(client: Client, job_id: str) -> int:
    """Pieces of batch runs beyond one per piece (re-runs skip the pieces already done)."""
    starts = [fields for _, fields in client.store.read_events(job_id) if fields.get("type") == "batch"]
    return sum(int(f["stop"]) - int(f["start"]) for f in starts) - PIECES


def one_fault(name: str, inject) -> dict:
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        server = RedisServer(Path(folder))
        server.start()
        stack.callback(server.stop)
        env = {"RUNNER_WORKER_DEAD_SECONDS": str(DEAD)}
        doomed = stack.enter_context(worker_process(server.url, include=INCLUDE, concurrency=2, env=env,
                                                    hostname="first@%h", log_path=Path(folder) / "a.log"))
        stack.enter_context(worker_process(server.url, include=INCLUDE, concurrency=2, env=env,
                                           hostname="second@%h", log_path=Path(folder) / "b.log"))
        client = client_for(server.url)
        job = client.submit("slow-squares", params={"partitioner": {"count": PIECES}, "app": {"seconds": 0.005}},
                            job_timeout=300)
        wait_until(lambda: job.status().pieces_done >= PIECES // 4, "a quarter done", timeout=120)
        fault_at = time.monotonic()
        inject(server, doomed)
        result = job.wait(timeout=240)
        took = time.monotonic() - fault_at
        assert result == sum(i * i for i in range(PIECES)), "inexact result"
        return {"fault": name, "fault_to_completed_s": round(took, 2), "pieces_in_rerun_batches": reruns(client, job.id)}


def restart_redis(server, _doomed) -> None:
    server.stop()
    time.sleep(3)
    server.start()


def kill_worker(_server, doomed) -> None:
    os.killpg(doomed.pid, signal.SIGKILL)


def freeze_worker(_server, doomed) -> None:
    os.killpg(doomed.pid, signal.SIGSTOP)
    threading.Timer(DEAD + 5, lambda: os.killpg(doomed.pid, signal.SIGCONT)).start()


def small_jobs(jobs: int, threads: int) -> list[dict]:
    """``jobs`` three-piece jobs from ``threads`` client threads: Runner, then a plain chord
    per job, on one Redis and one worker of 2 processes."""
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        server = RedisServer(Path(folder))
        server.start()
        stack.callback(server.stop)
        stack.enter_context(worker_process(server.url, include=INCLUDE, concurrency=2,
                                           log_path=Path(folder) / "w.log"))
        client = client_for(server.url)
        celery = make_celery(client.settings, main="bench-faults")
        import benchmarks.tasks  # noqa: F401  (registers bench.spin / bench.total on the default app)

        def runner_job(_: int) -> float:
            start = time.perf_counter()
            assert client.submit("squares", params={"partitioner": {"count": 3}}).wait(timeout=600) == 5
            return time.perf_counter() - start

        def chord_job(_: int) -> float:
            start = time.perf_counter()
            header = group(celery.signature("bench.spin", args=(0.0,)) for _ in range(3))
            assert chord(header)(celery.signature("bench.total")).get(timeout=600, follow_parents=False) == 3
            return time.perf_counter() - start

        rows = []
        for name, fn in (("runner", runner_job), ("plain chord", chord_job)):
            began = time.perf_counter()
            with ThreadPoolExecutor(threads) as pool:
                latencies = sorted(pool.map(fn, range(jobs)))
            wall = time.perf_counter() - began
            rows.append({"engine": name, "jobs": jobs, "jobs_per_s": round(jobs / wall, 1),
                         "p50_ms": round(statistics.median(latencies) * 1000, 1),
                         "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1)})
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=50)
    args = parser.parse_args()
    for name, inject in (("Redis stopped 3 s, restarted", restart_redis),
                         ("a whole worker SIGKILLed", kill_worker),
                         (f"a worker frozen {DEAD + 5} s (SIGSTOP), then back", freeze_worker)):
        print(one_fault(name, inject), flush=True)
    for row in small_jobs(args.jobs, args.threads):
        print(row, flush=True)


if __name__ == "__main__":
    main()
