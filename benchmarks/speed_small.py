"""``bench_speed.py``'s P5 and P7: many small jobs at once, Runner beside a plain Celery
chord — jobs/s, and what each job costs the Redis server in commands.

One measurement serves both goals: ``jobs`` three-piece no-work jobs per engine from
``threads`` client threads (each submits one job and waits for it). P5 (issue 13) asks
for Runner's jobs/s ≥ a chord's; P7 (issue 24, "small jobs at fleet scale") asks for
≥ 2× a chord's jobs/s, and for Runner's Redis commands per job (``INFO commandstats``
calls, a script's inner calls included, over the engine's run ÷ its jobs) to be half of
what issue 13's code paid. The delta includes the worker's own background commands
(heartbeats, sweeps) during the run, a few per second: small against thousands of jobs.
"""

from __future__ import annotations

from typing import Any, Callable

import redis

from benchmarks import speed_engines as eng

__all__ = ["BASE_COMMANDS_PER_JOB", "GOAL_VS_CHORD", "small_jobs_section"]

# Issue 13's per-job commands, the baseline P7 halves: main at bce70fa (after issue 13,
# before issue 23's fair share and org quotas and before issue 24), measured as here — 300
# three-piece no-work jobs from 50 client threads, INFO commandstats delta ÷ jobs — in
# four runs alternated with main's: 120.5, 121.5, 121.8, 121.8 (main at c99b64e: 202.5,
# 208.7, 199.0, 198.0); 2-core AMD EPYC VM, Python 3.11.7, load 3–7. See
# benchmarks/README.md, "P7: Redis commands per small job".
BASE_COMMANDS_PER_JOB = 121.4
GOAL_VS_CHORD = {"P5": 1.0, "P7": 2.0}


def redis_calls(url: str) -> int:
    """The server's total command count so far (``INFO commandstats``, every command)."""
    probe = redis.Redis.from_url(url)
    try:
        return sum(v["calls"] for v in probe.info("commandstats").values())
    finally:
        probe.close()


def _goal(gid: str, what: str, value: float, shown: str, target: str, ok: bool) -> dict[str, Any]:
    return {"goal": gid, "what": what, "value": value, "measured": shown, "target": target, "pass": bool(ok)}


def small_jobs_section(client: Any, celery: Any, url: str, jobs: int, threads: int, repeats: int,
                       say: Callable[[str], None]) -> dict[str, Any]:
    """Run both engines (Runner, chord, chord, Runner in halves when repeating, so drift
    hits both sides) and return the section with P5's and P7's goals."""
    first = jobs // 2
    plan = ([("runner", first), ("chord", first), ("chord", jobs - first), ("runner", jobs - first)]
            if repeats > 1 and first else [("runner", jobs), ("chord", jobs)])
    runs: dict[str, list[eng.Run]] = {"runner": [], "chord": []}
    commands = {"runner": 0, "chord": 0}
    for engine, count in plan:
        before = redis_calls(url)
        run = eng.small_jobs(engine, client, celery, count, threads)
        commands[engine] += redis_calls(url) - before
        runs[engine].append(run)
        say(f"  P5/P7 {engine:<7} {run.pieces:,} jobs {run.seconds:7.1f} s {run.rate:7.1f} jobs/s")
    rate = {e: sum(r.pieces for r in rs) / sum(r.seconds for r in rs) for e, rs in runs.items()}
    per_job = {e: commands[e] / sum(r.pieces for r in rs) for e, rs in runs.items()}
    ratio = rate["runner"] / rate["chord"]
    return {"jobs": jobs, "threads": threads,
            "engines": {e: {"jobs_per_s": round(rate[e], 1), "commands_per_job": round(per_job[e], 1),
                            "p50_ms": [r.detail["p50_ms"] for r in rs], "p99_ms": [r.detail["p99_ms"] for r in rs],
                            "runs_s": [round(r.seconds, 2) for r in rs]} for e, rs in runs.items()},
            "base_commands_per_job": BASE_COMMANDS_PER_JOB,
            "goals": [_goal(gid, f"3-piece jobs/s, Runner / chord{' (issue 13)' if gid == 'P5' else ''}", ratio,
                            f"{ratio:.2f}×", f"≥ {GOAL_VS_CHORD[gid]:g}×", ratio >= GOAL_VS_CHORD[gid])
                      for gid in ("P5", "P7")] + [_commands_goal(per_job["runner"], per_job["chord"])]}


def _commands_goal(runner: float, chord: float) -> dict[str, Any]:
    target = BASE_COMMANDS_PER_JOB / 2
    return _goal("P7", "Redis commands per small job (issue 13's ÷ 2)", runner,
                 f"{runner:.1f} (chord {chord:.1f})", f"≤ {target:.1f} (was {BASE_COMMANDS_PER_JOB:.1f})",
                 runner <= target)
