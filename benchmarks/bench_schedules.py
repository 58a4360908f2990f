"""Schedules at scale: N schedules at a 1-minute interval swept by 2 worker processes.

Measures, over one full minute in which every schedule fires once:

- firing lag (due time → job queued: the job record's ``queued_at - due_at``), p50/p99/max;
- the schedulers' CPU share: CPU seconds of the two worker *main* processes (where the
  watchdog and its scheduler sweep run) per wall second, per process;
- Redis memory before the schedules, with them, and after one firing each.

The workers consume a queue no job uses, so the fired jobs stay queued: the numbers are
the scheduler's alone, not the jobs' execution. A private Redis and workers are started
and stopped by PID. Run from the repository root::

    .venv/bin/python benchmarks/bench_schedules.py --schedules 10000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner import Client, get_settings  # noqa: E402
from runner.local import embedded_redis, worker_process  # noqa: E402

INTERVAL = 60.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (not its children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with ExitStack() as stack:
        url = stack.enter_context(embedded_redis())
        client = Client(settings=get_settings(broker_url=url, result_backend=url, store_url=url,
                                              include=["tests.jobs"]))
        raw = redis.Redis.from_url(url)
        memory_empty = raw.info("memory")["used_memory"]
        procs = [stack.enter_context(worker_process(url, include=["tests.jobs"], concurrency=1,
                                                    queues=["bench-nothing"], hostname=f"bench{i}@%h"))
                 for i in range(args.workers)]
        started = time.time()
        for i in range(args.schedules):
            client.schedule("squares@1", name=f"s{i:05d}", every=INTERVAL, params={"partitioner": {"count": 1}})
        created = time.time()
        print(f"created {args.schedules} schedules in {created - started:.1f}s", file=sys.stderr)
        memory_schedules = raw.info("memory")["used_memory"]
        # Measure from the first due time after creation ends until every schedule fired once.
        window_start = started + INTERVAL
        while time.time() < window_start:
            time.sleep(0.2)
        cpu0, wall0 = [cpu_seconds(p.pid) for p in procs], time.time()
        deadline = created + INTERVAL + 120
        index = client.store.org_jobs_key(client.org)  # one cheap read per poll: the jobs index
        while raw.zcard(index) < args.schedules and time.time() < deadline:
            time.sleep(0.5)
        cpu1, wall1 = [cpu_seconds(p.pid) for p in procs], time.time()
        jobs = client.jobs(limit=args.schedules * 2)
        lags = [(j.queued_at - j.due_at).total_seconds() for j in jobs if j.due_at and j.queued_at]
        memory_fired = raw.info("memory")["used_memory"]
        share = [(b - a) / (wall1 - wall0) for a, b in zip(cpu0, cpu1)]
        result = {
            "schedules": args.schedules, "workers": args.workers, "interval_s": INTERVAL,
            "fired": len(lags), "create_per_s": round(args.schedules / (created - started), 1),
            "lag_p50_ms": round(percentile(lags, 0.50) * 1000, 1), "lag_p99_ms": round(percentile(lags, 0.99) * 1000, 1),
            "lag_max_ms": round(max(lags) * 1000, 1), "lag_mean_ms": round(statistics.mean(lags) * 1000, 1),
            "scheduler_cpu_share_per_process": [round(s, 3) for s in share],
            "measured_s": round(wall1 - wall0, 1),
            "redis_mb_empty": round(memory_empty / 2**20, 1), "redis_mb_schedules": round(memory_schedules / 2**20, 1),
            "redis_mb_after_one_firing_each": round(memory_fired / 2**20, 1),
        }
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
