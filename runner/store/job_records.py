"""Job records in the store: creating a record, reading it, changing its fields and its
state (through the one transition script), the org's index of its jobs, and the
deadlines the watchdog reads.

Every value of a record is JSON (``encode``); a state change goes only through
:meth:`JobRecords.transition`, which checks the state machine's table atomically.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import redis

from runner.errors import IllegalTransition, JobNotFound
from runner.models import JobState, JobStatus, allowed_sources
from runner.store.journal import EVENTS_MAXLEN, Journal
from runner.store.keyspace import Keys
from runner.store.part import Part, encode, queue_script, status_of
from runner.store.scripts import SEND_IF_ADMITTED, TRANSITION

__all__ = ["JobRecords", "NewJob"]

_SCAN_CHUNK = 1000


@dataclass
class NewJob:
    """One new job's record and what :meth:`JobRecords.create` writes with it."""

    record: dict[str, Any]
    expire_seconds: float
    deadline: float | None = None
    tasks: list[str] | None = None
    logs: list[dict[str, Any]] | None = None
    then: Callable[[Any], None] | None = None
    send: list[tuple[str, tuple[Any, ...]]] | None = None  # the partition task's broker commands, if sent here


class JobRecords(Part):
    """Create, read, update and move job records; index them by org and deadline."""

    def __init__(self, redis_client: redis.Redis, keys: Keys, journal: Journal) -> None:
        super().__init__(redis_client, keys)
        self.journal = journal
        self._transition = self.redis.register_script(TRANSITION)

    def create(self, record: dict[str, Any], expire_seconds: float, deadline: float | None = None,
               tasks: list[str] | None = None, logs: list[dict[str, Any]] | None = None,
               then: Callable[[Any], None] | None = None,
               send: list[tuple[str, tuple[Any, ...]]] | None = None) -> Any:
        """Write a new job record (state ``draft`` or ``queued``) and index it by org; for a
        queued job also its deadline, its first task's id and its first log lines — one
        round trip, before the task is sent. ``then`` adds a last command to the same
        transaction (the org's queued-jobs quota, which may undo the rest); its reply is
        returned. ``send``: the broker's commands that send the job's partition task
        (``dispatch.partition_commands_many``; the broker must be this Redis), run after
        ``then`` in the same transaction if the job is still there."""
        return self.create_many([NewJob(record, expire_seconds, deadline, tasks, logs, then, send)])[0]

    def create_many(self, jobs: list["NewJob"]) -> list[Any]:
        """:meth:`create` of many jobs in one transaction (a scheduler sweep's firings):
        one round trip however many; each job's ``then`` reply (``None`` without one), in order."""
        ends: list[int | None] = []
        with self.redis.pipeline() as pipe:
            for job in jobs:
                self._create_in(pipe, job)
                ends.append(len(pipe) - (2 if job.send else 1) if job.then is not None else None)
            replies = pipe.execute()
        return [replies[end] if end is not None else None for end in ends]

    def _create_in(self, pipe: Any, job: "NewJob") -> None:
        record, keys = job.record, self.keys
        job_id, ttl = record["id"], int(job.expire_seconds) + 1
        # keys_tracked: the record names the optional keys the job makes (the final move expires those)
        pipe.hset(keys.job_key(job_id), mapping={**{k: encode(v) for k, v in record.items()}, "keys_tracked": 1})
        pipe.expire(keys.job_key(job_id), ttl)
        pipe.zadd(keys.org_jobs_key(record["org"]), {job_id: record["created_at"]})
        pipe.xadd(keys.events_key(job_id), {"type": "state", "state": record["state"]}, maxlen=EVENTS_MAXLEN)
        pipe.expire(keys.events_key(job_id), ttl)
        if job.deadline is not None:
            pipe.zadd(keys.deadlines_key(), {job_id: job.deadline})
        if job.tasks:
            pipe.sadd(keys.tasks_key(job_id), *job.tasks)
            pipe.expire(keys.tasks_key(job_id), ttl)
        if job.logs:
            self.journal.xadd_logs(pipe, job_id, job.logs)
            pipe.expire(keys.logs_key(job_id), ttl)
        if job.then is not None:
            job.then(pipe)
        if job.send:
            self._send_in(pipe, keys.job_key(job_id), job.send)

    @staticmethod
    def _send_in(pipe: Any, job_key: str, commands: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Queue ``SEND_IF_ADMITTED`` on ``pipe``: the ``lpush`` and ``publish`` commands."""
        lists = [args for name, args in commands if name == "lpush"]
        published = [value for name, args in commands if name == "publish" for value in args]
        pipe.eval(SEND_IF_ADMITTED, 1 + len(lists), job_key, *(key for key, _ in lists),
                  *(message for _, message in lists), *published)

    def get(self, job_id: str, org: str | None = None) -> JobStatus:
        """The job's record; raises :class:`JobNotFound` if absent or owned by another org."""
        return status_of(job_id, self.redis.hgetall(self.keys.job_key(job_id)), org)

    def snapshot(self, job_id: str, org: str | None = None) -> tuple[JobStatus, str]:
        """The job's record and the id of its newest event, read in one transaction:
        waiting for events after that id misses none that follow the record."""
        with self.redis.pipeline() as pipe:
            pipe.hgetall(self.keys.job_key(job_id))
            pipe.xrevrange(self.keys.events_key(job_id), "+", "-", count=1)
            raw, newest = pipe.execute()
        return status_of(job_id, raw, org), (newest[0][0] if newest else "0-0")

    def outcome(self, job_id: str, org: str | None = None) -> tuple[JobStatus, Any, str]:
        """The job's record, its assembled result (decoded; ``None`` before it is stored)
        and the id of its newest ending, in one transaction: what a waiting client reads
        once before it blocks (:meth:`wait_ending` after that id) and once when it wakes.

        No transaction (its ``MULTI``/``EXEC`` were a third of a small job's client
        commands): the newest ending is read first, so an ending after it is one the record
        read next may not show yet — the wait catches it — and a final record shows a result
        stored before its move."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.xrevrange(self.keys.ending_key(job_id), "+", "-", count=1)
            pipe.hgetall(self.keys.job_key(job_id))
            pipe.get(self.keys.result_key(job_id))
            newest, raw, result = pipe.execute()
        return (status_of(job_id, raw, org), json.loads(result) if result is not None else None,
                newest[0][0] if newest else "0-0")

    def wait_ending(self, job_id: str, after: str, block_ms: int) -> dict[str, str] | None:
        """Block until the job moves into a final state after the ending ``after`` (one
        read, woken by that move itself, not by every event), at most ``block_ms``.
        Returns that ending — ``state``, and a completion's ``result`` (JSON) when small —
        or None."""
        answer = self.redis.xread({self.keys.ending_key(job_id): after}, block=block_ms, count=1)
        return next((fields for _, entries in answer for _, fields in entries), None)

    def fields(self, job_id: str, *names: str, before: Callable[[Any], None] | None = None) -> dict[str, Any]:
        """A few fields of the record, decoded (missing ones are ``None``); after
        ``before(pipe)``'s writes (a task's lease), in the same round trip, when given."""
        if before is None:
            values = self.redis.hmget(self.keys.job_key(job_id), names)
        else:
            with self.redis.pipeline(transaction=False) as pipe:
                before(pipe)
                pipe.hmget(self.keys.job_key(job_id), names)
                values = pipe.execute()[-1]
        return {name: (json.loads(v) if v is not None else None) for name, v in zip(names, values)}

    def fields_each(self, job_ids: list[str], *names: str) -> list[dict[str, Any]]:
        """``names`` of each job's record, decoded (missing ones ``None``), in one round
        trip for a whole page of jobs."""
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(self.keys.job_key(job_id), list(names))
            rows = pipe.execute()
        return [{name: (json.loads(raw) if raw is not None else None) for name, raw in zip(names, row)}
                for row in rows]

    def update(self, job_id: str, **fields: Any) -> None:
        """Set record fields that are not the state (use :meth:`transition` for that)."""
        if "state" in fields:
            raise ValueError("state changes go through transition()")
        self.redis.hset(self.keys.job_key(job_id), mapping={k: encode(v) for k, v in fields.items()})

    def transition(self, job_id: str, target: JobState, *, strict: bool = True,
                   expect: Iterable[JobState] | None = None, keep_seconds: float | None = None,
                   log_line: dict[str, Any] | None = None, **fields: Any) -> bool:
        """Move the job to ``target`` if the state machine allows it from its current state
        (and that state is one of ``expect``, when given); with ``keep_seconds``, every key
        of the job then lives that long (a final state's retention starts with it).

        Atomic: of two racing writers only one wins, and only the winner's ``log_line``
        (an ending's lifecycle line) is logged, with the move. Returns whether it moved;
        with ``strict`` an illegal move raises :class:`IllegalTransition` instead.
        """
        keys, args = self._transition_call(job_id, target, expect, keep_seconds, fields, log_line)
        return self._moved(job_id, target, strict, self._transition(keys=keys, args=args))

    def queue_transition(self, pipe: Any, job_id: str, target: JobState, *, strict: bool = True,
                         expect: Iterable[JobState] | None = None, keep_seconds: float | None = None,
                         log_line: dict[str, Any] | None = None, **fields: Any) -> Callable[[Any], bool]:
        """:meth:`transition` queued on ``pipe``, the caller's round trip (after the writes
        it queued before); returns what tells from the pipeline's reply whether it moved."""
        keys, args = self._transition_call(job_id, target, expect, keep_seconds, fields, log_line)
        queue_script(pipe, self._transition, keys, args)
        return lambda reply: self._moved(job_id, target, strict, reply)

    def transition_then(self, job_id: str, target: JobState, *, strict: bool = True,
                        expect: Iterable[JobState] | None = None, keep_seconds: float | None = None,
                        before: Callable[[Any], None] | None = None, after: Callable[[Any], None] | None = None,
                        log_line: dict[str, Any] | None = None, **fields: Any) -> tuple[bool, list[Any]]:
        """:meth:`transition` after ``before(pipe)``'s writes (a result, a lease) and before
        ``after(pipe)``'s reads (what a stage that claims the job works from), whose replies
        it returns: one round trip where there were two or three. In order, not in a
        transaction: the move is atomic by itself, what goes before it is written first (a
        result is there when a reader sees the move) and what is read after it is the
        mover's own job."""
        with self.redis.pipeline(transaction=False) as pipe:
            if before is not None:
                before(pipe)
            first = len(pipe)
            moved = self.queue_transition(pipe, job_id, target, strict=strict, expect=expect,
                                          keep_seconds=keep_seconds, log_line=log_line, **fields)
            if after is not None:
                after(pipe)
            replies = pipe.execute()
        return moved(replies[first]), replies[first + 1:]

    def _transition_call(self, job_id: str, target: JobState, expect: Iterable[JobState] | None,
                         keep_seconds: float | None, fields: dict[str, Any],
                         log_line: dict[str, Any] | None = None) -> tuple[list[str], list[Any]]:
        """The transition script's keys and arguments (see ``scripts.TRANSITION``)."""
        allowed = allowed_sources(target)
        if expect is not None:
            allowed = [state for state in allowed if state in set(expect)]
        sources = [encode(s.value) for s in allowed]
        expire = int(keep_seconds) + 1 if keep_seconds else 0
        token = encode(secrets.token_hex(8))
        line = ""
        if log_line:
            flat = [item for pair in self.journal.line_fields(log_line).items() for item in pair]
            line = encode({"fields": flat, "maxlen": self.journal.log_max_lines})
        args: list[Any] = [encode(target.value), EVENTS_MAXLEN, expire, token, line, len(sources), *sources]
        for key, value in fields.items():
            args += [key, encode(value)]
        keys = self.keys.lifetime_job_keys(job_id)  # job, events, ending, result, logs, the rest
        return (keys if expire else keys[:5] if target.is_final or log_line else keys[:2]), args

    @staticmethod
    def _moved(job_id: str, target: JobState, strict: bool, reply: Any) -> bool:
        moved, current = reply
        if moved:
            return True
        if not current:
            raise JobNotFound(f"no job {job_id!r} (it may have expired)")
        if strict:
            raise IllegalTransition(f"job {job_id}: cannot go from {json.loads(current)} to {target.value}")
        return False

    def state(self, job_id: str) -> JobState | None:
        raw = self.redis.hget(self.keys.job_key(job_id), "state")
        return JobState(json.loads(raw)) if raw else None

    def list_jobs(self, org: str, state: JobState | None = None, limit: int = 50,
                  template: str | None = None) -> list[JobStatus]:
        """The org's newest jobs first, optionally only those in ``state`` and of
        ``template`` (a name or ``name@version``); expired ones are pruned from the index."""
        found: list[JobStatus] = []
        for job_id in self.redis.zrevrange(self.keys.org_jobs_key(org), 0, -1):
            try:
                status = self.get(job_id, org)
            except JobNotFound:
                self.redis.zrem(self.keys.org_jobs_key(org), job_id)
                continue
            if (state is None or status.state == state) and template in (None, status.template,
                                                                         status.template.partition("@")[0]):
                found.append(status)
            if len(found) >= limit:
                break
        return found

    def page_jobs(self, org: str, state: JobState | None = None, limit: int = 50,
                  offset: int = 0) -> tuple[list[JobStatus], int]:
        """A page of the org's jobs (newest first) and how many match in all, reading only
        each job's state to count (pipelined) and whole records for the page."""
        ids = self.redis.zrevrange(self.keys.org_jobs_key(org), 0, -1)
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(self.keys.job_key(job_id), "state")
            states = pipe.execute()
        gone = [job_id for job_id, raw in zip(ids, states) if raw is None]
        if gone:
            self.redis.zrem(self.keys.org_jobs_key(org), *gone)
        matching = [job_id for job_id, raw in zip(ids, states)
                    if raw is not None and (state is None or json.loads(raw) == state.value)]
        page = []
        for job_id in matching[offset:offset + limit]:
            try:
                page.append(self.get(job_id, org))
            except JobNotFound:  # expired between the two reads
                continue
        return page, len(matching)

    def every_job(self, names: tuple[str, ...]) -> Iterator[dict[str, Any]]:
        """``names`` of every job record still in the store, of every org, decoded, read in
        pipelined chunks: what a metrics scrape counts (10,000 jobs are a few round trips).
        ``names`` must include ``state``: a record without one has expired."""
        for key in self.redis.scan_iter(match=self.keys.org_jobs_pattern(), count=500):
            ids = self.redis.zrange(key, 0, -1)
            for start in range(0, len(ids), _SCAN_CHUNK):
                for row in self.fields_each(ids[start:start + _SCAN_CHUNK], *names):
                    if row["state"] is not None:  # expired jobs leave only their index entry
                        yield row

    def orgs(self) -> set[str]:
        """Every org with jobs in the store."""
        return {self.keys.org_of_jobs_key(k) for k in self.redis.scan_iter(match=self.keys.org_jobs_pattern())}

    def delete_job(self, job_id: str, org: str) -> None:
        """Delete every key of a job and forget it in its org's index and the deadlines."""
        with self.redis.pipeline() as pipe:
            pipe.delete(*self.keys.all_job_keys(job_id))
            pipe.zrem(self.keys.org_jobs_key(org), job_id)
            pipe.zrem(self.keys.deadlines_key(), job_id)
            pipe.execute()

    def keep_for(self, job_id: str, seconds: float) -> None:
        """Let every key the job has so far live ``seconds`` from now."""
        with self.redis.pipeline() as pipe:
            for key in self.keys.all_job_keys(job_id):
                pipe.expire(key, int(seconds) + 1)
            pipe.execute()

    # -- deadlines (the watchdog's sorted set) ----------------------------------------
    def set_deadline(self, job_id: str, deadline: float) -> None:
        self.redis.zadd(self.keys.deadlines_key(), {job_id: deadline})

    def forget_deadline(self, job_id: str) -> None:
        self.redis.zrem(self.keys.deadlines_key(), job_id)

    def unfinished(self, *names: str) -> Iterator[dict[str, Any]]:
        """``names`` of every non-final job (the deadlines set holds exactly those), decoded,
        with ``id``: what the fleet's backlog is summed from (``runner/backlog.py``). One range
        read, then one pipelined round trip per 1,000 jobs; a record gone meanwhile is skipped."""
        ids = self.redis.zrange(self.keys.deadlines_key(), 0, -1)
        for start in range(0, len(ids), _SCAN_CHUNK):
            chunk = ids[start:start + _SCAN_CHUNK]
            for job_id, row in zip(chunk, self.fields_each(chunk, "state", *names)):
                if row["state"] is not None:
                    yield {"id": job_id, **row}

    def overdue(self, now: float | None = None) -> list[str]:
        """Job ids whose deadline has passed: one range query for the watchdog."""
        return self.redis.zrangebyscore(self.keys.deadlines_key(), "-inf", now or time.time())
