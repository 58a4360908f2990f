"""The measurements of ``bench_fair_share.py`` (issue 23), run against whichever worker is
up — fair share on or off is the worker's setting, so each function is called once per
worker run and knows nothing of the mode:

- ``latency_idle`` (F1): one-piece jobs one after another, nothing else running;
- ``latency_under_big`` (F2): one-piece jobs of org ``small`` while org ``big``'s big job runs;
- ``throughput`` (F3): one job alone, pieces/s submit → result;
- ``shares`` (F4): equal big jobs of several orgs submitted together, each one's
  ``pieces_done`` sampled when the first is half done.

Every job is ``bench@1.0.0`` (replicas → ``bench_spin`` → sum), its result checked (= N).
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from benchmarks.tasks import TEMPLATE
from runner import Client
from runner.params import piece_kind

__all__ = ["PIECE_S", "Orgs", "percentile", "warm_up", "latency_idle", "latency_under_big", "throughput", "shares"]

PIECE_S = 80e-6  # every measured piece spins this long (bench_speed's P1 pieces)
TIMEOUT = 900.0  # seconds any one job may take before the benchmark gives up
SAMPLE_S = 0.02  # how often F4 reads the jobs' progress


class Orgs:
    """One client per org, all on the same Redis (the org is a client setting)."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self._clients: dict[str, Client] = {}

    def __call__(self, org: str) -> Client:
        if org not in self._clients:
            self._clients[org] = Client(settings=self.settings.model_copy(update={"org": org}))
        return self._clients[org]

    def close(self) -> None:
        for client in self._clients.values():
            client.store.close()


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _submit(client: Client, pieces: int) -> Any:
    return client.submit(TEMPLATE, params={"partitioner": {"count": pieces}, "app": {"seconds": PIECE_S}})


def _check(job: Any, pieces: int) -> None:
    if (got := job.wait(timeout=TIMEOUT)) != pieces:
        raise AssertionError(f"job {job.id}: result {got!r}, expected {pieces}")


def _one_piece(client: Client) -> float:
    """Submit → result of a one-piece job, seconds."""
    start = time.perf_counter()
    _check(_submit(client, 1), 1)
    return time.perf_counter() - start


def _ms(latencies: list[float]) -> dict[str, Any]:
    return {"count": len(latencies), "p50_ms": round(statistics.median(latencies) * 1000, 2) if latencies else None,
            "p99_ms": round(percentile(latencies, 99) * 1000, 2) if latencies else None}


def warm_up(client: Client, pieces: int) -> dict[str, Any]:
    """One job of the measured kind (80 µs pieces), so its piece time is known to the fleet
    before anything is measured: batch sizes (with fair share, the size of every batch
    handed out) depend on it. Returns the piece time the store then holds."""
    start = time.perf_counter()
    _check(_submit(client, pieces), pieces)
    seconds = time.perf_counter() - start
    kind = piece_kind(TEMPLATE, {"seconds": PIECE_S})
    deadline = time.monotonic() + 10
    known = client.store.fleet.piece_seconds(kind)
    while known is None and time.monotonic() < deadline:  # noted after the assembly: a moment later
        time.sleep(0.01)
        known = client.store.fleet.piece_seconds(kind)
    return {"pieces": pieces, "seconds": round(seconds, 3),
            "piece_time_known_us": round(known * 1e6, 1) if known is not None else None}


def latency_idle(orgs: Orgs, rounds: int) -> dict[str, Any]:
    """F1: ``rounds`` one-piece jobs of org ``small``, one after another, on an idle fleet."""
    return _ms([_one_piece(orgs("small")) for _ in range(rounds)])


def _wait_started(job: Any) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        status = job.status()
        if status.pieces_done > 0 or status.is_final:
            return
        time.sleep(0.005)
    raise TimeoutError(f"job {job.id} did not start within {TIMEOUT:.0f} s")


def latency_under_big(orgs: Orgs, pieces: int, say: Callable[[str], None]) -> dict[str, Any]:
    """F2: org ``big`` submits a ``pieces``-piece job; once its first results are in, org
    ``small`` submits one-piece jobs one after another for as long as the big job runs.
    Every one-piece job *submitted* while the big job had not ended is measured (the last
    may end after it)."""
    start = time.perf_counter()
    big = _submit(orgs("big"), pieces)
    _wait_started(big)
    latencies: list[float] = []
    while not big.status().is_final:
        latencies.append(_one_piece(orgs("small")))
    _check(big, pieces)
    big_s = time.perf_counter() - start
    figures = _ms(latencies)
    say(f"    {figures['count']} one-piece jobs during the big job ({big_s:.2f} s): "
        f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms")
    return {**figures, "big_pieces": pieces, "big_seconds": round(big_s, 3),
            "max_ms": round(max(latencies) * 1000, 2) if latencies else None}


def throughput(orgs: Orgs, pieces: int) -> float:
    """F3: pieces/s of one job of ``pieces`` on its own, submit → result."""
    start = time.perf_counter()
    _check(_submit(orgs("big"), pieces), pieces)
    return pieces / (time.perf_counter() - start)


def shares(orgs: Orgs, count: int, pieces: int, say: Callable[[str], None]) -> dict[str, Any]:
    """F4: ``count`` orgs each submit a ``pieces``-piece job at the same moment (threads
    released together); when the first job has half its pieces done, every job's
    ``pieces_done`` is read. Each org's share is its pieces ÷ all done then."""
    names = [f"org{i + 1}" for i in range(count)]
    for name in names:
        orgs(name)  # clients made before the race
    gate = threading.Barrier(count)

    def submit(name: str) -> Any:
        gate.wait()
        return _submit(orgs(name), pieces)

    with ThreadPoolExecutor(count) as pool:
        jobs = list(pool.map(submit, names))
    deadline = time.monotonic() + TIMEOUT
    done = [0] * count
    while max(done) < pieces / 2:
        if time.monotonic() > deadline:
            raise TimeoutError(f"F4: no job half done within {TIMEOUT:.0f} s: {done}")
        time.sleep(SAMPLE_S)
        done = [job.status().pieces_done for job in jobs]
    for job in jobs:
        _check(job, pieces)
    total = sum(done) or 1
    ratio = min(done) / max(done)
    say(f"    {count} orgs at the first half-done job: pieces done {done}, min/max {ratio:.2f}")
    return {"orgs": names, "pieces_done": done, "shares": [round(d / total, 3) for d in done],
            "min_max": round(ratio, 3)}
