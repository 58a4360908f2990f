"""Scale a docker compose service of Runner workers by the fleet's backlog in seconds.

Reads ``runner_queue_backlog_seconds`` and ``runner_queue_processes`` of one queue from a
fleet-wide ``/metrics`` (the API's, with ``RUNNER_METRICS_TOKEN``, or ``runner metrics``'),
and runs ``docker compose up -d --no-recreate --scale SERVICE=N SERVICE`` when N changes:

    N = ceil(backlog_seconds × max(processes, 1) ÷ (target_seconds × concurrency))

``backlog_seconds × max(processes, 1)`` is the queue's work in seconds (the metric is that
work divided by the processes serving the queue now, or by one when none does), and a
replica of ``concurrency`` processes drains ``concurrency`` seconds of it per second; so N
replicas would drain it in about ``target_seconds``. Clamped to ``--min``/``--max``. It
scales up at once and down only once a lower N has held for ``--down-after`` seconds (a
worker stopped by compose finishes its running pieces first: SIGTERM is a warm shutdown).

    python examples/autoscale_compose.py --metrics-url http://127.0.0.1:8000/metrics \\
        --queue default --service worker --concurrency 2 --target-seconds 30 --max 8

The token is read from ``METRICS_TOKEN`` (never from the command line, where ``ps`` shows
it). ``--once --dry-run`` prints the decision and changes nothing. See docs/autoscaling.md.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["replicas", "read_queue", "main"]


def replicas(backlog_seconds: float, processes: float, target_seconds: float, concurrency: int,
             minimum: int, maximum: int) -> int:
    """The replicas that would drain the queue's backlog in about ``target_seconds``,
    clamped to ``[minimum, maximum]`` (see the module's docstring for the formula)."""
    if target_seconds <= 0 or concurrency < 1 or not 0 <= minimum <= maximum:
        raise ValueError("need target_seconds > 0, concurrency >= 1 and 0 <= minimum <= maximum")
    work = backlog_seconds * max(processes, 1)
    return max(minimum, min(maximum, math.ceil(work / (target_seconds * concurrency))))


def read_queue(text: str, queue: str) -> tuple[float, float]:
    """``(backlog_seconds, processes)`` of ``queue`` in a scrape's text; ``(0, 0)`` for a
    queue the scrape does not list (no job waits on it and no worker serves it)."""
    values = {"runner_queue_backlog_seconds": 0.0, "runner_queue_processes": 0.0}
    for family in text_string_to_metric_families(text):
        if family.name in values:
            values[family.name] = sum(s.value for s in family.samples if s.labels.get("queue") == queue)
    return values["runner_queue_backlog_seconds"], values["runner_queue_processes"]


def _scrape(url: str, token: str | None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = httpx.get(url, headers=headers, timeout=10)
    answer.raise_for_status()
    if "runner_queue_backlog_seconds" not in answer.text:
        raise SystemExit(f"{url} serves no runner_queue_backlog_seconds: scrape it with RUNNER_METRICS_TOKEN "
                         "(an org's token does not read the fleet-wide backlog)")
    return answer.text


def _scale(service: str, n: int, dry_run: bool) -> None:
    command = ["docker", "compose", "up", "-d", "--no-recreate", "--scale", f"{service}={n}", service]
    print(("would run: " if dry_run else "running: ") + " ".join(command), flush=True)
    if not dry_run:
        subprocess.run(command, check=True)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--metrics-url", default="http://127.0.0.1:8000/metrics")
    parser.add_argument("--queue", default="default")
    parser.add_argument("--service", default="worker", help="the compose service to scale")
    parser.add_argument("--concurrency", type=int, default=2,
                        help="processes per replica (runner worker --concurrency)")
    parser.add_argument("--target-seconds", type=float, default=30.0, help="seconds of backlog to aim for")
    parser.add_argument("--min", type=int, default=0, dest="minimum")
    parser.add_argument("--max", type=int, default=8, dest="maximum")
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between scrapes")
    parser.add_argument("--down-after", type=float, default=120.0, help="seconds a lower N must hold to scale down")
    parser.add_argument("--once", action="store_true", help="decide once and exit")
    parser.add_argument("--dry-run", action="store_true", help="print the docker compose command, run nothing")
    args = parser.parse_args(argv)
    if args.target_seconds <= 0 or args.concurrency < 1 or not 0 <= args.minimum <= args.maximum:
        parser.error("need --target-seconds > 0, --concurrency >= 1 and 0 <= --min <= --max")
    return args


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    token = os.environ.get("METRICS_TOKEN")
    current: int | None = None
    lower_since: float | None = None
    while True:
        backlog, processes = read_queue(_scrape(args.metrics_url, token), args.queue)
        want = replicas(backlog, processes, args.target_seconds, args.concurrency, args.minimum, args.maximum)
        print(f"queue {args.queue}: backlog {backlog:.1f} s over {processes:g} processes -> {want} replicas",
              flush=True)
        now = time.monotonic()
        lower_since = (lower_since or now) if current is not None and want < current else None
        if current is None or want > current or (lower_since is not None and now - lower_since >= args.down_after):
            if want != current:
                _scale(args.service, want, args.dry_run)
            current, lower_since = want, None
        if args.once:
            return
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
