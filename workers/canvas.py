"""The job's Celery canvas: ``group(app batches)``, and how pieces are batched into app
tasks. The assembly is not a chord body: the batch that records the job's last piece
sends it (``workers/tasks.py``). A chord would tie the join to Celery's result backend and
to the original task ids — a batch re-run elsewhere after its worker died could never
complete it — and cost a result-backend round trip per task.

Batching is the main lever on speed: a Celery task costs a few milliseconds of broker
and result-backend round trips, so tiny pieces ride several to a task. Batch sizes follow
*guided self-scheduling*: each batch takes ``remaining / (2 × workers)`` pieces, so the
first batches are large (few messages) and the last ones single pieces (no worker idles
while another finishes a long tail). It needs no estimate of how long a piece takes.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from celery import group, signature
from celery.canvas import Signature

from runner.dispatch import APP
from workers.runtime import JobSpec

__all__ = ["plan_batches", "job_canvas", "batch_task_id", "batch_time_limit"]


def plan_batches(total: int, workers: int, max_batch: int, batch_size: int | None = None,
                 piece_seconds: float | None = None) -> list[tuple[int, int]]:
    """``(start, stop)`` piece ranges covering ``range(total)``, in order.

    A fixed ``batch_size`` (from the template) wins; otherwise guided self-scheduling
    over ``workers`` parallel processes, capped at ``max_batch`` pieces per task. When
    ``piece_seconds`` (how long one of the template's pieces took lately) is known, no
    batch is smaller than ``MIN_BATCH_SECONDS`` of work: a task costs about a millisecond
    of broker round trips, so a tail of single tiny pieces would cost more than it
    balances — and a job whose pieces are that cheap runs as one batch.
    """
    floor = 1
    if piece_seconds is not None and piece_seconds > 0:
        floor = max(1, min(max_batch, round(MIN_BATCH_SECONDS / piece_seconds)))
    batches: list[tuple[int, int]] = []
    start = 0
    while start < total:
        remaining = total - start
        size = batch_size or max(floor, math.ceil(remaining / (2 * max(1, workers))))
        size = max(1, min(size, max_batch, remaining))
        batches.append((start, start + size))
        start += size
    return batches


MIN_BATCH_SECONDS = 0.01  # the least work an app task carries, once a template's piece time is known
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
