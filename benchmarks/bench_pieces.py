"""Per-piece cost and Redis memory of tiny-piece jobs (issue 13, P1 and P4).

    .venv/bin/python benchmarks/bench_pieces.py                 # 5,000 × 80 µs, 1,000,000 tiny
    .venv/bin/python benchmarks/bench_pieces.py --big 10000000  # the P4 job

Starts a private Redis and one worker (concurrency 2) importing ``benchmarks.tasks``
and runs, one after the other, on ``bench@1.0.0`` (replicas → bench_spin → sum):

- ``tiny``: 5,000 pieces of ~80 µs each, pieces/s (median of ``--repeats``), against a
  bare ``multiprocessing.Pool(2)`` with chunksize 100 running the same spin;
- ``big``: ``--big`` pieces of no work, wall time, µs per piece, Redis
  ``used_memory_peak`` growth and the client's RSS before and after the wait.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if sys.path[:1] != [str(REPO_ROOT)]:
    sys.path.insert(0, str(REPO_ROOT))
for _key in [k for k in os.environ if k.startswith("RUNNER_")]:
    del os.environ[_key]

from benchmarks.tasks import TEMPLATE, spin  # noqa: E402
from runner import local_cluster  # noqa: E402


def _rss_mb() -> float:
    with open("/proc/self/statm") as stats:
        return int(stats.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _pool_rate(count: int, seconds: float) -> float:
    with multiprocessing.Pool(2) as pool:
        begun = time.perf_counter()
        assert sum(pool.map(spin, [seconds] * count, chunksize=100)) == count
        return count / (time.perf_counter() - begun)


def _runner_rate(client, count: int, seconds: float) -> float:
    begun = time.perf_counter()
    job = client.submit(TEMPLATE, params={"partitioner": {"count": count}, "app": {"seconds": seconds}},
                        job_timeout=3600)
    assert job.wait(timeout=3600) == count
    return count / (time.perf_counter() - begun)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=80e-6)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with local_cluster(workers=2, include=["benchmarks.tasks"]) as client:
        _runner_rate(client, 20, 1e-3)  # warm-up
        runner_rates, pool_rates = [], []
        for _ in range(args.repeats):
            runner_rates.append(_runner_rate(client, args.tiny, args.seconds))
            pool_rates.append(_pool_rate(args.tiny, args.seconds))
        runner, pool = statistics.median(runner_rates), statistics.median(pool_rates)
        print(f"tiny {args.tiny} x {args.seconds * 1e6:.0f} us: runner {runner:,.0f} pieces/s, "
              f"pool {pool:,.0f} pieces/s, ratio {runner / pool:.2f}")
        small = _runner_rate(client, args.tiny, 0)
        redis = client.store.redis
        redis.config_resetstat()
        peak_before = int(redis.info("memory")["used_memory_peak"])
        rss_before = _rss_mb()
        begun = time.perf_counter()
        job = client.submit(TEMPLATE, params={"partitioner": {"count": args.big}}, job_timeout=3600)
        result = job.wait(timeout=3600)
        took = time.perf_counter() - begun
        assert result == args.big, result
        peak = int(redis.info("memory")["used_memory_peak"])
        print(f"big {args.big:,} pieces: {took:.1f} s, {1e6 * took / args.big:.1f} us/piece "
              f"({1e6 / small:.1f} us/piece at {args.tiny:,}: ratio {took / args.big * small:.2f}), "
              f"redis used_memory_peak +{(peak - peak_before) / 1e6:.1f} MB, "
              f"client RSS {rss_before:.0f} -> {_rss_mb():.0f} MB (max {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f})")


if __name__ == "__main__":
    main()
