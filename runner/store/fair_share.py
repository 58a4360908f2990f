"""Fair share: a job's batches held in the store and handed to its queue a few at a time.

Sending every batch of a job at partition time made the fleet one FIFO: a one-piece job
queued behind every batch of a big job sent before it. Instead the partition task
*holds* the job's piece ranges here and the fleet keeps only about as many batches in
flight per queue as it has processes to run them (``capacity``); each batch that
finishes frees its slot and *takes* the next ones, chosen by the fair order
(:mod:`runner.store.scripts.fair_share`: round-robin between jobs by the work each was
given, weighted between orgs and by priority), and cut to a size that finishes within
``RUNNER_FAIR_BATCH_SECONDS`` once the piece time is known. So a job that arrives later
starts within about one batch's time, whatever is queued.

An org's ``max_pieces_in_flight`` quota is enforced here too (an org at it is skipped
until its batches finish). Every batch handed out is leased in the same script, so work
a dying sender never sent comes back through the lease sweep (``workers/leases.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from runner.store.part import Part, queue_script
from runner.store.scripts.fair_share import FORGET, GIVE_BACK, HEAD_START, HOLD, TAKE, TAKE_WHOLE

__all__ = ["FairShare", "Handout", "Holding", "PROBE_PIECES", "DEFAULT_PIECE_SECONDS", "LEAST_BATCH_SECONDS"]

PROBE_PIECES = 4  # pieces per batch while a kind's piece time is unknown (its first batches tell it)
DEFAULT_PIECE_SECONDS = 0.01  # what an unknown piece costs, in the fair order
LEAST_BATCH_SECONDS = 0.01  # the least work a batch carries once piece time is known (a task's overhead)


class Handout(NamedTuple):
    """A batch handed to the fleet: pieces ``start``..``stop`` of ``job_id``'s round ``round``."""

    job_id: str
    round: int
    start: int
    stop: int
    deadline: float


class Holding(NamedTuple):
    """A job's round to hold: its piece ``ranges`` and what handing them out needs.
    ``lease`` is its batches' lease with ``@S@``/``@E@`` for a batch's start and stop."""

    job_id: str
    queue: str
    org: str
    priority: int
    round: int
    kind: str  # piece kind: where the handing out reads the piece time that sizes batches
    ranges: list[tuple[int, int]]
    deadline: float
    batch_size: int | None
    lease: str
    keep_seconds: float


def _handouts(rows: list[list[Any]]) -> list[Handout]:
    return [Handout(job, int(round_), int(start), int(stop), float(deadline)) for job, round_, start, stop, deadline in rows]


