"""Issue 23's fair share, measured: the same worker with ``RUNNER_FAIR_SHARE=false`` (every
batch sent at partition time, first come first served) and ``true``, side by side.

    make bench                                                 # bench_speed.py, then this file
    .venv/bin/python benchmarks/bench_fair_share.py --quick    # small sizes, one repeat
    .venv/bin/python benchmarks/bench_fair_share.py --json

One private Redis (``runner.local.embedded_redis``); one worker at a time on it
(``runner.local.worker_process``, prefork, concurrency 2, ``include=benchmarks.tasks``),
started with fair share off or on. Every job is ``bench@1.0.0`` (replicas → busy spin →
sum) of 80 µs pieces. Each worker run starts with one warm-up job of that kind, so the
piece time is known before anything is measured (batch sizes depend on it).

- F1 one-piece job, idle: submit → result, p50/p99 of 30 rounds (no goal: the baseline).
- F2 one-piece jobs of org ``small`` while org ``big``'s 100,000-piece job runs:
  p50/p99. Goal: with fair share, p50 ≤ 3× F1's p50 of the same worker run.
- F3 the cost of fairness: a 100,000-piece job alone and a 5,000-piece job (bench_speed's
  P1), pieces/s, median of 3 worker runs per mode, modes alternating. Goal: on ≥ 0.95× off.
- F4 shares: 2 then 4 orgs submit equal 20,000-piece jobs together; each job's
  ``pieces_done`` when the first is half done. Goal: min/max ≥ 0.6 with fair share.

The exit status is 0 only when every goal is met. Ratios are the figures to compare:
absolute milliseconds differ between machines and with load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
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

from benchmarks import fair_cases as cases  # noqa: E402
from benchmarks.fair_report import render  # noqa: E402
from runner import get_settings  # noqa: E402
from runner.local import embedded_redis, worker_process  # noqa: E402

INCLUDE = ["benchmarks.tasks"]
CONCURRENCY = 2
MODES = ("off", "on")
GOAL = {"F2": 3.0, "F3": 0.95, "F4": 0.6}


@dataclass(frozen=True)
class Sizes:
    f1_rounds: int = 30
    big_pieces: int = 100_000  # F2's big job and F3's big job alone
    p1_pieces: int = 5_000  # F3's P1-sized job
    f4_pieces: int = 20_000  # each org's job in F4
    warm_up_pieces: int = 2_000


FULL = Sizes()
QUICK = Sizes(f1_rounds=10, big_pieces=20_000, f4_pieces=5_000)


def goal(gid: str, what: str, value: float | None, shown: str, off: str, target: str, ok: bool) -> dict[str, Any]:
    return {"goal": gid, "what": what, "value": None if value is None else round(value, 3), "measured": shown, "off": off, "target": target,
            "pass": bool(ok)}


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu_model": model, "nproc": nproc, "python": platform.python_version(), "platform": platform.platform(),
            "load_average_start": [round(x, 2) for x in os.getloadavg()]}


class Runs:
    """Worker runs on one Redis, each with fair share off or on, and what each measured."""

    def __init__(self, url: str, sizes: Sizes, log_dir: Path, say: Callable[[str], None]) -> None:
        self.url, self.sizes, self.log_dir, self.say = url, sizes, log_dir, say
        self.settings = get_settings(broker_url=url, result_backend=url, store_url=url, include=INCLUDE)
        self.count = 0

    def run(self, mode: str, work: Callable[[cases.Orgs], dict[str, Any]]) -> dict[str, Any]:
        """Start a worker with fair share ``mode``, warm it up, do ``work``, stop it."""
        self.count += 1
        env = {"PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               "RUNNER_FAIR_SHARE": "true" if mode == "on" else "false"}
        log = self.log_dir / f"worker-{self.count}-fair-{mode}.log"
        self.say(f"worker run {self.count}: fair share {mode} (RUNNER_FAIR_SHARE={env['RUNNER_FAIR_SHARE']}) …")
        orgs = cases.Orgs(self.settings)
        try:
            with worker_process(self.url, include=INCLUDE, concurrency=CONCURRENCY, log_path=log, env=env):
                warm = cases.warm_up(orgs("warm-up"), self.sizes.warm_up_pieces)
                self.say(f"  warm-up {warm['pieces']} × 80 µs: {warm['seconds']} s; "
                         f"piece time known to the fleet: {warm['piece_time_known_us']} µs")
                return {"warm_up": warm, **work(orgs)}
        finally:
            orgs.close()

    def full(self, orgs: cases.Orgs) -> dict[str, Any]:
        """F1, F2, F3 (one run) and F4 in one worker run."""
        s = self.sizes
        f1 = cases.latency_idle(orgs, s.f1_rounds)
        self.say(f"  F1 {s.f1_rounds} one-piece jobs, idle: p50 {f1['p50_ms']} ms, p99 {f1['p99_ms']} ms")
        self.say(f"  F2 one-piece jobs under a {s.big_pieces:,}-piece job of another org …")
        f2 = cases.latency_under_big(orgs, s.big_pieces, self.say)
        f3 = self.f3(orgs)
        f4 = {}
        for count in (2, 4):
            self.say(f"  F4 {count} orgs × {s.f4_pieces:,} pieces …")
            f4[str(count)] = cases.shares(orgs, count, s.f4_pieces, self.say)
        return {"F1": f1, "F2": f2, "F3": f3, "F4": f4}

    def f3(self, orgs: cases.Orgs) -> dict[str, Any]:
        rates = {"big": cases.throughput(orgs, self.sizes.big_pieces), "p1": cases.throughput(orgs, self.sizes.p1_pieces)}
        self.say(f"  F3 alone: {self.sizes.big_pieces:,} pieces {rates['big']:,.0f}/s; "
                 f"{self.sizes.p1_pieces:,} pieces {rates['p1']:,.0f}/s")
        return rates


def measure(runs: Runs, repeats: int) -> dict[str, dict[str, Any]]:
    """The first worker run of each mode measures everything; the others F3 only. Modes
    alternate, the order reversing every repeat (off on, on off, off on), so drift on a
    shared machine hits both."""
    by_mode: dict[str, dict[str, Any]] = {m: {"runs": []} for m in MODES}
    for rep in range(repeats):
        for mode in MODES if rep % 2 == 0 else MODES[::-1]:
            got = runs.run(mode, runs.full if rep == 0 else lambda orgs: {"F3": runs.f3(orgs)})
            by_mode[mode]["runs"].append(got)
    return by_mode


def sections(by_mode: dict[str, dict[str, Any]]) -> dict[str, Any]:
    first = {m: by_mode[m]["runs"][0] for m in MODES}
    f3: dict[str, Any] = {}
    for case in ("big", "p1"):
        rates = {m: [r["F3"][case] for r in by_mode[m]["runs"]] for m in MODES}
        f3[case] = {m: {"median_pieces_per_s": round(statistics.median(rates[m]), 1),
                        "runs_pieces_per_s": [round(x, 1) for x in rates[m]]} for m in MODES}
        f3[case]["on_vs_off"] = round(f3[case]["on"]["median_pieces_per_s"] / f3[case]["off"]["median_pieces_per_s"], 3)
    return {"warm_up": {m: [r["warm_up"] for r in by_mode[m]["runs"]] for m in MODES},
            "F1": {m: first[m]["F1"] for m in MODES},
            "F2": {m: {**first[m]["F2"], "vs_f1_p50": _ratio(first[m]["F2"]["p50_ms"], first[m]["F1"]["p50_ms"])}
                   for m in MODES},
            "F3": f3,
            "F4": {n: {m: first[m]["F4"][n] for m in MODES} for n in ("2", "4")}}


def _ratio(a: float | None, b: float | None) -> float | None:
    """a ÷ b, or None when either was not measured (no one-piece job ran during the big one)."""
    return round(a / b, 2) if a is not None and b else None


def _times(ratio: float | None, ms: float | None) -> str:
    return f"{ratio:.2f}× ({ms:.1f} ms)" if ratio is not None and ms is not None else "none measured"


def goals(sec: dict[str, Any], sizes: Sizes) -> list[dict[str, Any]]:
    f2 = sec["F2"]
    on = f2["on"]["vs_f1_p50"]
    out = [goal("F2", "1-piece job p50 under a big job of another org ÷ idle p50 (F1)", on,
                _times(on, f2["on"]["p50_ms"]), _times(f2["off"]["vs_f1_p50"], f2["off"]["p50_ms"]),
                f"≤ {GOAL['F2']:g}×", on is not None and on <= GOAL["F2"])]
    for case, label in (("big", f"{sizes.big_pieces:,}"), ("p1", f"{sizes.p1_pieces:,}")):
        ratio = sec["F3"][case]["on_vs_off"]
        out.append(goal("F3", f"{label} × 80 µs alone, pieces/s, on ÷ off", ratio, f"{ratio:.2f}×",
                        f"{sec['F3'][case]['off']['median_pieces_per_s']:,.0f}/s", f"≥ {GOAL['F3']:g}×",
                        ratio >= GOAL["F3"]))
    for n in ("2", "4"):
        fair, fifo = sec["F4"][n]["on"]["min_max"], sec["F4"][n]["off"]["min_max"]
        out.append(goal("F4", f"{n} orgs' equal jobs: pieces done min/max at first half", fair, f"{fair:.2f}",
                        f"{fifo:.2f}", f"≥ {GOAL['F4']:g}", fair >= GOAL["F4"]))
    return out


def benchmark(sizes: Sizes, repeats: int, log_dir: Path, say: Callable[[str], None]) -> dict[str, Any]:
    began = time.perf_counter()
    info = machine()
    say(f"{info['cpu_model']}, nproc {info['nproc']}, Python {info['python']}, "
        f"load average {info['load_average_start']}")
    (log_dir / "redis").mkdir(exist_ok=True)
    with embedded_redis(log_dir / "redis") as url:
        say(f"redis at {url}; one worker at a time (prefork, concurrency {CONCURRENCY}); logs in {log_dir}")
        by_mode = measure(Runs(url, sizes, log_dir, say), repeats)
    sec = sections(by_mode)
    info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": info,
            "concurrency": CONCURRENCY, "repeats": repeats, "sizes": asdict(sizes),
            "seconds": round(time.perf_counter() - began, 1), "sections": sec, "goals": goals(sec, sizes)}


def _terminate(signum: int, _frame: Any) -> None:
    # Unwind the context managers (worker, Redis) instead of dying with them running.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (a smoke run)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout (no tables)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="worker runs per mode for F3 (default 3; 1 with --quick)")
    parser.add_argument("--f1-rounds", type=int, default=None, help="F1's one-piece jobs (default 30; 10 quick)")
    parser.add_argument("--big-pieces", type=int, default=None,
                        help="the big job of F2 and F3 (default 100,000; 20,000 quick)")
    parser.add_argument("--p1-pieces", type=int, default=None, help="F3's P1-sized job (default 5,000)")
    parser.add_argument("--f4-pieces", type=int, default=None, help="each org's job in F4 (default 20,000; 5,000 quick)")
    parser.add_argument("--log-dir", type=Path, default=None, help="keep the workers' and Redis' logs here")
    args = parser.parse_args(argv)
    overrides = {k: getattr(args, k) for k in ("f1_rounds", "big_pieces", "p1_pieces", "f4_pieces")
                 if getattr(args, k) is not None}
    bad = [f"--{k.replace('_', '-')} {v}" for k, v in overrides.items() if v < 1]
    if bad or (args.repeats is not None and args.repeats < 1):
        parser.error(f"{', '.join(bad) or f'--repeats {args.repeats}'}: must be at least 1")
    args.sizes = replace(QUICK if args.quick else FULL, **overrides)
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
            log_dir = args.log_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="runner-fair-")))
            log_dir.mkdir(parents=True, exist_ok=True)
            report = benchmark(args.sizes, args.repeats, log_dir, say)
    except KeyboardInterrupt:
        # The worker and Redis are stopped by now; exit at once (see bench_speed.py).
        err.print("interrupted; the worker and Redis were stopped")
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
