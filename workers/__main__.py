"""``python -m workers [--include M] [--queues Q] [--concurrency N] [celery worker options]``.

What ``runner worker`` executes. The worker side parses its own few options and passes
every other one to ``celery worker``, so it never needs the client's command line.
"""

from __future__ import annotations

import argparse
import sys

import redis

from runner.errors import RunnerError
from workers.boot import run_worker


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="runner worker", add_help=False)
    parser.add_argument("--include", "-I", action="append", default=[])
    parser.add_argument("--queues", "-Q", default=None)
    parser.add_argument("--concurrency", "-c", type=int, default=None)
    known, extra = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    modules = [m for item in known.include for m in item.split(",") if m]
    try:
        run_worker(modules, known.queues.split(",") if known.queues else None, known.concurrency, extra)
    except (RunnerError, redis.ConnectionError) as exc:  # a bad --include, a conflicting template, no Redis:
        print(f"runner worker: error: {exc}", file=sys.stderr)  # one line, not a traceback
        sys.exit(1)


if __name__ == "__main__":
    main()
