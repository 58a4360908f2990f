"""A process whose batch ends runs its job's next batch itself, under fair share.

Handing the next batch to Celery costs a turnaround between every two batches of a
process: the message is published, the worker's main process takes it, hands it to a
pool process, acknowledges it — 4 to 11 ms on the 2-core machine, a quarter of a tiny
job's run. So the process whose batch frees its slot asks, in the same ``TAKE`` that
frees it (``workers/share.py``), for the queue's next batch for itself, and runs it here
as the app task it would have been — its own task id, lease, events and hard limit
(``workers/inline.py``) — then the next, in a loop (``workers/tasks.py``), while:

- the fair order gives *this* job's batch (another job's goes to Celery as before: its
  spec, its cancel watch and its template are that task's, not this process's);
- no task waits on the control queue (a newly submitted job's partition must not wait
  behind a chain of batches), as the worker's main process last saw it
  (``workers/lookout.py``);
- the hard time limit of the Celery task this process runs still covers the whole next
  batch — every piece's soft limit and grace (:func:`workers.canvas.batch_time_limit`) —
  so a batch run here keeps every limit it would have had in its own message. The batch
  is cut to what fits when that loses it at most a quarter of its pieces; else it is sent.

Leases still protect it: the batch is leased when handed out and its lease is renewed
while it runs, so a process killed mid-batch has it re-sent by the sweep. A batch that
stopped early for a newcomer ends the chain (its rest is given back). With
``RUNNER_INLINE_STAGES=false`` nothing runs in a chain.
"""

from __future__ import annotations

from typing import Any

from workers import inline, lookout, runtime, stopper
from workers.canvas import HARD_LIMIT_GRACE

__all__ = ["fit", "LIMIT_MARGIN"]

LIMIT_MARGIN = 1.0  # seconds kept between a chained batch's hard limit and its Celery task's


def fit(outer: Any, spec: runtime.JobSpec) -> int:
    """Pieces of ``spec``'s job the next batch run here may carry — 0 when this process
    must not run one: inline stages off, its Celery task's hard limit (``outer``'s) too
    close, or a task waiting on the control queue (as the worker's main process last saw
    it, ``workers/lookout.py``)."""
    settings = runtime.settings()
    if not inline.serves(outer.app, spec.queue):
        return 0
    hard = (getattr(outer.request, "timelimit", None) or (None, None))[0]
    room = float("inf") if hard is None else hard - stopper.running_for() - LIMIT_MARGIN
    pieces = min(float(settings.max_batch), (room - HARD_LIMIT_GRACE) / (spec.task_timeout + HARD_LIMIT_GRACE))
    if pieces < 1 or lookout.newcomer_waits():
        return 0
    return int(pieces)
