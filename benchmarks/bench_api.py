"""Runner's HTTP API against a bare FastAPI route, under the same uvicorn settings.

    .venv/bin/python benchmarks/bench_api.py            # the full run
    .venv/bin/python benchmarks/bench_api.py --quick    # a fast smoke run
    .venv/bin/python benchmarks/bench_api.py --json     # machine-readable results
    .venv/bin/python benchmarks/bench_api.py --workers 1 --clients 1   # only the goals' cell

Starts a private Redis, then for 1 and 2 uvicorn workers: a real ``runner api`` (through
the CLI, ``--workers W``) and ``uvicorn benchmarks.bare_api:create_app --factory
--workers W``. For each of 1, 8 and 32 concurrent clients it measures requests/s and
p50/p99 latency of

- ``GET /v1/jobs/{id}`` (a token checked and counted, one job record read) vs ``GET /bare/{id}``;
- ``POST /v1/jobs`` of the one-piece ``bench@1.0.0`` job on ``bypass:`` (params
  validated, record written, a partition task sent to the broker) vs ``POST /bare``.

No worker runs: the jobs stay queued, so only the API's own work is timed. The load
comes from one asyncio process (httpx) on the same machine, so absolute figures are
bounded by it; the ratios compare like with like. Each cell runs Runner and the bare
route in halves, Runner, bare, bare, Runner, so drift hits both sides.

Issue 24's goals, printed with ✔/✗ from the cell of one uvicorn worker and one client:
``POST /v1/jobs`` p50 within 1.5 ms of the bare route's p50, ``GET /v1/jobs/{id}`` within
0.5 ms; beside them the Redis round trips per request (store and broker), counted on the
app in this process (``api_round_trips.py``). The exit status is 0 only when both are met.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if sys.path[:1] != [str(REPO_ROOT)]:
    sys.path.insert(0, str(REPO_ROOT))
for _key in [k for k in os.environ if k.startswith("RUNNER_")]:
    del os.environ[_key]

import httpx  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from benchmarks.api_round_trips import count_round_trips  # noqa: E402
from benchmarks.bench_fair_share import machine as machine_of  # noqa: E402
from runner.api.keys import ApiKeys  # noqa: E402
from runner.local import embedded_redis, free_port, stop_process, wait_until  # noqa: E402
from runner.store import StatusStore  # noqa: E402

BODY = {"template": "bench@1.0.0", "params": {"partitioner": {"count": 1}, "app": {"seconds": 0}}}
GOAL_MS = {"POST /v1/jobs": 1.5, "GET /v1/jobs/{id}": 0.5}  # issue 24: p50 over the bare route's, 1 client
console = Console(stderr=True)


@contextlib.contextmanager
def serve(argv: list[str], env: dict[str, str], log: Path) -> Iterator[str]:
    """Run a server command on a free port until the block ends; yields its URL."""
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen([*argv, "--port", str(port)], env=env, cwd=REPO_ROOT, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, " ".join(argv[:3]), proc, log, timeout=120)
        yield url
    finally:
        stop_process(proc)


async def load(url: str, method: str, path: str, headers: dict[str, str], clients: int,
               seconds: float) -> dict[str, Any]:
    """``clients`` loops sending requests for ``seconds``: their latencies, errors and wall."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as http:
        stop = time.perf_counter() + seconds

        async def loop() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                began = time.perf_counter()
                answer = await http.request(method, path, json=BODY if method == "POST" else None)
                latencies.append(time.perf_counter() - began)
                if answer.status_code >= 300:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(clients)))
        elapsed = time.perf_counter() - began
    return {"latencies": latencies, "errors": errors, "seconds": elapsed}


