"""Runner's HTTP API against a bare FastAPI route, under the same uvicorn settings.

    .venv/bin/python benchmarks/bench_api.py            # the full run
    .venv/bin/python benchmarks/bench_api.py --quick    # a fast smoke run
    .venv/bin/python benchmarks/bench_api.py --json     # machine-readable results

Starts a private Redis, then for 1 and 2 uvicorn workers: a real ``runner api`` (through
the CLI, ``--workers W``) and ``uvicorn benchmarks.bare_api:create_app --factory
--workers W``. For each of 1, 8 and 32 concurrent clients it measures requests/s and
p50/p99 latency of

- ``GET /v1/jobs/{id}`` (a token checked and counted, one job record read) vs ``GET /bare/{id}``;
- ``POST /v1/jobs`` of the one-piece ``bench@1.0.0`` job on ``bypass:`` (params
  validated, record written, a partition task sent to the broker) vs ``POST /bare``.

No worker runs: the jobs stay queued, so only the API's own work is timed. The load
comes from one asyncio process (httpx) on the same machine, so absolute figures are
bounded by it; the ratios compare like with like.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
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

from runner.api.keys import ApiKeys  # noqa: E402
from runner.local import embedded_redis, free_port, stop_process, wait_until  # noqa: E402
from runner.store import StatusStore  # noqa: E402

BODY = {"template": "bench@1.0.0", "params": {"partitioner": {"count": 1}, "app": {"seconds": 0}}}
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
    """``clients`` loops sending requests for ``seconds``; requests/s and latency percentiles."""
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
    latencies.sort()
    return {"requests": len(latencies), "errors": errors, "rps": len(latencies) / elapsed,
            "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]}


def measure(workers: int, concurrency: list[int], seconds: float, redis_url: str, logs: Path) -> list[dict]:
    env = {**os.environ, "RUNNER_BROKER_URL": redis_url, "RUNNER_INCLUDE": "benchmarks.tasks",
           "RUNNER_API_RATE_LIMIT": "100000000/hour"}
    keys = ApiKeys(StatusStore(redis_url))
    _, key = keys.create("bench")
    runner_cmd = [str(Path(sys.executable).with_name("runner")), "api", "--workers", str(workers),
                  "--log-level", "warning"]
    bare_cmd = [sys.executable, "-m", "uvicorn", "benchmarks.bare_api:create_app", "--factory",
                "--workers", str(workers), "--log-level", "warning", "--no-server-header"]
    rows = []
    with serve(runner_cmd, env, logs / f"api-{workers}.log") as api, serve(bare_cmd, env, logs / f"bare-{workers}.log") as bare:
        token = httpx.post(f"{api}/v1/auth/access_token", json={"apiKey": key}).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        job_id = httpx.post(f"{api}/v1/jobs", json=BODY, headers=auth).json()["id"]
        cases = [("GET /v1/jobs/{id}", api, "GET", f"/v1/jobs/{job_id}", auth, bare, "GET", f"/bare/{job_id}"),
                 ("POST /v1/jobs", api, "POST", "/v1/jobs", auth, bare, "POST", "/bare")]
        for name, url, method, path, headers, bare_url, bare_method, bare_path in cases:
            for clients in concurrency:
                asyncio.run(load(url, method, path, headers, clients, min(1.0, seconds)))  # warm-up
                runner = asyncio.run(load(url, method, path, headers, clients, seconds))
                baseline = asyncio.run(load(bare_url, bare_method, bare_path, {}, clients, seconds))
                rows.append({"workers": workers, "route": name, "clients": clients, "runner": runner,
                             "bare": baseline, "ratio": runner["rps"] / baseline["rps"]})
                console.print(f"workers={workers} {name} clients={clients}: {runner['rps']:.0f} req/s "
                              f"vs bare {baseline['rps']:.0f} ({rows[-1]['ratio']:.2f}×)")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 s per cell instead of 5")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    seconds = args.seconds or (1.0 if args.quick else 5.0)
    concurrency = [1, 8, 32]
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp, embedded_redis(tmp) as url:
        rows = [row for workers in (1, 2) for row in measure(workers, concurrency, seconds, url, Path(tmp))]
    if args.json:
        print(json.dumps({"machine": f"{platform.machine()} × {os.cpu_count()} CPUs, Python {platform.python_version()}",
                          "seconds_per_cell": seconds, "rows": rows}, indent=2))
        return
    table = Table("workers", "route", "clients", "req/s", "p50 ms", "p99 ms", "bare req/s", "bare p50", "bare p99",
                  "ratio", title="runner api vs a bare FastAPI route (same uvicorn settings)")
    for row in rows:
        r, b = row["runner"], row["bare"]
        table.add_row(str(row["workers"]), row["route"], str(row["clients"]), f"{r['rps']:.0f}", f"{r['p50_ms']:.1f}",
                      f"{r['p99_ms']:.1f}", f"{b['rps']:.0f}", f"{b['p50_ms']:.1f}", f"{b['p99_ms']:.1f}",
                      f"{row['ratio']:.2f}")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
