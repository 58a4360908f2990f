"""The job's Celery canvas: ``chord(group(app batches), assemble)``, and how pieces are
batched into app tasks.

Batching is the main lever on speed: a Celery task costs a few milliseconds of broker
and result-backend round trips, so tiny pieces ride several to a task. Batch sizes follow
*guided self-scheduling*: each batch takes ``remaining / (2 × workers)`` pieces, so the
first batches are large (few messages) and the last ones single pieces (no worker idles
while another finishes a long tail). It needs no estimate of how long a piece takes.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from celery import chord, group, signature
from celery.canvas import Signature

from runner.dispatch import APP, ASSEMBLE

__all__ = ["plan_batches", "job_canvas"]


def plan_batches(total: int, workers: int, max_batch: int, batch_size: int | None = None) -> list[tuple[int, int]]:
    """``(start, stop)`` piece ranges covering ``range(total)``, in order.

    A fixed ``batch_size`` (from the template) wins; otherwise guided self-scheduling
    over ``workers`` parallel processes, capped at ``max_batch`` pieces per task.
    """
    batches: list[tuple[int, int]] = []
    start = 0
    while start < total:
        remaining = total - start
        size = batch_size or math.ceil(remaining / (2 * max(1, workers)))
        size = max(1, min(size, max_batch, remaining))
        batches.append((start, start + size))
        start += size
    return batches


HARD_LIMIT_GRACE = 10.0  # seconds between a batch's soft limits and the hard kill


def job_canvas(
    job_id: str, template: str, batches: list[tuple[int, int]], queue: str, deadline: float, task_timeout: float
) -> Signature:
    """The job's fan-out and join, read top to bottom.

    Every task carries the job's deadline as its expiry, so nothing of the job starts
    after it. Arguments are positional and short — job id, template, piece range — so
    Flower shows them legibly. The assemble task is immutable (``si``): results travel
    through the status store, never through the chord, so the body's message stays small
    however many pieces the job has.
    """
    expires = datetime.fromtimestamp(deadline, tz=timezone.utc)
    apps = group(
        signature(APP, args=(job_id, template, start, stop)).set(
            queue=queue, expires=expires, time_limit=task_timeout * (stop - start) + HARD_LIMIT_GRACE
        )
        for start, stop in batches
    )
    assemble = signature(ASSEMBLE, args=(job_id, template), immutable=True).set(expires=expires)
    return chord(apps, assemble)
