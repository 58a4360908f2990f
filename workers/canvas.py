"""The job's Celery canvas: ``group(app batches)`` over the batches ``workers/batching.py``
planned, each with a task id known in advance and a hard time limit. The assembly is not
a chord body: the batch that records the job's last piece starts it (``workers/tasks.py``).
A chord would tie the join to Celery's result backend and to the original task ids — a
batch re-run elsewhere after its worker died could never complete it — and cost a
result-backend round trip per task.
"""

from __future__ import annotations

from datetime import datetime, timezone

from celery import group, signature
from celery.canvas import Signature

from runner.dispatch import APP
from workers.runtime import JobSpec

__all__ = ["job_canvas", "batch_task_id", "batch_time_limit", "HARD_LIMIT_GRACE"]

HARD_LIMIT_GRACE = 10.0  # seconds past a piece's soft limit before it is stopped hard


def batch_time_limit(spec: JobSpec, start: int, stop: int) -> float:
    """A batch's hard limit: every piece's soft limit and grace, plus a grace of its own."""
    return (spec.task_timeout + HARD_LIMIT_GRACE) * (stop - start) + HARD_LIMIT_GRACE


def batch_task_id(job_id: str, round_: int, start: int) -> str:
    """A batch's Celery task id, known in advance so cancel can revoke it."""
    return f"{job_id}-{round_}-{start}"


def job_canvas(
    spec: JobSpec, batches: list[tuple[int, int]], deadline: float, round_: int = 0
) -> tuple[Signature, list[str]]:
    """The job's fan-out; also returns every task id in it.

    Every task carries the job's deadline as its expiry, so nothing of the job starts
    after it. Arguments are positional and short — job id, template, piece range — so
    Flower shows them legibly. A batch's Celery hard limit is a backstop for code stuck
    where the per-piece limits (``workers/limits.py``) cannot reach it.
    """
    job_id, template = spec.job_id, spec.template.ref
    expires = datetime.fromtimestamp(deadline, tz=timezone.utc)
    apps = [
        signature(APP, args=(job_id, template, start, stop)).set(
            queue=spec.queue, expires=expires, task_id=batch_task_id(job_id, round_, start), ignore_result=True,
            time_limit=batch_time_limit(spec, start, stop),
        )
        for start, stop in batches
    ]
    return group(apps), [sig.id for sig in apps]
