"""The four engines ``bench_speed.py`` compares, each running the same job — N pieces of
``benchmarks.tasks.spin``, results summed (= N) — and timed from the client:

- ``runner_job``: Runner through its public API, one piece per app call
  (``client.submit("bench@1.0.0", …)`` → ``job.wait()``), with the job's phases read
  from its state-change events afterwards;
- ``chord_job``: a plain Celery chord, one task per piece (``bench.spin`` × N →
  ``bench.total``);
- ``chunked_job``: Celery batched by hand, a chord of ``bench.spin_many`` tasks of
  ``CHUNK`` pieces each;
- ``task_job`` (P3 only): one bare Celery task with its result, the hop a Runner job
  pays once and a chord twice;
- ``pool_job``: a ``multiprocessing`` pool of 2 processes, ``pool.map(spin, …,
  chunksize=CHUNK)``.

Plus the measuring aids: the client's RSS sampled while it waits (``RssSampler``) and
Redis ``INFO memory`` (``redis_memory``). Each function returns a :class:`Run`.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import chord, group

from benchmarks.tasks import TEMPLATE, spin
from runner import Client, JobCancelled, JobFailed, JobTimedOut

__all__ = ["Run", "CHUNK", "runner_job", "runner_big_job", "chord_job", "task_job", "chunked_job", "pool_job", "small_jobs",
           "RssSampler", "redis_memory", "PHASES"]

CHUNK = 100  # pieces per hand-made Celery task and per pool chunk
TIMEOUT = 900.0  # seconds any single measured job may take before the benchmark gives up

# Runner's phases, from the job's state-change events (stream ids carry Redis' ms clock).
PHASES = [
    ("submit→queued", "submit: validate, write the record, send the partition task"),
    ("queued→partitioning", "the partition task reaches a worker"),
    ("partitioning→running", "partitioner: store the pieces, plan the batches"),
    ("running→assembling", "app batches: fan-out, run, record results"),
    ("assembling→completed", "assemble: read the results, sum, store the output"),
    ("completed→returned", "the client's wait() sees it"),
]
_STATES = ("queued", "partitioning", "running", "assembling", "completed")


@dataclass
class Run:
    engine: str  # "runner" | "pool" | "chunked" | "chord"
    seconds: float
    pieces: int
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.pieces / self.seconds


def _stream_s(event_id: str) -> float:
    """A Redis stream id ``<ms>-<seq>`` as seconds since the epoch (Redis' clock)."""
    return int(event_id.split("-", 1)[0]) / 1000.0


def runner_phases(job: Any, submitted: float, returned: float) -> dict[str, Any]:
    """Where a finished job's time went, from its state events (wall-clock seconds).

    The events stream keeps its last ``EVENTS_MAXLEN`` entries, so a job of many batches
    loses its first state events; then the record's ``queued_at`` / ``started_at`` /
    ``finished_at`` stand in, and a phase spans the states whose marks are gone (e.g.
    ``partitioning→assembling``)."""
    marks: dict[str, float] = {}
    flushes = 0
    for event_id, fields in _all_events(job):
        if fields.get("type") == "state":
            marks.setdefault(fields["state"], _stream_s(event_id))
        elif fields.get("type") == "progress":
            flushes += 1
    status = job.status()
    trimmed = "queued" not in marks
    stand_ins = {"queued": status.queued_at, "partitioning": status.started_at,
                 "completed": status.finished_at if status.state.value == "completed" else None}
    for state, at in stand_ins.items():
        if state not in marks and at is not None:
            marks[state] = at.timestamp()
    order = [("submit", submitted), *((s, marks[s]) for s in _STATES if s in marks), ("returned", returned)]
    phases = {f"{a}→{b}": round(max(0.0, tb - ta), 4)  # stream ids are whole ms: clamp the rounding
              for (a, ta), (b, tb) in zip(order, order[1:])}
    return {"job": job.id, "batches_total": status.batches_total, "result_flushes": flushes, "phases_s": phases,
            "events_trimmed": trimmed}


def _all_events(job: Any) -> list[tuple[str, dict[str, str]]]:
    """Every event the stream still holds: ``Job.events`` returns at most 1,000 a call."""
    events: list[tuple[str, dict[str, str]]] = []
    while page := job.events(events[-1][0] if events else "0-0"):
        events += page
    return events


def runner_job(client: Client, pieces: int, seconds: float, phases: bool = True) -> Run:
    """One Runner job of ``pieces`` spins, as a user writes it; timed submit → result."""
    params = {"partitioner": {"count": pieces}, "app": {"seconds": seconds}}
    t0 = time.time()
    start = time.perf_counter()
    job = client.submit(TEMPLATE, params=params)
    result = job.wait(timeout=TIMEOUT)
    elapsed = time.perf_counter() - start
    t1 = time.time()
    if result != pieces:
        raise AssertionError(f"Runner job {job.id}: result {result!r}, expected {pieces}")
    return Run("runner", elapsed, pieces, runner_phases(job, t0, t1) if phases else {"job": job.id})


def chord_job(celery_app: Any, pieces: int, seconds: float) -> Run:
    """The job as a plain chord, one Celery task per piece.

    ``get(follow_parents=False)``: Celery's default re-checks every header result on each
    message, O(N²) client CPU (see README); a failed header still fails the body.
    """
    start = time.perf_counter()
    header = group(celery_app.signature("bench.spin", args=(seconds,)) for _ in range(pieces))
    return _chord_wait(celery_app, "chord", header, pieces, start)


def task_job(celery_app: Any, pieces: int, seconds: float) -> Run:
    """One bare Celery task (``bench.spin``), its result read from the backend: the one
    broker hop every Runner job pays (its partition task) with nothing of Runner's
    around it — the floor under P3 (a chord pays two such hops)."""
    if pieces != 1:
        raise ValueError(f"a bare task runs one piece, not {pieces}")
    start = time.perf_counter()
    result = celery_app.send_task("bench.spin", args=(seconds,))
    value = result.get(timeout=TIMEOUT)
    elapsed = time.perf_counter() - start
    if value != 1:
        raise AssertionError(f"Celery task {result.id}: result {value!r}, expected 1")
    with contextlib.suppress(Exception):
        result.forget()
    return Run("task", elapsed, 1)


def chunked_job(celery_app: Any, pieces: int, seconds: float) -> Run:
    """The job as Celery batched by hand: a chord of tasks of ``CHUNK`` pieces each."""
    start = time.perf_counter()
    sizes = [min(CHUNK, pieces - first) for first in range(0, pieces, CHUNK)]
    header = group(celery_app.signature("bench.spin_many", args=(seconds, size)) for size in sizes)
    return _chord_wait(celery_app, "chunked", header, pieces, start)


def _chord_wait(celery_app: Any, engine: str, header: Any, pieces: int, start: float) -> Run:
    result = chord(header, celery_app.signature("bench.total")).apply_async()
    total = result.get(timeout=TIMEOUT, follow_parents=False)
    elapsed = time.perf_counter() - start
    if total != pieces:
        raise AssertionError(f"Celery {engine} {result.id}: result {total!r}, expected {pieces}")
    with contextlib.suppress(Exception):
        result.forget()
    return Run(engine, elapsed, pieces)


def pool_job(pool: Any, pieces: int, seconds: float) -> Run:
    """The job on a ``multiprocessing`` pool, ``CHUNK`` pieces per hand-off."""
    start = time.perf_counter()
    total = sum(pool.map(spin, [seconds] * pieces, chunksize=CHUNK))
    elapsed = time.perf_counter() - start
    if total != pieces:
        raise AssertionError(f"pool: result {total!r}, expected {pieces}")
    return Run("pool", elapsed, pieces)


def small_jobs(engine: str, client: Client, celery_app: Any, jobs: int, threads: int) -> Run:
    """``jobs`` three-piece jobs (no work per piece) from ``threads`` client threads, each
    submitting one job and waiting for its result; ``pieces`` counts jobs here."""

    def runner_one(_: int) -> float:
        began = time.perf_counter()
        job = client.submit(TEMPLATE, params={"partitioner": {"count": 3}, "app": {"seconds": 0.0}})
        if (got := job.wait(timeout=TIMEOUT)) != 3:
            raise AssertionError(f"Runner job {job.id}: result {got!r}, expected 3")
        return time.perf_counter() - began

    def chord_one(_: int) -> float:
        began = time.perf_counter()
        header = group(celery_app.signature("bench.spin", args=(0.0,)) for _ in range(3))
        result = chord(header)(celery_app.signature("bench.total"))
        if (got := result.get(timeout=TIMEOUT, follow_parents=False)) != 3:
            raise AssertionError(f"chord {result.id}: result {got!r}, expected 3")
        return time.perf_counter() - began

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as executor:
        latencies = sorted(executor.map(runner_one if engine == "runner" else chord_one, range(jobs)))
    elapsed = time.perf_counter() - start
    return Run(engine, elapsed, jobs, {"p50_ms": round(statistics.median(latencies) * 1000, 1),
                                        "p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000, 1)})


class RssSampler:
    """This process's resident set size, sampled every ``interval`` seconds in a thread."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as statm:  # Linux: pages; the second field is resident
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(self.rss())

    def summary(self) -> dict[str, Any]:
        mb = 1024 * 1024
        first, peak = self.samples[0], max(self.samples)
        return {"samples": len(self.samples), "start_mb": round(first / mb, 1), "max_mb": round(peak / mb, 1),
                "end_mb": round(self.samples[-1] / mb, 1), "growth_mb": round((peak - first) / mb, 1)}


def redis_memory(url: str) -> dict[str, int]:
    """Redis ``INFO memory``: bytes in use now and the peak since the server started."""
    conn = redis.Redis.from_url(url)
    try:
        info = conn.info("memory")
    finally:
        conn.close()
    return {"used_memory": int(info["used_memory"]), "used_memory_peak": int(info["used_memory_peak"])}


def runner_big_job(client: Client, url: str, pieces: int, job_timeout: float) -> Run:
    """P4: one job of ``pieces`` no-work pieces under a job timeout, with Redis' memory
    before/after and the client's RSS sampled while it waits. A job that times out (or
    fails) is reported with how far it got, then cancelled, instead of hanging the run."""
    before = redis_memory(url)
    params = {"partitioner": {"count": pieces}, "app": {"seconds": 0.0}}
    t0 = time.time()
    start = time.perf_counter()
    job = client.submit(TEMPLATE, params=params, job_timeout=job_timeout)
    outcome, result = "completed", None
    with RssSampler() as rss:
        try:
            result = job.wait(timeout=job_timeout + 60)
        except (JobTimedOut, JobFailed, JobCancelled, TimeoutError) as exc:
            outcome = f"{type(exc).__name__}: {str(exc)[:200]}"
    elapsed = time.perf_counter() - start
    t1 = time.time()
    after = redis_memory(url)
    status = job.status()
    if not status.is_final:
        job.cancel()
    if outcome == "completed" and result != pieces:
        outcome = f"wrong result {result!r}, expected {pieces}"
    detail = runner_phases(job, t0, t1)
    detail.update({
        "outcome": outcome, "completed": outcome == "completed", "state": status.state.value,
        "pieces_done": status.pieces_done, "job_timeout_s": job_timeout,
        "redis_before": before, "redis_after": after,
        # growth of the peak over what was in use before: an upper bound on what the job
        # needed (the peak before may be an earlier case's)
        "redis_peak_growth_mb": round((after["used_memory_peak"] - before["used_memory"]) / 2**20, 1),
        "client_rss": rss.summary(),
    })
    return Run("runner", elapsed, pieces, detail)


def redis_cost(client: Client, url: str, template: str, params: dict[str, Any], pieces: int) -> dict[str, Any]:
    """P6: what one job of ``pieces`` costs the Redis server — its CPU (``INFO cpu``) and
    the commands it ran (``INFO commandstats``, scripts' inner calls included) — per piece,
    and the ceiling that puts on one Redis core (1 s ÷ CPU per piece)."""
    probe = redis.Redis.from_url(url)

    def sample() -> tuple[float, dict[str, Any]]:
        cpu, stats = probe.info("cpu"), probe.info("commandstats")
        return cpu["used_cpu_user"] + cpu["used_cpu_sys"], stats

    cpu0, stats0 = sample()
    start = time.perf_counter()
    result = client.submit(template, params=params).wait(timeout=900)
    elapsed = time.perf_counter() - start
    cpu1, stats1 = sample()
    probe.close()
    per_piece = (cpu1 - cpu0) / pieces
    calls = sum(v["calls"] for v in stats1.values()) - sum(v["calls"] for v in stats0.values())
    return {"pieces": pieces, "ok": result == pieces or (isinstance(result, list) and len(result) == pieces),
            "seconds": round(elapsed, 3), "pieces_per_s": round(pieces / elapsed, 1),
            "cpu_us_per_piece": round(per_piece * 1e6, 3), "commands_per_piece": round(calls / pieces, 4),
            "ceiling_pieces_per_s": round(1 / per_piece) if per_piece > 0 else None,
            "by_command": command_costs(stats0, stats1, pieces)}


def command_costs(before: dict[str, Any], after: dict[str, Any], pieces: int, top: int = 10) -> dict[str, Any]:
    """Where P6's Redis time went: per command (``INFO commandstats``' ``usec``, a script's
    inner calls counted under both the script and the call), µs and calls per piece, the
    costliest first. The usec figures are command execution only: ``INFO cpu`` also counts
    parsing, networking and the event loop, so they add up to less than the CPU per piece."""
    rows = []
    for name, stat in after.items():
        was = before.get(name, {"calls": 0, "usec": 0})
        calls, usec = stat["calls"] - was["calls"], stat["usec"] - was["usec"]
        if calls:
            rows.append((usec, name.removeprefix("cmdstat_"), calls))
    rows.sort(reverse=True)
    return {name: {"us_per_piece": round(usec / pieces, 4), "calls_per_piece": round(calls / pieces, 5)}
            for usec, name, calls in rows[:top]}
