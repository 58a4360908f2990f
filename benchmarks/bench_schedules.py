"""Schedules at scale: N schedules at a 1-minute interval swept by 2 worker processes.

    .venv/bin/python benchmarks/bench_schedules.py              # 1,000 schedules (~1.5 min; `make bench`)
    .venv/bin/python benchmarks/bench_schedules.py --full       # issue 24's 10,000 (~3.5 min)
    .venv/bin/python benchmarks/bench_schedules.py --quick      # 200 (a smoke run; still one minute)
    .venv/bin/python benchmarks/bench_schedules.py --schedules 2000 --minutes 2 --json

Issue 24's goals, printed with ✔/✗ (the exit status is 0 only when all are met):

- one firing in ≤ 5 store round trips: before the N schedules exist, an hourly probe
  schedule (in an org of its own) is swept in this process, once to fill its caches, then
  once counted on the store's connections (``tests/round_trips.py``; the broker's publish
  is not the store's and is not counted);
- every schedule fires once per minute: each of the N fires exactly once in each of the
  ``--minutes`` windows (N × minutes jobs, one per schedule and due time; the schedules
  allow ``minutes`` jobs at once, since the fired jobs stay queued);
- firing lag (due time → job queued: the job record's ``queued_at - due_at``) p99 ≤ 5 s.

Also measured: the schedulers' CPU share (CPU seconds of the two worker *main*
processes, where the watchdog and its scheduler sweep run, per wall second, per
process) and Redis memory before the schedules, with them, and after the firings. The
workers consume a queue no job uses, so the fired jobs stay queued: the numbers are the
scheduler's alone, not the jobs' execution. A private Redis and workers are started and
stopped by PID. The run's size is printed with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if sys.path[:1] != [str(REPO_ROOT)]:
    sys.path.insert(0, str(REPO_ROOT))
for _key in [k for k in os.environ if k.startswith("RUNNER_")]:
    del os.environ[_key]

import redis  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from benchmarks.bench_fair_share import machine as machine_of  # noqa: E402
from runner import Client, get_settings  # noqa: E402
from runner.local import embedded_redis, worker_process  # noqa: E402
from runner.schedules.sweep import sweep  # noqa: E402
from tests.round_trips import counted_round_trips  # noqa: E402

INTERVAL = 60.0
DEFAULT, QUICK, FULL = 1_000, 200, 10_000
GOAL = {"round_trips": 5, "lag_p99_s": 5.0}
INCLUDE = ["tests.jobs"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (not its children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def client_for(url: str, org: str | None = None) -> Client:
    return Client(settings=get_settings(broker_url=url, result_backend=url, store_url=url, include=INCLUDE), org=org)


def firing_round_trips(url: str) -> int:
    """Store round trips of one lone firing with warm caches (as tests/test_schedules_speed.py):
    an hourly schedule swept at its first due time, then counted at its second."""
    probe = client_for(url, org="bench-probe")
    sched = probe.schedule("squares@1", name="probe", every="1h", params={"partitioner": {"count": 1}},
                           max_concurrent=5)
    first = sched.info().next_due.timestamp()
    if sweep(probe.services, now=first + 0.01) != 1:
        raise RuntimeError("the probe schedule's first sweep claimed nothing")
    with counted_round_trips(probe.store.redis) as trips:
        claimed = sweep(probe.services, now=first + 3600.01)
    if claimed != 1:
        raise RuntimeError(f"the probe schedule's counted sweep claimed {claimed} due times, expected 1")
    sched.delete()
    return len(trips)


def run(schedules: int, minutes: int, workers: int, say: Any) -> dict[str, Any]:
    with ExitStack() as stack:
        url = stack.enter_context(embedded_redis())
        client = client_for(url)
        raw = redis.Redis.from_url(url)
        memory_empty = raw.info("memory")["used_memory"]
        procs = [stack.enter_context(worker_process(url, include=INCLUDE, concurrency=1, queues=["bench-nothing"],
                                                    hostname=f"bench{i}@%h")) for i in range(workers)]
        trips = firing_round_trips(url)
        say(f"one firing: {trips} store round trips")
        started = time.time()
        for i in range(schedules):  # the fired jobs stay queued: room for one a minute, or the next one is skipped
            client.schedule("squares@1", name=f"s{i:05d}", every=INTERVAL, params={"partitioner": {"count": 1}},
                            max_concurrent=minutes)
        created = time.time()
        say(f"created {schedules:,} schedules in {created - started:.1f} s; waiting for {minutes} minute(s) of firings …")
        memory_schedules = raw.info("memory")["used_memory"]
        # Measure from the first due time after creation ends until every schedule fired `minutes` times.
        window_start = started + INTERVAL
        while time.time() < window_start:
            time.sleep(0.2)
        cpu0, wall0 = [cpu_seconds(p.pid) for p in procs], time.time()
        deadline = created + minutes * INTERVAL + 120
        index = client.store.org_jobs_key(client.org)  # one cheap read per poll: the jobs index
        while raw.zcard(index) < schedules * minutes and time.time() < deadline:
            time.sleep(0.5)
        cpu1, wall1 = [cpu_seconds(p.pid) for p in procs], time.time()
        jobs = client.jobs(limit=schedules * minutes * 2)
        memory_fired = raw.info("memory")["used_memory"]
    lags = [(j.queued_at - j.due_at).total_seconds() for j in jobs if j.due_at and j.queued_at]
    per_schedule = Counter(j.schedule for j in jobs)
    distinct = len({(j.schedule, j.due_at) for j in jobs})
    share = [(b - a) / (wall1 - wall0) for a, b in zip(cpu0, cpu1)]
    return {
        "schedules": schedules, "minutes": minutes, "workers": workers, "interval_s": INTERVAL,
        "firing_round_trips": trips, "fired": len(jobs), "expected": schedules * minutes,
        "each_fired_once_per_minute": (len(jobs) == distinct == schedules * minutes and len(per_schedule) == schedules
                                       and set(per_schedule.values()) == {minutes}),
        "create_per_s": round(schedules / max(created - started, 1e-9), 1),
        "lag_p50_ms": round(percentile(lags, 0.50) * 1000, 1) if lags else None,
        "lag_p99_ms": round(percentile(lags, 0.99) * 1000, 1) if lags else None,
        "lag_max_ms": round(max(lags) * 1000, 1) if lags else None,
        "lag_mean_ms": round(statistics.mean(lags) * 1000, 1) if lags else None,
        "scheduler_cpu_share_per_process": [round(s, 3) for s in share], "measured_s": round(wall1 - wall0, 1),
        "redis_mb_empty": round(memory_empty / 2**20, 1), "redis_mb_schedules": round(memory_schedules / 2**20, 1),
        "redis_mb_after_firings": round(memory_fired / 2**20, 1),
    }


def goals(r: dict[str, Any]) -> list[dict[str, Any]]:
    size = f"{r['schedules']:,} schedules, {r['workers']} workers"
    p99 = r["lag_p99_ms"]
    return [
        {"goal": "Schedules", "what": "store round trips of one firing", "value": r["firing_round_trips"],
         "measured": str(r["firing_round_trips"]), "target": f"≤ {GOAL['round_trips']}",
         "pass": r["firing_round_trips"] <= GOAL["round_trips"]},
        {"goal": "Schedules", "what": f"{size}: each fires once a minute ({r['minutes']} min)",
         "value": r["fired"], "measured": f"{r['fired']:,} of {r['expected']:,} jobs", "target": "each once a minute",
         "pass": r["each_fired_once_per_minute"]},
        {"goal": "Schedules", "what": f"{size}: firing lag p99 (p50 {(r['lag_p50_ms'] or 0) / 1000:.1f} s)",
         "value": p99, "measured": "—" if p99 is None else f"{p99 / 1000:.1f} s", "target": f"≤ {GOAL['lag_p99_s']:g} s",
         "pass": p99 is not None and p99 / 1000 <= GOAL["lag_p99_s"]},
    ]


def render(report: dict[str, Any], out: Console) -> None:
    r = report["result"]
    table = Table("goal", "what", "measured", "target", "",
                  title=f"Schedule goals (issue 24): {r['schedules']:,} schedules run"
                        f"{'' if r['schedules'] >= FULL else f' (the full run: {FULL:,}, --full)'}; {report['machine']}")
    for g in report["goals"]:
        table.add_row(g["goal"], g["what"], g["measured"], g["target"], "[green]✔[/green]" if g["pass"] else "[red]✗[/red]")
    out.print(table)
    figures = Table("figure", "value", title="Schedules: the run's figures")
    for name, value in (("created (client.schedule)", f"{r['create_per_s']:,.0f}/s"),
                        ("firing lag p50 / p99 / max",
                         " / ".join("—" if v is None else f"{v / 1000:.2f} s" for v in
                                    (r["lag_p50_ms"], r["lag_p99_ms"], r["lag_max_ms"]))),
                        ("scheduler CPU share per worker main process", str(r["scheduler_cpu_share_per_process"])),
                        ("measured window", f"{r['measured_s']} s"),
                        ("Redis MB: empty / with schedules / after firings",
                         f"{r['redis_mb_empty']} / {r['redis_mb_schedules']} / {r['redis_mb_after_firings']}")):
        figures.add_row(name, value)
    out.print(figures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--schedules", type=int, default=None, help=f"how many (default {DEFAULT:,})")
    parser.add_argument("--full", action="store_true", help=f"issue 24's full run: {FULL:,} schedules")
    parser.add_argument("--minutes", type=int, default=1, help="one-minute windows to measure (default 1)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK:,} schedules (a smoke run; still one minute)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout (no tables)")
    args = parser.parse_args(argv)
    if args.full + args.quick + (args.schedules is not None) > 1:
        parser.error("--full, --quick and --schedules: give one (--full is --schedules 10000, --quick 200)")
    schedules = FULL if args.full else QUICK if args.quick else DEFAULT if args.schedules is None else args.schedules
    for name, value in (("--schedules", schedules), ("--minutes", args.minutes), ("--workers", args.workers)):
        if value < 1:
            parser.error(f"{name} {value}: give a whole number ≥ 1")
    os.chdir(REPO_ROOT)  # the workers import tests.jobs relative to their cwd
    err = Console(stderr=True, soft_wrap=True)
    m = machine_of()
    result = run(schedules, args.minutes, args.workers, err.print)
    report = {"machine": f"{m['cpu_model']}, nproc {m['nproc']}, Python {m['python']}, load "
                         f"{m['load_average_start']} at the start, {[round(x, 2) for x in os.getloadavg()]} at the end",
              "result": result, "goals": goals(result)}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        render(report, Console(width=max(Console().width, 140)))
    return 0 if all(g["pass"] for g in report["goals"]) else 1


if __name__ == "__main__":
    sys.exit(main())
