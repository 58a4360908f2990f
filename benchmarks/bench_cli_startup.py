"""How long a ``runner`` command takes before it does anything: ``--version``, ``--help``
and ``status JOB`` (one record read), median of N runs each, wall and CPU (user + sys of
the process, from ``wait4``), with the machine and its load average printed beside.

    .venv/bin/python benchmarks/bench_cli_startup.py                       # this tree
    git archive OLD | tar -x -C /tmp/old
    .venv/bin/python benchmarks/bench_cli_startup.py --tree before=/tmp/old --tree after=.

Each tree runs as ``python -m runner.cli`` with ``PYTHONPATH=TREE`` from a neutral
folder, so the same interpreter and packages serve every tree; the trees' runs are
interleaved, so a change in the machine's load hits each alike. The job is a queued
``wordcount`` job on a private Redis (no worker: it stays queued).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOALS_MS = {"--version": 150, "--help": 150, "status JOB": 400}


def run_once(tree: Path, args: list[str], env: dict[str, str], cwd: str) -> tuple[float, float]:
    """Wall and CPU seconds of one ``python -m runner.cli ARGS`` with ``tree`` first on the path."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli", *args], env={**env, "PYTHONPATH": str(tree)},
                            cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"runner {' '.join(args)} (tree {tree}) exited {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "?")
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
            f"load average {load} (1/5/15 min)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", action="append", default=[], help="NAME=DIR of a Runner tree (repeatable)")
    parser.add_argument("--runs", type=int, default=10)
    options = parser.parse_args()
    trees = dict(item.split("=", 1) for item in options.tree) or {"this tree": str(REPO)}
    sys.path.insert(0, str(REPO))
    from runner import Client, get_settings
    from runner.local import embedded_redis

    print(machine(), file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="runner-cli-bench-") as neutral, embedded_redis() as url:
        client = Client(settings=get_settings(broker_url=url, include=["examples.wordcount"], file_roots=[REPO]))
        job = client.submit("wordcount", source=(REPO / "examples" / "data" / "book.txt").as_uri())
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
        env["RUNNER_BROKER_URL"] = url
        commands = {"--version": ["--version"], "--help": ["--help"], "status JOB": ["status", job.id]}
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for name, args in commands.items():
            for tree in trees.values():  # warm-up: the bytecode caches are written
                run_once(Path(tree), args, env, neutral)
            for _ in range(options.runs):
                for label, tree in trees.items():
                    results.setdefault((name, label), []).append(run_once(Path(tree), args, env, neutral))
    print(f"{'command':12} {'tree':10} {'wall ms (median)':>17} {'CPU ms (median)':>16} {'goal':>8}")
    for (name, label), samples in results.items():
        wall = statistics.median(s[0] for s in samples) * 1000
        cpu = statistics.median(s[1] for s in samples) * 1000
        print(f"{name:12} {label:10} {wall:17.0f} {cpu:16.0f} {GOALS_MS[name]:>6} ms")
    print(machine())


if __name__ == "__main__":
    main()
