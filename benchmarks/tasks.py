"""The work every side of ``bench_speed.py`` (and ``bench_chord.py``) runs, imported by
the benchmark's worker and by the process pool's children.

The same busy loop runs as a Runner app (``bench@1.0.0``: replicas → bench_spin → sum),
as a plain Celery task per piece (``bench.spin``, joined by ``bench.total``), as a Celery
task per hand-made chunk of pieces (``bench.spin_many``) and as a ``multiprocessing``
pool function (``spin``), so the sides differ only in how the pieces reach the worker
processes and how results come back.
"""

from __future__ import annotations

import time

from celery import shared_task
from pydantic import BaseModel, Field

from runner import app, partitioner, template

__all__ = ["spin", "SpinParams", "bench_spin", "bench_stored", "celery_spin", "celery_spin_many", "celery_total", "TEMPLATE"]

TEMPLATE = "bench@1.0.0"


def spin(seconds: float) -> int:
    """Busy the CPU for ``seconds`` (a loop on ``time.perf_counter``, like real work); returns 1."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return 1


# -- Runner side ---------------------------------------------------------------------
class SpinParams(BaseModel):
    seconds: float = Field(0.0, ge=0, description="CPU seconds each piece spins for.")


@app("bench_spin", params=SpinParams)
def bench_spin(piece: int, ctx) -> int:
    return spin(ctx.params.seconds)


template("bench", "1.0.0", partitioner="replicas", app="bench_spin", assembler="sum",
         description="bench_speed.py: N pieces of busy work, results summed (= N)")


class StoredParams(BaseModel):
    count: int = Field(1, ge=0, description="How many pieces to yield.")


@partitioner("bench_stored", params=StoredParams)
def bench_stored(source, ctx):
    """Pieces yielded one by one (small dicts), so the store keeps each: P6's stored pieces."""
    for index in range(ctx.params.count):
        yield {"i": index}


template("bench-stored", "1.0.0", partitioner="bench_stored", app="bench_spin", assembler="json_list",
         description="bench_speed.py P6: stored pieces, every result kept and listed")


# -- plain Celery side ---------------------------------------------------------------
# shared_task: registered on whichever Celery app the worker finalizes (the worker's app
# is made current and default in workers.boot.create_app).
@shared_task(name="bench.spin")
def celery_spin(seconds: float) -> int:
    return spin(seconds)


@shared_task(name="bench.spin_many")
def celery_spin_many(seconds: float, count: int) -> int:
    """``count`` pieces in one task: Celery batched by hand (returns ``count``)."""
    return sum(spin(seconds) for _ in range(count))


@shared_task(name="bench.total")
def celery_total(results: list[int]) -> int:
    return sum(results)