class FairShare(Part):
    """Holding, handing out and forgetting jobs' batches (see the module's docstring)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self._hold = self.redis.register_script(HOLD)
        self._take = self.redis.register_script(TAKE)
        self._forget = self.redis.register_script(FORGET)
        self._give_back = self.redis.register_script(GIVE_BACK)
        self._take_whole = self.redis.register_script(TAKE_WHOLE)

    def _keys(self, queue: str) -> list[str]:
        keys = self.keys
        return [keys.share_prefix(queue), keys.share_jobs_prefix(), keys.org_prefix(), keys.piece_seconds_prefix(),
                keys.leases_key(), keys.job_key("")]

    def hold(self, holding: Holding) -> bool:
        """Hold ``holding.ranges`` of the job's round for handing out. False when this
        round was held already (a partition or resume task run again)."""
        return bool(self._hold(keys=self._keys(holding.queue), args=self._hold_args(holding)))

    def hold_and_take(self, holding: Holding, capacity: int, processes: int, *, now: float, own: str | None,
                      batch_seconds: float, max_batch: int,
                      before: Callable[[Any], None] | None = None) -> list[Handout]:
        """:meth:`hold`, then :meth:`take` on its queue — and ``before(pipe)``'s writes
        (the job's log line) — in one round trip: a one-piece job's partition pays one."""
        with self.redis.pipeline(transaction=False) as pipe:
            if before is not None:
                before(pipe)
            keys = self._keys(holding.queue)
            queue_script(pipe, self._hold, keys, self._hold_args(holding))
            queue_script(pipe, self._take, keys,
                         self._take_args(now, capacity, processes, None, own, batch_seconds, max_batch))
            *_, rows = pipe.execute()
        return _handouts(rows)

    def take_whole(self, holding: Holding, processes: int, *, now: float, batch_seconds: float, max_batch: int,
                   begin: str | None = None) -> tuple[list[Handout], Any]:
        """Hand out a job of one range whole, unheld, when all its pieces fit the one batch
        its partition task would take for itself (``TAKE_WHOLE``). Empty when they do not
        (or its org lacks room): then :meth:`hold_and_take` it. A small job's fair share
        costs a few commands, not a hold, a take and a forget. ``begin``
        (``Journal.begin_args``): the caller runs the batch, which starts in the same call;
        then its start (``Journal.begun``) is returned second, else None."""
        with self.redis.pipeline(transaction=False) as pipe:
            taken = self.queue_take_whole(pipe, holding, processes, now=now, batch_seconds=batch_seconds,
                                          max_batch=max_batch, begin=begin)
            rows, = pipe.execute()
        return taken(rows)

    def queue_take_whole(self, pipe: Any, holding: Holding, processes: int, *, now: float, batch_seconds: float,
                         max_batch: int, begin: str | None = None) -> Callable[[Any], tuple[list[Handout], Any]]:
        """:meth:`take_whole` queued on ``pipe`` (the caller's round trip); returns what reads
        its reply. With ``begin``, only a running job is handed out (the move to ``running``
        may go before it in the same round trip)."""
        (first, stop), = holding.ranges
        args = [holding.job_id, holding.org, holding.round, holding.kind, holding.deadline, holding.batch_size or 0,
                holding.lease, first, stop, now, batch_seconds, max_batch, LEAST_BATCH_SECONDS, PROBE_PIECES,
                max(1, processes), DEFAULT_PIECE_SECONDS, begin or ""]
        queue_script(pipe, self._take_whole, self._keys(holding.queue), args)
        return lambda rows: (_handouts(rows[:1]), rows[1] if len(rows) > 1 else None)

    @staticmethod
    def _hold_args(h: Holding) -> list[Any]:
        flat = [str(bound) for pair in h.ranges for bound in pair]
        return [h.job_id, h.org, h.priority, h.round, h.kind, h.deadline, h.batch_size or 0, h.lease,
                max(60, int(h.keep_seconds)), HEAD_START, *flat]

    @staticmethod
    def _take_args(now: float, capacity: int, processes: int, freed: str | None, own: str | None,
                   batch_seconds: float, max_batch: int, fit: int = 0) -> list[Any]:
        return [now, capacity, freed or "", own or "", batch_seconds, max_batch, LEAST_BATCH_SECONDS, PROBE_PIECES,
                max(1, processes), DEFAULT_PIECE_SECONDS, max(0, fit)]

    def take(self, queue: str, capacity: int, processes: int, *, now: float, freed: str | None = None,
             own: str | None = None, batch_seconds: float, max_batch: int, fit: int = 0,
             drop_lease: str | None = None) -> list[Handout]:
        """Free the batch ``freed`` (its task id) and hand out the next batches of the queue
        while fewer than ``capacity`` are in flight — one of job ``own`` first, whatever
        the capacity. Sizes follow guided self-scheduling over ``processes``, within
        ``batch_seconds`` of work once the piece time is known; with ``fit``, the first
        batch is cut to ``fit`` pieces when that loses it at most a quarter of them (the
        caller runs it itself, in the time limit it has left). ``drop_lease``: the freed
        batch's lease, dropped in the same round trip."""
        args = self._take_args(now, capacity, processes, freed, own, batch_seconds, max_batch, fit)
        if drop_lease is None:
            return _handouts(self._take(keys=self._keys(queue), args=args))
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(self.keys.leases_key(), drop_lease)
            queue_script(pipe, self._take, self._keys(queue), args)
            _, rows = pipe.execute()
        return _handouts(rows)

    def give_back(self, queue: str, job_id: str, task_id: str, start: int, stop: int,
                  holding: Holding | None = None) -> bool:
        """Free batch ``task_id``'s slot and hold pieces ``start``..``stop`` of its job again
        (it stopped early for a newcomer); False when the job was forgotten (it ended). A job
        handed out whole (:meth:`take_whole`) is held then, by ``holding``'s facts."""
        args: list[Any] = [job_id, task_id, start, stop]
        if holding is not None:
            h = holding
            args += [h.org, h.priority, h.round, h.kind, h.deadline, h.batch_size or 0, h.lease,
                     max(60, int(h.keep_seconds))]
        return bool(self._give_back(keys=self._keys(queue), args=args))

    def forget(self, job_id: str, pipe: Any = None) -> bool:
        """Stop handing out the job's batches and free its slots (it ended); on ``pipe``,
        when given (the caller sends it; True then says nothing)."""
        if pipe is not None:
            queue_script(pipe, self._forget, self._keys(""), [job_id])
            return True
        return bool(self._forget(keys=self._keys(""), args=[job_id]))

    def in_flight(self, queue: str) -> dict[str, int]:
        """Batches in flight on ``queue``, by job (tests and metrics look under the hood here)."""
        counts: dict[str, int] = {}
        for value in self.redis.hvals(self.keys.share_inflight_key(queue)):
            job = value.split(" ", 1)[0]
            counts[job] = counts.get(job, 0) + 1
        return counts

    def org_in_flight(self, org: str) -> int:
        """Pieces of ``org``'s batches in flight, fleet-wide (its ``max_pieces_in_flight``)."""
        return int(self.redis.get(self.keys.org_in_flight_key(org)) or 0)
