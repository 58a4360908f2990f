"""Runner vs a plain Celery chord: the same partition → map → reduce job, same Redis,
same worker processes.

    .venv/bin/python benchmarks/bench_chord.py            # the full run (make bench runs bench_speed.py)
    .venv/bin/python benchmarks/bench_chord.py --quick    # a fast smoke run
    .venv/bin/python benchmarks/bench_chord.py --json     # machine-readable results

Starts a private Redis and ONE prefork worker (``python -m workers``, concurrency 2)
that imports ``benchmarks.tasks``; both sides run on it. Each case runs a job of N pieces
that each spin the CPU for a fixed time and return 1; the reduce sums them (= N).

- Runner: ``client.submit("bench@1.0.0", …)`` → ``job.wait()``. The partition task
  stores the pieces, batches them and fans out a chord of app batches; the assemble task
  sums the results.
- Plain Celery: ``chord(group(bench.spin × N), bench.total).apply_async().get(
  follow_parents=False)``, one Celery task per piece, the way one writes it directly
  against Celery, with the same Celery configuration (``runner.dispatch.make_celery``).
  The clock starts before the signature list is built (the "partition").
  ``follow_parents=False`` avoids an O(N²) loop in Celery's client (see ``run_celery``);
  ``--naive-get`` measures Celery's default instead.

Each case is measured ``--repeats`` times (default 3) with Runner and Celery interleaved
(alternating which goes first), after one warm-up of each side; the table shows the
median pieces/s of each side and the ratio of the medians.
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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if sys.path[:1] != [str(REPO_ROOT)]:  # this checkout's runner/, workers/ and benchmarks/ first
    sys.path.insert(0, str(REPO_ROOT))

# A developer's RUNNER_* settings (max batch, timeouts, …) must not change the numbers;
# the worker inherits this environment too.
for _key in [k for k in os.environ if k.startswith("RUNNER_")]:
    del os.environ[_key]

from celery import chord, group  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from runner import Client, get_settings  # noqa: E402
from runner.dispatch import make_celery  # noqa: E402
from runner.local import embedded_redis, worker_process  # noqa: E402

INCLUDE = ["benchmarks.tasks"]
TEMPLATE = "bench@1.0.0"
CONCURRENCY = 2
TIMEOUT = 900.0  # seconds any single measured job may take before the benchmark gives up


@dataclass(frozen=True)
class Case:
    name: str
    pieces: int
    seconds: float  # CPU seconds per piece
    target: float  # Runner pieces/s must be >= target × Celery pieces/s

    @property
    def label(self) -> str:
        work = f"{self.seconds * 1e6:.0f} µs" if self.seconds < 1e-3 else f"{self.seconds * 1e3:.0f} ms"
        return f"{self.name} {self.pieces:,} × {work}"


FULL = [Case("tiny", 5_000, 50e-6, 5.0), Case("heavy", 200, 20e-3, 0.95)]
QUICK = [Case("tiny", 1_000, 50e-6, 5.0), Case("heavy", 40, 20e-3, 0.95)]


@dataclass
class Run:
    side: str  # "runner" | "celery"
    seconds: float
    pieces: int
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.pieces / self.seconds


def _stream_ms(event_id: str) -> float:
    """A Redis stream id ``<ms>-<seq>`` as seconds since the epoch (Redis' clock)."""
    return int(event_id.split("-", 1)[0]) / 1000.0


def run_runner(client: Client, case: Case) -> Run:
    """Submit a job of ``case`` through Runner and wait for it; returns its timing."""
    params = {"partitioner": {"count": case.pieces}, "app": {"seconds": case.seconds}}
    t0 = time.time()
    start = time.perf_counter()
    job = client.submit(TEMPLATE, params=params)
    result = job.wait(timeout=TIMEOUT)
    elapsed = time.perf_counter() - start
    t1 = time.time()
    if result != case.pieces:
        raise AssertionError(f"Runner job {job.id}: result {result!r}, expected {case.pieces}")
    status = job.status()
    # Where the time went, from the job's state-change events (Redis stream ids carry
    # the server's millisecond clock; the client runs on the same machine).
    marks: dict[str, float] = {}
    progress = 0
    for event_id, fields in job.events():
        if fields.get("type") == "state":
            marks.setdefault(fields["state"], _stream_ms(event_id))
        elif fields.get("type") == "progress":
            progress += 1
    phases = {}
    order = [("submit", t0), *((s, marks.get(s)) for s in ("queued", "partitioning", "running", "assembling",
                                                            "completed")), ("returned", t1)]
    for (a, ta), (b, tb) in zip(order, order[1:]):
        if ta is not None and tb is not None:  # stream ids are whole ms: clamp the rounding
            phases[f"{a}→{b}"] = round(max(0.0, tb - ta), 4)
    detail = {
        "job": job.id,
        "batches_total": status.batches_total,
        "result_flushes": progress,
        "queued_at": status.queued_at.timestamp() if status.queued_at else None,
        "started_at": status.started_at.timestamp() if status.started_at else None,
        "finished_at": status.finished_at.timestamp() if status.finished_at else None,
        "phases_s": phases,
    }
    return Run("runner", elapsed, case.pieces, detail)


def run_celery(celery_app: Any, case: Case, follow_parents: bool = False) -> Run:
    """The same job as a chord written directly against Celery; returns its timing.

    ``follow_parents=False``: Celery's default (True) makes ``get()`` re-check every
    header result each time any message arrives — the client subscribed to all N header
    tasks when it sent them — which is O(N²) client CPU (about 100 s of it for 5,000
    pieces here) on the same 2 cores as the worker. That measures Celery's client, not
    the chord; ``--naive-get`` measures it anyway. A failed header task still fails the
    body (ChordError), so ``get()`` still raises.
    """
    start = time.perf_counter()
    header = group(celery_app.signature("bench.spin", args=(case.seconds,)) for _ in range(case.pieces))
    result = chord(header, celery_app.signature("bench.total")).apply_async()
    published = time.perf_counter() - start
    total = result.get(timeout=TIMEOUT, follow_parents=follow_parents)
    elapsed = time.perf_counter() - start
    if total != case.pieces:
        raise AssertionError(f"Celery chord {result.id}: result {total!r}, expected {case.pieces}")
    with contextlib.suppress(Exception):
        result.forget()
    return Run("celery", elapsed, case.pieces, {"publish_s": round(published, 4)})


def _terminate(signum: int, _frame: Any) -> None:
    # Unwind the context managers (worker, Redis) instead of dying with them running;
    # a second SIGTERM must not interrupt that unwinding.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


def benchmark(cases: list[Case], repeats: int, log_dir: Path, say: Any, naive_get: bool = False) -> dict[str, Any]:
    (log_dir / "redis").mkdir(exist_ok=True)
    with embedded_redis(log_dir / "redis") as url:
        say(f"redis at {url}; starting one worker (prefork, concurrency {CONCURRENCY}) …")
        env = {"PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        with worker_process(url, include=INCLUDE, concurrency=CONCURRENCY, log_path=log_dir / "worker.log", env=env):
            settings = get_settings(broker_url=url, result_backend=url, store_url=url, include=INCLUDE)
            client = Client(settings=settings)
            celery_app = make_celery(settings, main="bench-client")
            warm = Case("warm-up", 20, 1e-3, 0)
            say("warm-up …")
            run_runner(client, warm)
            run_celery(celery_app, warm, naive_get)
            runs: dict[str, list[Run]] = {case.name: [] for case in cases}
            for rep in range(repeats):
                for case in cases:
                    sides = ["runner", "celery"] if rep % 2 == 0 else ["celery", "runner"]
                    for side in sides:
                        run = run_runner(client, case) if side == "runner" else run_celery(celery_app, case, naive_get)
                        runs[case.name].append(run)
                        say(f"  run {rep + 1}/{repeats} {case.label:<22} {run.side:<6} "
                            f"{run.seconds:8.3f} s  {run.rate:10,.0f} pieces/s")
            client.store.close()
    rows = []
    for case in cases:
        by_side = {s: [r for r in runs[case.name] if r.side == s] for s in ("runner", "celery")}
        med = {s: statistics.median(r.rate for r in rs) for s, rs in by_side.items()}
        ratio = med["runner"] / med["celery"]
        median_runner = sorted(by_side["runner"], key=lambda r: r.rate)[len(by_side["runner"]) // 2]
        rows.append({
            "case": case.name,
            "label": case.label,
            "pieces": case.pieces,
            "piece_seconds": case.seconds,
            "runner_pieces_per_s": round(med["runner"], 1),
            "celery_pieces_per_s": round(med["celery"], 1),
            "ratio": round(ratio, 3),
            "target": case.target,
            "pass": ratio >= case.target,
            "runs": {s: [{"seconds": round(r.seconds, 4), "pieces_per_s": round(r.rate, 1), **r.detail}
                         for r in rs] for s, rs in by_side.items()},
            "runner_median_run": {"seconds": round(median_runner.seconds, 4), **median_runner.detail},
        })
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "concurrency": CONCURRENCY,
        "repeats": repeats,
        "statistic": "median",
        "celery_get_follow_parents": naive_get,
        "rows": rows,
    }


PHASES = [
    ("submit→queued", "submit: validate, write the record, send the partition task"),
    ("queued→partitioning", "the partition task reaches a worker"),
    ("partitioning→running", "partitioner: store the pieces, plan the batches"),
    ("running→assembling", "app batches (fan-out, run, record results, chord join)"),
    ("assembling→completed", "assemble: read the results, sum, store the output"),
    ("completed→returned", "the client's wait() sees it"),
]


def render(report: dict[str, Any], console: Console) -> None:
    table = Table(title=f"Runner vs plain Celery chord: pieces/s, median of {report['repeats']}\n"
                        f"(1 worker, concurrency {report['concurrency']}, {report['machine']['cpus']} CPUs)")
    for name, justify in (("case", "left"), ("Runner", "right"), ("Celery chord", "right"),
                          ("ratio", "right"), ("target", "right"), ("", "center")):
        table.add_column(name, justify=justify)
    for row in report["rows"]:
        table.add_row(row["label"], f"{row['runner_pieces_per_s']:,.0f}", f"{row['celery_pieces_per_s']:,.0f}",
                      f"{row['ratio']:.2f}×", f"≥ {row['target']:g}×",
                      "[green]PASS[/green]" if row["pass"] else "[red]FAIL[/red]")
    console.print(table)
    phases = Table(title="Where Runner's time goes: its median run per case, seconds\n"
                         "(from the job's state-change events)")
    phases.add_column("phase")
    for row in report["rows"]:
        phases.add_column(row["case"], justify="right")
    for name, meaning in PHASES:
        phases.add_row(f"{name}  [dim]{meaning}[/dim]",
                       *(f"{row['runner_median_run']['phases_s'].get(name, float('nan')):.3f}" for row in report["rows"]))
    phases.add_row("[bold]total[/bold]", *(f"{row['runner_median_run']['seconds']:.3f}" for row in report["rows"]))
    phases.add_row("app tasks (batches)", *(str(row["runner_median_run"]["batches_total"]) for row in report["rows"]))
    phases.add_row("[dim](contrast) Celery chord: client publishes N tasks[/dim]",
                   *(f"{statistics.median(r['publish_s'] for r in row['runs']['celery']):.3f}" for row in report["rows"]))
    console.print(phases)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run: fewer pieces, one repeat")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout (no table)")
    parser.add_argument("--repeats", type=int, default=None, help="measured runs per case and side (default 3; 1 with --quick)")
    parser.add_argument("--naive-get", action="store_true",
                        help="wait for the plain chord with Celery's default get(follow_parents=True) (O(N²) client CPU)")
    parser.add_argument("--log-dir", type=Path, default=None, help="keep the worker and Redis logs here")
    args = parser.parse_args(argv)
    cases = QUICK if args.quick else FULL
    repeats = args.repeats or (1 if args.quick else 3)
    err = Console(stderr=True)
    say = err.print  # progress goes to stderr, so --json output on stdout stays clean

    os.chdir(REPO_ROOT)  # the worker child imports benchmarks.tasks relative to its cwd
    signal.signal(signal.SIGTERM, _terminate)
    try:
        with contextlib.ExitStack() as stack:
            log_dir = args.log_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="runner-bench-")))
            log_dir.mkdir(parents=True, exist_ok=True)
            report = benchmark(cases, repeats, log_dir, say, args.naive_get)
    except KeyboardInterrupt:
        # The worker and Redis are stopped by now. Exit at once: Celery's pending results
        # would otherwise try to reconnect to the stopped Redis while Python shuts down.
        err.print("interrupted; the worker and Redis were stopped")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        render(report, Console(width=max(Console().width, 110)))
    return 0 if all(row["pass"] for row in report["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
