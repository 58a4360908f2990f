"""Issue 13's and 24's speed goals P1–P7: Runner beside a process pool, hand-chunked Celery and a
plain Celery chord, on the same private Redis and the same worker, in one process tree.

    make bench                                             # the full run (= this file)
    .venv/bin/python benchmarks/bench_speed.py --quick     # small sizes, one repeat
    .venv/bin/python benchmarks/bench_speed.py --only P1,P3 --json

One worker (``python -m workers``, prefork, concurrency 2, ``include=benchmarks.tasks``)
serves Runner and both Celery sides; the pool is ``multiprocessing`` with 2 processes
(chunksize 100). Every job is N pieces of ``benchmarks.tasks.spin`` (a busy loop)
whose results are summed and checked (= N). Engines are run interleaved, alternating
which goes first, after one warm-up of each; figures are medians. The goals print as
ratios with ✔/✗ and the exit status is 0 only when every goal measured is met.

- P1 tiny: 5,000 × 80 µs, pieces/s: Runner ≥ 0.9× the pool (issue 24's floor; its aim 0.95×).
- P2 heavy: 200 × 30 ms, wall time: Runner ≤ 1.05× the pool.
- P3 latency, submit → result in the client, median of ≥ 30 rounds: one piece ≤ 0.5× a
  plain chord's in the same run (issue 24's floor; its aim 0.3×), 20 tiny pieces ≤ 30 ms.
  Beside them one bare Celery task with its result: the one hop a Runner job pays, what
  bounds the goal (printed as the ms Runner spends beyond it and the ms the goal leaves).
- P4 one job of 10,000,000 no-work pieces under a job timeout: completes; Redis
  ``used_memory_peak`` grows < 200 MB; the client's RSS stays flat while it waits
  (grows < 10 MB); time per piece ≤ 1.2× a 5,000-piece no-work job's.
- P5/P7 10,000 three-piece jobs from 50 client threads: Runner jobs/s ≥ a plain chord's
  (P5, issue 13) and ≥ 2× it (P7, issue 24); P7 also Redis commands per job (``INFO
  commandstats``) ≤ half of issue 13's (``speed_small.BASE_COMMANDS_PER_JOB``). ``--only P7``
  is the same run as ``--only P5``.
- P6 the fleet ceiling: Redis CPU (``INFO cpu``) and commands (``INFO commandstats``) per
  piece over a 100,000-piece no-work job, stored pieces with a ``json_list`` assembler
  and generated pieces with ``sum``: ≤ 1 µs per stored piece (issue 24; the aim 0.5 µs),
  and the modelled ceiling of one Redis core (1 s ÷ CPU per piece) beside the pieces/s
  measured.

Runner's phase table comes from each case's median job's state-change events.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

REPO_ROOT = Path(__file__).resolve().parent.parent
if sys.path[:1] != [str(REPO_ROOT)]:  # this checkout's runner/, workers/ and benchmarks/ first
    sys.path.insert(0, str(REPO_ROOT))

# A developer's RUNNER_* settings must not change the numbers; the worker inherits this.
for _key in [k for k in os.environ if k.startswith("RUNNER_")]:
    del os.environ[_key]

from rich.console import Console  # noqa: E402

from benchmarks import speed_engines as eng  # noqa: E402
from benchmarks.speed_report import render  # noqa: E402
from benchmarks.speed_small import small_jobs_section  # noqa: E402
from runner import Client, get_settings  # noqa: E402
from runner.dispatch import make_celery  # noqa: E402
from runner.local import embedded_redis, worker_process  # noqa: E402

INCLUDE = ["benchmarks.tasks"]
CONCURRENCY = 2
TINY_S, HEAVY_S = 80e-6, 30e-3
GOAL = {"P1": 0.9, "P3_vs_chord": 0.5, "P2": 1.05, "P3_one_ms": 10.0, "P3_small_ms": 30.0, "P4_redis_mb": 200.0, "P4_rss_mb": 10.0,
        "P4_per_piece": 1.2, "P6_us": 1.0}
ENGINES = ["runner", "pool", "chunked", "chord"]
P4_CAP_S = 900.0  # the longest default job timeout P4 sets


@dataclass(frozen=True)
class Sizes:
    p1_pieces: int = 5_000
    p2_pieces: int = 200
    p3_runs: int = 30
    p3_small: int = 20
    p4_pieces: int = 10_000_000
    p4_baseline: int = 5_000
    p5_jobs: int = 10_000
    p5_threads: int = 50
    p6_pieces: int = 100_000


FULL = Sizes()
# P2 keeps 200 pieces: with fewer than 2 chunks of 100 the pool and hand-chunked Celery use one process
QUICK = Sizes(p1_pieces=1_000, p2_pieces=200, p3_runs=10, p4_pieces=100_000, p5_jobs=300, p6_pieces=20_000)


def goal(gid: str, what: str, value: float | None, shown: str, target: str, ok: bool) -> dict[str, Any]:
    return {"goal": gid, "what": what, "value": value, "measured": shown, "target": target, "pass": bool(ok)}


def median_run(runs: list[eng.Run]) -> eng.Run:
    """The run of median time (the lower middle one for an even count)."""
    return sorted(runs, key=lambda r: r.seconds)[(len(runs) - 1) // 2]


class Bench:
    """The shared Redis, worker, clients and pool, and one method per goal."""

    def __init__(self, url: str, sizes: Sizes, repeats: int, say: Callable[[str], None]) -> None:
        self.url, self.sizes, self.repeats, self.say = url, sizes, repeats, say
        settings = get_settings(broker_url=url, result_backend=url, store_url=url, include=INCLUDE)
        self.client = Client(settings=settings)
        self.celery = make_celery(settings, main="bench-client")
        self._pool: Any = None

    @property
    def pool(self) -> Any:
        # spawn, not fork: this process already runs Celery's and redis-py's threads
        if self._pool is None:
            self._pool = multiprocessing.get_context("spawn").Pool(CONCURRENCY)
            self._pool.map(eng.spin, [0.0] * CONCURRENCY * 4, chunksize=1)  # both children up and importing done
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
        self.client.store.close()

    def one(self, engine: str, pieces: int, seconds: float, phases: bool = True) -> eng.Run:
        if engine == "runner":
            return eng.runner_job(self.client, pieces, seconds, phases)
        if engine == "pool":
            return eng.pool_job(self.pool, pieces, seconds)
        if engine == "task":
            return eng.task_job(self.celery, pieces, seconds)
        return (eng.chunked_job if engine == "chunked" else eng.chord_job)(self.celery, pieces, seconds)

    def warm_up(self, engines: list[str]) -> None:
        self.say("warm-up …")
        for engine in engines:
            self.one(engine, 20, 1e-3)

    def interleaved(self, label: str, pieces: int, seconds: float, engines: list[str]) -> dict[str, list[eng.Run]]:
        runs: dict[str, list[eng.Run]] = {e: [] for e in engines}
        for rep in range(self.repeats):
            for engine in engines if rep % 2 == 0 else engines[::-1]:
                run = self.one(engine, pieces, seconds)
                runs[engine].append(run)
                self.say(f"  {label} {rep + 1}/{self.repeats} {engine:<8} {run.seconds:8.3f} s "
                         f"{run.rate:10,.0f} pieces/s")
        return runs

    @staticmethod
    def _table(runs: dict[str, list[eng.Run]]) -> dict[str, Any]:
        return {e: {"median_s": round(median_run(rs).seconds, 4),
                    "median_pieces_per_s": round(statistics.median(r.rate for r in rs), 1),
                    "runs_s": [round(r.seconds, 4) for r in rs]} for e, rs in runs.items()}

    def p1(self) -> dict[str, Any]:
        n = self.sizes.p1_pieces
        runs = self.interleaved(f"P1 {n:,}×80µs", n, TINY_S, ENGINES)
        table = self._table(runs)
        rate = {e: table[e]["median_pieces_per_s"] for e in ENGINES}
        ratio = rate["runner"] / rate["pool"]
        return {"label": f"tiny {n:,} × 80 µs", "engines": table, "phases": median_run(runs["runner"]).detail,
                "vs": {e: round(rate["runner"] / rate[e], 3) for e in ENGINES[1:]},
                "goals": [goal("P1", "tiny pieces/s, Runner / pool", ratio, f"{ratio:.2f}×", f"≥ {GOAL['P1']}×",
                               ratio >= GOAL["P1"])]}

    def p2(self) -> dict[str, Any]:
        n = self.sizes.p2_pieces
        runs = self.interleaved(f"P2 {n:,}×30ms", n, HEAVY_S, ENGINES)
        table = self._table(runs)
        wall = {e: table[e]["median_s"] for e in ENGINES}
        ratio = wall["runner"] / wall["pool"]
        return {"label": f"heavy {n:,} × 30 ms", "engines": table, "phases": median_run(runs["runner"]).detail,
                "vs": {e: round(wall["runner"] / wall[e], 3) for e in ENGINES[1:]},
                "goals": [goal("P2", "heavy wall, Runner / pool", ratio, f"{ratio:.2f}×", f"≤ {GOAL['P2']}×",
                               ratio <= GOAL["P2"])]}

    def p3(self) -> dict[str, Any]:
        small = self.sizes.p3_small
        engines = {1: ["runner", "chord", "task", "pool"], small: ["runner", "chord", "pool"]}  # a bare task: 1 piece
        runs = {pieces: {e: [] for e in names} for pieces, names in engines.items()}
        for i in range(self.sizes.p3_runs):
            for pieces, names in engines.items():
                for engine in names[i % len(names):] + names[:i % len(names)]:  # rotate who goes first
                    runs[pieces][engine].append(self.one(engine, pieces, TINY_S))
        ms = {p: {e: round(statistics.median(r.seconds for r in rs) * 1000, 2) for e, rs in by.items()}
              for p, by in runs.items()}
        self.say(f"  P3 medians of {self.sizes.p3_runs}: 1 piece {ms[1]} ms; {small} pieces {ms[small]} ms")
        one, twenty = ms[1]["runner"], ms[small]["runner"]
        floor = {"task_vs_chord": round(ms[1]["task"] / ms[1]["chord"], 3),
                 "runner_over_task_ms": round(one - ms[1]["task"], 2),
                 "room_at_goal_ms": round(GOAL["P3_vs_chord"] * ms[1]["chord"] - ms[1]["task"], 2)}
        self.say(f"  P3 floor: one bare Celery task is {floor['task_vs_chord']:.2f}× the chord; Runner spends "
                 f"{floor['runner_over_task_ms']} ms beyond it, the goal leaves {floor['room_at_goal_ms']} ms")
        return {"runs": self.sizes.p3_runs, "ms": {"1": ms[1], str(small): ms[small]}, "floor": floor,
                "phases": {"1": median_run(runs[1]["runner"]).detail,
                           str(small): median_run(runs[small]["runner"]).detail},
                "goals": [goal("P3", "1-piece job, Runner / plain chord", one / ms[1]["chord"],
                               f"{one / ms[1]['chord']:.2f}× ({one:.1f} ms)", f"≤ {GOAL['P3_vs_chord']:g}×",
                               one / ms[1]["chord"] <= GOAL["P3_vs_chord"]),
                          goal("P3", f"{small}-piece tiny job, submit → result", twenty, f"{twenty:.1f} ms",
                               f"≤ {GOAL['P3_small_ms']:g} ms", twenty <= GOAL["P3_small_ms"])]}

    def p4(self, timeout: float | None) -> dict[str, Any]:
        s = self.sizes
        base_runs = [eng.runner_job(self.client, s.p4_baseline, 0.0) for _ in range(self.repeats)]
        base = median_run(base_runs)
        per_piece_base = base.seconds / s.p4_baseline
        # past 1.5× the goal's time the goal is missed anyway; never more than P4_CAP_S (a
        # baseline slowed by load must not let a hopeless job hold the run for an hour)
        cap = timeout or round(min(P4_CAP_S, 1.5 * GOAL["P4_per_piece"] * per_piece_base * s.p4_pieces + 30))
        self.say(f"  P4 baseline {s.p4_baseline:,} pieces: {base.seconds:.3f} s ({per_piece_base * 1e6:.1f} µs/piece); "
                 f"{s.p4_pieces:,} pieces with a job timeout of {cap:.0f} s …")
        big = eng.runner_big_job(self.client, self.url, s.p4_pieces, cap)
        d = big.detail
        # a job that did not complete: the time per piece it managed, over the pieces it did
        per_piece = big.seconds / (s.p4_pieces if d["completed"] else max(1, d["pieces_done"]))
        ratio = per_piece / per_piece_base
        self.say(f"  P4 {d['outcome']} in {big.seconds:.1f} s, {d['pieces_done']:,} pieces done; "
                 f"Redis peak +{d['redis_peak_growth_mb']} MB; client RSS +{d['client_rss']['growth_mb']} MB")
        done = "completed" if d["completed"] else f"{d['state']} after {big.seconds:.0f} s, {d['pieces_done']:,} done"
        rss, mem = d["client_rss"]["growth_mb"], d["redis_peak_growth_mb"]
        return {"pieces": s.p4_pieces, "seconds": round(big.seconds, 3), "per_piece_us": round(per_piece * 1e6, 2),
                "baseline": {"pieces": s.p4_baseline, "median_s": round(base.seconds, 4),
                             "per_piece_us": round(per_piece_base * 1e6, 2),
                             "runs_s": [round(r.seconds, 4) for r in base_runs]},
                "detail": d, "phases": d, "baseline_phases": base.detail,
                "goals": [goal("P4", f"{s.p4_pieces:,}-piece job completes", None, done, "completes", d["completed"]),
                          goal("P4", "Redis used_memory_peak growth", mem, f"{mem:,.0f} MB",
                               f"< {GOAL['P4_redis_mb']:g} MB", d["completed"] and mem < GOAL["P4_redis_mb"]),
                          goal("P4", "client RSS growth while waiting", rss, f"{rss:.1f} MB",
                               f"< {GOAL['P4_rss_mb']:g} MB", rss < GOAL["P4_rss_mb"]),
                          goal("P4", f"time/piece vs a {s.p4_baseline:,}-piece job", ratio, f"{ratio:.2f}×",
                               f"≤ {GOAL['P4_per_piece']}×", d["completed"] and ratio <= GOAL["P4_per_piece"])]}

    def p6(self) -> dict[str, Any]:
        n, cases = self.sizes.p6_pieces, {}
        for label, template, params in (("stored, json_list", "bench-stored@1.0.0", {"count": n}),
                                        ("generated, sum", "bench@1.0.0", {"count": n})):
            self.client.submit(template, params={"partitioner": {"count": 1_000}}).wait(timeout=300)  # piece time known
            cases[label] = eng.redis_cost(self.client, self.url, template, {"partitioner": params}, n)
            c = cases[label]
            self.say(f"  P6 {label}: {c['cpu_us_per_piece']:.2f} µs Redis CPU, {c['commands_per_piece']:.3f} commands "
                     f"per piece; {c['pieces_per_s']:,.0f} pieces/s, ceiling {c['ceiling_pieces_per_s']:,.0f}/s")
            self.say("    costliest: " + ", ".join(f"{name} {cost['us_per_piece']:.3f} µs"
                                                   for name, cost in list(c["by_command"].items())[:4]))
        stored, commands = (cases["stored, json_list"][k] for k in ("cpu_us_per_piece", "commands_per_piece"))
        return {"pieces": n, "cases": cases,
                "goals": [goal("P6", "Redis CPU per stored piece", stored, f"{stored:.2f} µs, {commands:.3f} commands",
                               f"≤ {GOAL['P6_us']:g} µs", stored <= GOAL["P6_us"])]}

    def p5(self) -> dict[str, Any]:
        s = self.sizes
        return small_jobs_section(self.client, self.celery, self.url, s.p5_jobs, s.p5_threads, self.repeats, self.say)


def benchmark(only: list[str], sizes: Sizes, repeats: int, p4_timeout: float | None, log_dir: Path,
              say: Callable[[str], None]) -> dict[str, Any]:
    began = time.perf_counter()
    (log_dir / "redis").mkdir(exist_ok=True)
    sections: dict[str, Any] = {}
    with embedded_redis(log_dir / "redis") as url:
        say(f"redis at {url}; starting one worker (prefork, concurrency {CONCURRENCY}) …")
        env = {"PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        with worker_process(url, include=INCLUDE, concurrency=CONCURRENCY, log_path=log_dir / "worker.log", env=env):
            bench = Bench(url, sizes, repeats, say)
            try:
                needed = {e for p, es in (("P1", ENGINES), ("P2", ENGINES), ("P3", ["runner", "chord", "pool"]),
                                          ("P4", ["runner"]), ("P5", ["runner", "chord"]),
                                          ("P6", ["runner"])) if p in only for e in es}
                bench.warm_up([e for e in ENGINES if e in needed])
                for name in ("P1", "P2", "P3", "P5", "P6", "P4"):  # P4 last: a timed-out giant job leaves work behind
                    if name in only:
                        say(f"{name} …")
                        sections[name] = bench.p4(p4_timeout) if name == "P4" else getattr(bench, name.lower())()
            finally:
                bench.close()
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average": [round(x, 2) for x in os.getloadavg()]},
        "concurrency": CONCURRENCY, "repeats": repeats, "sizes": asdict(sizes),
        "seconds": round(time.perf_counter() - began, 1),
        "sections": sections,
        "goals": [g for name in ("P1", "P2", "P3", "P4", "P5", "P6") for g in sections.get(name, {}).get("goals", [])],
    }


def _terminate(signum: int, _frame: Any) -> None:
    # Unwind the context managers (pool, worker, Redis) instead of dying with them running.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (a smoke run)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout (no tables)")
    parser.add_argument("--only", default="P1,P2,P3,P4,P5,P6",
                        help="comma-separated goals to run, e.g. P1,P3 (P7 is P5's run)")
    parser.add_argument("--skip-p4", action="store_true", help="leave out P4 (the giant job)")
    parser.add_argument("--repeats", type=int, default=None, help="measured runs per engine (default 3; 1 with --quick)")
    parser.add_argument("--p1-pieces", type=int, default=None)
    parser.add_argument("--p2-pieces", type=int, default=None)
    parser.add_argument("--p3-runs", type=int, default=None, help="P3 rounds (default 30; 10 with --quick)")
    parser.add_argument("--p4-pieces", type=int, default=None, help="P4's job size (default 10,000,000)")
    parser.add_argument("--p4-timeout", type=float, default=None,
                        help="P4's job timeout in s (default 1.5 × the goal's time + 30 s, at most 900)")
    parser.add_argument("--p5-jobs", type=int, default=None, help="P5/P7's jobs per engine (default 10,000)")
    parser.add_argument("--p5-threads", type=int, default=None)
    parser.add_argument("--p6-pieces", type=int, default=None, help="P6's job size (default 100,000)")
    parser.add_argument("--log-dir", type=Path, default=None, help="keep the worker and Redis logs here")
    args = parser.parse_args(argv)
    only = [p.strip().upper() for p in args.only.split(",") if p.strip()]
    bad = [p for p in only if p not in ("P1", "P2", "P3", "P4", "P5", "P6", "P7")]
    if bad:
        parser.error(f"--only {args.only!r}: unknown {', '.join(bad)}; choose from P1,P2,P3,P4,P5,P6,P7")
    only = list(dict.fromkeys("P5" if p == "P7" else p for p in only))  # P7's figures come from P5's run
    args.only = [p for p in only if not (args.skip_p4 and p == "P4")]
    sizes = QUICK if args.quick else FULL
    overrides = {k: getattr(args, k) for k in ("p1_pieces", "p2_pieces", "p3_runs", "p4_pieces", "p5_jobs",
                                               "p5_threads", "p6_pieces") if getattr(args, k) is not None}
    args.sizes = replace(sizes, **overrides)
    args.repeats = args.repeats or (1 if args.quick else 3)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    err = Console(stderr=True, soft_wrap=True)
    say = err.print  # progress goes to stderr, so --json output on stdout stays clean
    os.chdir(REPO_ROOT)  # the worker child imports benchmarks.tasks relative to its cwd
    signal.signal(signal.SIGTERM, _terminate)
    try:
        with contextlib.ExitStack() as stack:
            log_dir = args.log_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="runner-bench-")))
            log_dir.mkdir(parents=True, exist_ok=True)
            report = benchmark(args.only, args.sizes, args.repeats, args.p4_timeout, log_dir, say)
    except KeyboardInterrupt:
        # The worker and Redis are stopped by now. Exit at once: Celery's pending results
        # would otherwise try to reconnect to the stopped Redis while Python shuts down.
        err.print("interrupted; the pool, the worker and Redis were stopped")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        render(report, Console(width=max(Console().width, 140)))
    return 0 if report["goals"] and all(g["pass"] for g in report["goals"]) else 1


if __name__ == "__main__":
    sys.exit(main())