def summary(halves: list[dict[str, Any]]) -> dict[str, Any]:
    """Requests/s and latency percentiles over the halves of one side of a cell."""
    latencies = sorted(x for h in halves for x in h["latencies"])
    return {"requests": len(latencies), "errors": sum(h["errors"] for h in halves),
            "rps": len(latencies) / sum(h["seconds"] for h in halves),
            "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]}


def cell(runner: tuple, bare: tuple, clients: int, seconds: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """One cell: Runner, bare, bare, Runner, each for half of ``seconds``."""
    halves: dict[int, list[dict[str, Any]]] = {0: [], 1: []}
    for side in (0, 1, 1, 0):
        url, method, path, headers = (runner, bare)[side]
        halves[side].append(asyncio.run(load(url, method, path, headers, clients, seconds / 2)))
    return summary(halves[0]), summary(halves[1])


def measure(workers: int, concurrency: list[int], seconds: float, redis_url: str, key: str, logs: Path) -> list[dict]:
    env = {**os.environ, "RUNNER_BROKER_URL": redis_url, "RUNNER_INCLUDE": "benchmarks.tasks",
           "RUNNER_API_RATE_LIMIT": "100000000/hour"}
    runner_cmd = [str(Path(sys.executable).with_name("runner")), "api", "--workers", str(workers),
                  "--log-level", "warning"]
    bare_cmd = [sys.executable, "-m", "uvicorn", "benchmarks.bare_api:create_app", "--factory",
                "--workers", str(workers), "--log-level", "warning", "--no-server-header"]
    rows = []
    with serve(runner_cmd, env, logs / f"api-{workers}.log") as api, serve(bare_cmd, env, logs / f"bare-{workers}.log") as bare:
        token = httpx.post(f"{api}/v1/auth/access_token", json={"apiKey": key}).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        job_id = httpx.post(f"{api}/v1/jobs", json=BODY, headers=auth).json()["id"]
        cases = [("GET /v1/jobs/{id}", (api, "GET", f"/v1/jobs/{job_id}", auth), (bare, "GET", f"/bare/{job_id}", {})),
                 ("POST /v1/jobs", (api, "POST", "/v1/jobs", auth), (bare, "POST", "/bare", {}))]
        for name, runner_side, bare_side in cases:
            for clients in concurrency:
                for side in (runner_side, bare_side):  # warm-up, both sides
                    asyncio.run(load(*side, clients, min(1.0, seconds) / 2))
                runner, baseline = cell(runner_side, bare_side, clients, seconds)
                rows.append({"workers": workers, "route": name, "clients": clients, "runner": runner,
                             "bare": baseline, "ratio": runner["rps"] / baseline["rps"]})
                console.print(f"workers={workers} {name} clients={clients}: {runner['rps']:.0f} req/s "
                              f"p50 {runner['p50_ms']:.2f} ms vs bare {baseline['rps']:.0f} req/s p50 "
                              f"{baseline['p50_ms']:.2f} ms ({rows[-1]['ratio']:.2f}×)")
    return rows


def goals(rows: list[dict], trips: dict[str, float]) -> list[dict[str, Any]]:
    """Issue 24's API goals from the one-worker, one-client cells (the fewest workers run)."""
    fewest = min(row["workers"] for row in rows)
    out = []
    for row in rows:
        if row["workers"] == fewest and row["clients"] == 1 and row["route"] in GOAL_MS:
            over = row["runner"]["p50_ms"] - row["bare"]["p50_ms"]
            target = GOAL_MS[row["route"]]
            out.append({"goal": "API", "what": f"{row['route']} p50 over a bare route, 1 client, {fewest} worker(s)",
                        "value": round(over, 3), "pass": over <= target, "target": f"≤ +{target:g} ms",
                        "measured": f"+{over:.2f} ms ({row['runner']['p50_ms']:.2f} vs {row['bare']['p50_ms']:.2f})",
                        "round_trips": trips.get(row["route"])})
    return out


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 s per cell instead of 5")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per cell, both sides each (default 5)")
    parser.add_argument("--workers", default="1,2", help="uvicorn worker counts, comma-separated (default 1,2)")
    parser.add_argument("--clients", default="1,8,32", help="concurrent clients, comma-separated (default 1,8,32)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    for name in ("workers", "clients"):
        try:
            values = [int(v) for v in getattr(args, name).split(",") if v.strip()]
        except ValueError:
            values = []
        if not values or min(values) < 1:
            parser.error(f"--{name} {getattr(args, name)!r}: give positive whole numbers, comma-separated, e.g. 1,2")
        setattr(args, name, values)
    if 1 not in args.clients:
        parser.error(f"--clients {args.clients}: include 1, the goals' cell (e.g. --clients 1,8)")
    args.seconds = args.seconds or (1.0 if args.quick else 5.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    load_avg = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp, embedded_redis(tmp) as url:
        _, key = ApiKeys(StatusStore(url)).create("bench")
        rows = [row for workers in args.workers for row in measure(workers, args.clients, args.seconds, url, key, Path(tmp))]
        trips = count_round_trips(url, key, BODY)
    results = goals(rows, trips)
    m = machine_of()
    machine = f"{m['cpu_model']}, nproc {m['nproc']}, Python {m['python']}, load {load_avg} at the start"
    if args.json:
        print(json.dumps({"machine": machine, "seconds_per_cell": args.seconds, "rows": rows,
                          "round_trips": trips, "goals": results}, indent=2))
    else:
        render(rows, results, machine, Console(width=160))
    return 0 if results and all(g["pass"] for g in results) else 1


def render(rows: list[dict], results: list[dict[str, Any]], machine: str, out: Console) -> None:
    table = Table("goal", "what", "measured", "target", "Redis round trips / request", "",
                  title=f"API goals (issue 24), one run: {machine}")
    for g in results:
        table.add_row(g["goal"], g["what"], g["measured"], g["target"],
                      "—" if g["round_trips"] is None else f"{g['round_trips']:g}",
                      "[green]✔[/green]" if g["pass"] else "[red]✗[/red]")
    out.print(table)
    table = Table("workers", "route", "clients", "req/s", "p50 ms", "p99 ms", "bare req/s", "bare p50", "bare p99",
                  "ratio", title="runner api vs a bare FastAPI route (same uvicorn settings)")
    for row in rows:
        r, b = row["runner"], row["bare"]
        table.add_row(str(row["workers"]), row["route"], str(row["clients"]), f"{r['rps']:.0f}", f"{r['p50_ms']:.2f}",
                      f"{r['p99_ms']:.1f}", f"{b['rps']:.0f}", f"{b['p50_ms']:.2f}", f"{b['p99_ms']:.1f}",
                      f"{row['ratio']:.2f}")
    out.print(table)


if __name__ == "__main__":
    sys.exit(main())
