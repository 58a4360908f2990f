"""The fleet's backlog per queue, in pieces and in seconds of work: the autoscaling signal
(the ``runner_queue_*`` metrics, ``docs/autoscaling.md``).

A queue's length is the wrong signal for batched pieces: one message may carry a thousand
pieces or one, and a job's batches may all be sent at once or held back. So the backlog is
summed from the records of the jobs that are not final (the deadlines set), whatever the
broker holds. Per queue, over the non-final jobs whose app tasks go to it (attached jobs
are left out: a process outside the fleet does their work):

- a job's **remaining** pieces are ``pieces_total − pieces_done − pieces_failed``; a job
  whose pieces are not counted yet (``queued``, ``partitioning``) counts as **one**: its
  size is unknown until its partitioner ran, and one piece tells a scaler at zero that
  there is work;
- **waiting**: the remaining pieces of the queue's jobs, summed (pieces a process is
  working on are included: which ones are is not recorded, and they are work to do);
- **in flight**: the part of waiting that belongs to jobs already ``running`` (their
  batches are with the broker and the workers), so waiting − in flight is work whose
  jobs have not started;
- **work seconds**: each job's remaining pieces × how long a piece of its kind
  (:func:`runner.params.piece_kind`) took lately, as the workers note it to size batches;
  ``DEFAULT_PIECE_SECONDS`` when no time is known (a new template, or none for a day);
- **processes**: live worker processes serving the queue (their heartbeats);
- **backlog seconds**: work seconds ÷ processes — how long the queue needs to drain with
  the processes it has now; with none, the work seconds themselves (as if one process),
  so a scaler from zero still sees the demand.

Reading it costs a few round trips, whatever the number of jobs: the deadlines set, the
records' fields (pipelined, 1,000 a round trip), the piece times (one ``MGET``) and the
heartbeats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.attached_jobs import ATTACHED_TEMPLATE
from runner.models import JobState
from runner.params import piece_kind
from runner.store import StatusStore

__all__ = ["QueueBacklog", "DEFAULT_PIECE_SECONDS", "read_backlog", "backlog_seconds", "work_seconds",
           "remaining_pieces"]

DEFAULT_PIECE_SECONDS = 1.0  # the time of a piece of a kind no worker has timed lately
_FIELDS = ("queue", "template", "params", "pieces_total", "pieces_done", "pieces_failed")


@dataclass
class QueueBacklog:
    """One queue's backlog (see the module's docstring for each number's definition)."""

    queue: str
    waiting: int = 0
    in_flight: int = 0
    work_seconds: float = 0.0
    processes: int = 0

    @property
    def seconds(self) -> float:
        return backlog_seconds(self.work_seconds, self.processes)


def backlog_seconds(work_seconds: float, processes: int) -> float:
    """Seconds the queue needs to drain ``work_seconds`` of work with ``processes``
    processes; with none, as if one (a scaler from zero must see the demand)."""
    return work_seconds / max(1, processes)


def work_seconds(remaining: int, piece_seconds: float | None) -> float:
    """Seconds of work in ``remaining`` pieces of a kind whose piece took ``piece_seconds``
    lately; ``DEFAULT_PIECE_SECONDS`` each when no time is known."""
    return remaining * (piece_seconds if piece_seconds is not None else DEFAULT_PIECE_SECONDS)


def remaining_pieces(job: dict[str, Any]) -> int:
    """The pieces of a non-final job without a result yet; one for a job whose pieces are
    not counted yet (its size is unknown until partitioned)."""
    if job.get("pieces_total") is None:
        return 1
    done, failed = int(job.get("pieces_done") or 0), int(job.get("pieces_failed") or 0)
    return max(0, int(job["pieces_total"]) - done - failed)


def _open(state: str) -> bool:
    """Whether a job in ``state`` may still get work done: not a draft, not final (a job
    leaves the deadlines set just after its last transition)."""
    return state != JobState.DRAFT and not JobState(state).is_final


def read_backlog(store: StatusStore) -> list[QueueBacklog]:
    """Every queue's backlog: the queues live workers serve and those non-final jobs wait
    on (a queue no process serves shows its demand with ``processes`` 0), by name."""
    jobs = [job for job in store.jobs.unfinished(*_FIELDS)
            if job["template"] != ATTACHED_TEMPLATE and job["queue"] and _open(job["state"])]
    kinds = {job["id"]: piece_kind(job["template"], (job["params"] or {}).get("app")) for job in jobs}
    seconds = store.fleet.piece_seconds_each(sorted(set(kinds.values())))
    workers = store.fleet.live_workers().values()
    queues = {q for w in workers for q in w.queues} | {job["queue"] for job in jobs}
    backlog = {q: QueueBacklog(q, processes=sum(w.concurrency for w in workers if w.serves(q))) for q in queues}
    for job in jobs:
        entry, left = backlog[job["queue"]], remaining_pieces(job)
        entry.waiting += left
        if job["state"] == JobState.RUNNING:
            entry.in_flight += left
        entry.work_seconds += work_seconds(left, seconds[kinds[job["id"]]])
    return [backlog[q] for q in sorted(backlog)]
