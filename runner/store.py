"""The status store: every read and write Runner makes of a job and an org in Redis; the
fleet's own records (heartbeats, leases, templates) come from :class:`FleetRecords`.

Every key it writes is built by :class:`runner.keys.Keys` (the key table is there); the
store adds the reads and writes, Lua included (scripts take their keys as ``KEYS``).

Counters are idempotent: a piece's result is a hash field, so a redelivered piece
overwrites its result and ``pieces_done`` counts fields that were new, never calls.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import redis

from runner.config import Settings
from runner.errors import IllegalTransition, JobNotFound
from runner.fleet_records import FleetRecords
from runner.models import JobState, JobStatus, allowed_sources
from runner.redis_connect import connect
from runner.scripts import ADD_LOGS, RECORD_FAILURE, RECORD_RESULTS, TRANSITION
from runner.pieces import to_stored

__all__ = ["StatusStore", "Progress", "EVENTS_MAXLEN"]

EVENTS_MAXLEN = 10_000
_PIPELINE_CHUNK = 2_000

class Progress(NamedTuple):
    """What recording results tells the batch: the job's state and its counters."""

    state: JobState | None
    done: int
    total: int  # -1 until partitioned
    new: int  # of the results just recorded, how many were not recorded before

    @property
    def completes_job(self) -> bool:
        """These results were the last the job needed: send the assembly (exactly one
        caller sees this, since the count is one atomic increment)."""
        return self.new > 0 and self.done == self.total


def _encode(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class StatusStore(FleetRecords):
    """Job records, pieces, results and events in one Redis; key builders from :class:`Keys`."""

    def __init__(self, url: str, prefix: str = "runner", log_max_lines: int = 10_000,
                 outage_seconds: float = 60.0, patient: bool = False, master_name: str = "mymaster") -> None:
        super().__init__(prefix)
        self.url = url
        self.log_max_lines = log_max_lines
        self.redis: redis.Redis = connect(url, master_name, outage_seconds, patient, decode_responses=True)
        self._transition = self.redis.register_script(TRANSITION)
        self._record_results = self.redis.register_script(RECORD_RESULTS)
        self._record_failure = self.redis.register_script(RECORD_FAILURE)
        self._add_logs = self.redis.register_script(ADD_LOGS)

    @classmethod
    def from_settings(cls, settings: Settings, patient: bool = False) -> "StatusStore":
        """The store of ``settings``; ``patient`` (workers) waits for a Redis not up yet."""
        return cls(settings.status_store_url, settings.key_prefix, settings.log_max_lines,
                   settings.redis_outage_seconds, patient, settings.redis_master_name)

    # -- job records ----------------------------------------------------------------
    def create(self, record: dict[str, Any], expire_seconds: float, deadline: float | None = None,
               tasks: list[str] | None = None, logs: list[dict[str, Any]] | None = None) -> None:
        """Write a new job record (state ``draft`` or ``queued``) and index it by org; for a
        queued job also its deadline, its first task's id and its first log lines — one
        round trip, before the task is sent."""
        job_id, org, ttl = record["id"], record["org"], int(expire_seconds) + 1
        with self.redis.pipeline() as pipe:
            pipe.hset(self.job_key(job_id), mapping={k: _encode(v) for k, v in record.items()})
            pipe.expire(self.job_key(job_id), ttl)
            pipe.zadd(self.org_jobs_key(org), {job_id: record["created_at"]})
            pipe.xadd(self.events_key(job_id), {"type": "state", "state": record["state"]}, maxlen=EVENTS_MAXLEN)
            pipe.expire(self.events_key(job_id), ttl)
            if deadline is not None:
                pipe.zadd(self.deadlines_key(), {job_id: deadline})
            if tasks:
                pipe.sadd(self.tasks_key(job_id), *tasks)
                pipe.expire(self.tasks_key(job_id), ttl)
            if logs:
                self._xadd_logs(pipe, job_id, logs)
                pipe.expire(self.logs_key(job_id), ttl)
            pipe.execute()

    def get(self, job_id: str, org: str | None = None) -> JobStatus:
        """The job's record; raises :class:`JobNotFound` if absent or owned by another org."""
        return self._status(job_id, self.redis.hgetall(self.job_key(job_id)), org)

    def snapshot(self, job_id: str, org: str | None = None) -> tuple[JobStatus, str]:
        """The job's record and the id of its newest event, read in one transaction:
        waiting for events after that id misses none that follow the record."""
        with self.redis.pipeline() as pipe:
            pipe.hgetall(self.job_key(job_id))
            pipe.xrevrange(self.events_key(job_id), "+", "-", count=1)
            raw, newest = pipe.execute()
        return self._status(job_id, raw, org), (newest[0][0] if newest else "0-0")

    def _status(self, job_id: str, raw: dict[str, str], org: str | None) -> JobStatus:
        if not raw:
            raise JobNotFound(f"no job {job_id!r}" + (f" in org {org!r}" if org else "") + " (it may have expired)")
        data = {key: json.loads(value) for key, value in raw.items()}
        if org is not None and data.get("org") != org:
            raise JobNotFound(f"no job {job_id!r} in org {org!r} (it may have expired)")
        return JobStatus.model_validate(data)

    def fields(self, job_id: str, *names: str) -> dict[str, Any]:
        """A few fields of the record, decoded (missing ones are ``None``)."""
        values = self.redis.hmget(self.job_key(job_id), names)
        return {name: (json.loads(v) if v is not None else None) for name, v in zip(names, values)}

    def update(self, job_id: str, **fields: Any) -> None:
        """Set record fields that are not the state (use :meth:`transition` for that)."""
        if "state" in fields:
            raise ValueError("state changes go through transition()")
        self.redis.hset(self.job_key(job_id), mapping={k: _encode(v) for k, v in fields.items()})

    def transition(
        self,
        job_id: str,
        target: JobState,
        *,
        strict: bool = True,
        expect: Iterable[JobState] | None = None,
        keep_seconds: float | None = None,
        **fields: Any,
    ) -> bool:
        """Move the job to ``target`` if the state machine allows it from its current state
        (and that state is one of ``expect``, when given); with ``keep_seconds``, every key
        of the job then lives that long (a final state's retention starts with it).

        Atomic: of two racing writers only one wins. Returns whether it moved; with
        ``strict`` an illegal move raises :class:`IllegalTransition` instead.
        """
        allowed = allowed_sources(target)
        if expect is not None:
            allowed = [state for state in allowed if state in set(expect)]
        sources = [_encode(s.value) for s in allowed]
        expire = int(keep_seconds) + 1 if keep_seconds else 0
        token = _encode(secrets.token_hex(8))
        args: list[Any] = [_encode(target.value), EVENTS_MAXLEN, expire, token, len(sources), *sources]
        for key, value in fields.items():
            args += [key, _encode(value)]
        keys = self._job_keys(job_id) if expire else [self.job_key(job_id), self.events_key(job_id)]
        moved, current = self._transition(keys=keys, args=args)
        if moved:
            return True
        if not current:
            raise JobNotFound(f"no job {job_id!r} (it may have expired)")
        if strict:
            raise IllegalTransition(f"job {job_id}: cannot go from {json.loads(current)} to {target.value}")
        return False

    def state(self, job_id: str) -> JobState | None:
        raw = self.redis.hget(self.job_key(job_id), "state")
        return JobState(json.loads(raw)) if raw else None

    def list_jobs(self, org: str, state: JobState | None = None, limit: int = 50,
                  template: str | None = None) -> list[JobStatus]:
        """The org's newest jobs first, optionally only those in ``state`` and of
        ``template`` (a name or ``name@version``); expired ones are pruned from the index."""
        found: list[JobStatus] = []
        for job_id in self.redis.zrevrange(self.org_jobs_key(org), 0, -1):
            try:
                status = self.get(job_id, org)
            except JobNotFound:
                self.redis.zrem(self.org_jobs_key(org), job_id)
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
        ids = self.redis.zrevrange(self.org_jobs_key(org), 0, -1)
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(self.job_key(job_id), "state")
            states = pipe.execute()
        gone = [job_id for job_id, raw in zip(ids, states) if raw is None]
        if gone:
            self.redis.zrem(self.org_jobs_key(org), *gone)
        matching = [job_id for job_id, raw in zip(ids, states)
                    if raw is not None and (state is None or json.loads(raw) == state.value)]
        page = []
        for job_id in matching[offset:offset + limit]:
            try:
                page.append(self.get(job_id, org))
            except JobNotFound:  # expired between the two reads
                continue
        return page, len(matching)

    def delete_job(self, job_id: str, org: str) -> None:
        """Delete every key of a job and forget it in its org's index and the deadlines."""
        with self.redis.pipeline() as pipe:
            pipe.delete(*self._job_keys(job_id))
            pipe.zrem(self.org_jobs_key(org), job_id)
            pipe.zrem(self.deadlines_key(), job_id)
            pipe.execute()

    def set_deadline(self, job_id: str, deadline: float) -> None:
        self.redis.zadd(self.deadlines_key(), {job_id: deadline})

    def forget_deadline(self, job_id: str) -> None:
        self.redis.zrem(self.deadlines_key(), job_id)

    def overdue(self, now: float | None = None) -> list[str]:
        """Job ids whose deadline has passed: one range query for the watchdog."""
        return self.redis.zrangebyscore(self.deadlines_key(), "-inf", now or time.time())

    # -- pieces and results ---------------------------------------------------------
    def store_pieces(self, job_id: str, pieces: Iterable[Any], expire_seconds: float, limit: int | None = None) -> int:
        """Append pieces (JSON; a :class:`~runner.pieces.PieceRef` as its stored form) to the
        job's piece list, streaming; returns how many."""
        key, count, chunk = self.pieces_key(job_id), 0, []
        self.redis.delete(key)  # a redelivered partition task starts over
        for piece in pieces:
            chunk.append(_encode(to_stored(piece)))
            count += 1
            if len(chunk) >= _PIPELINE_CHUNK:
                self.redis.rpush(key, *chunk)
                chunk = []
            if limit is not None and count >= limit:
                break
        if chunk:
            self.redis.rpush(key, *chunk)
        self.redis.expire(key, int(expire_seconds) + 1)
        return count

    def load_pieces(self, job_id: str, start: int, stop: int) -> list[Any]:
        """Pieces ``start`` (inclusive) to ``stop`` (exclusive)."""
        return [json.loads(p) for p in self.redis.lrange(self.pieces_key(job_id), start, stop - 1)]

    def record_results(self, job_id: str, results: list[tuple[int, str]]) -> Progress:
        """Record already JSON-encoded results ``(piece index, result)``; returns the job's
        state (a long batch learns on its way that the job was cancelled) and whether
        these results completed the job's pieces (then the caller sends the assembly).
        Replaying it (a retried call after a lost reply) changes nothing."""
        args: list[Any] = [EVENTS_MAXLEN]
        for index, encoded in results:
            args += [index, encoded]
        keys = [self.job_key(job_id), self.results_key(job_id), self.failed_key(job_id), self.events_key(job_id)]
        state, done, total, new = self._record_results(keys=keys, args=args)
        return Progress(JobState(json.loads(state)) if state else None, int(done), int(json.loads(total)), int(new))

    def done_pieces(self, job_id: str, start: int, stop: int) -> set[int]:
        """Which of pieces ``start``..``stop`` already have a result (a redelivered batch
        skips them)."""
        with self.redis.pipeline(transaction=False) as pipe:
            for index in range(start, stop):
                pipe.hexists(self.results_key(job_id), index)
            found = pipe.execute()
        return {index for index, present in zip(range(start, stop), found) if present}

    def record_failure(self, job_id: str, index: int, error: dict[str, Any]) -> int:
        """Record that a piece failed for good; returns pieces failed."""
        keys = [self.job_key(job_id), self.failed_key(job_id), self.events_key(job_id)]
        return int(self._record_failure(keys=keys, args=[EVENTS_MAXLEN, index, _encode(error)]))

    def begin_batch(self, job_id: str, delivery: str, event: dict[str, Any]) -> tuple[JobState | None, int, float]:
        """Note that an app task starts (an event, a log line and its delivery count) in
        one round trip; returns the job's state, how often this delivery has started and
        the job's deadline."""
        line = {"level": "INFO", "source": "runner", "start": event["start"], "stop": event["stop"],
                "msg": f"started on {event['host']} (pid {event['pid']})"}
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self.job_key(job_id), "state", "deadline")
            pipe.hincrby(self.deliveries_key(job_id), delivery, 1)
            pipe.xadd(self.events_key(job_id), {"type": "batch", **{k: str(v) for k, v in event.items()}},
                      maxlen=EVENTS_MAXLEN)
            self._xadd_logs(pipe, job_id, [line])
            (state, deadline), deliveries, *_ = pipe.execute()
        return (JobState(json.loads(state)) if state else None), int(deliveries), float(json.loads(deadline or "0"))

    def _xadd_logs(self, pipe: Any, job_id: str, lines: list[dict[str, Any]]) -> None:
        now = time.time()
        for line in lines:
            fields = {k: str(v) for k, v in line.items() if v is not None}
            fields.setdefault("t", f"{now:.6f}")
            pipe.xadd(self.logs_key(job_id), fields, maxlen=self.log_max_lines, approximate=True)

    def add_logs(self, job_id: str, lines: list[dict[str, Any]]) -> None:
        """Append log lines (``level``, ``source``, ``msg``, ``piece`` or ``start``/``stop``)."""
        if not lines:
            return
        encoded = [self._encode_line(line) for line in lines]
        self._add_logs(keys=[self.job_key(job_id), self.logs_key(job_id)], args=[self.log_max_lines, *encoded])

    @staticmethod
    def _encode_line(line: dict[str, Any]) -> str:
        return json.dumps({"t": f"{time.time():.6f}", **{k: str(v) for k, v in line.items() if v is not None}})

    def logs(self, job_id: str, after: str = "-", count: int | None = None,
             block_ms: int | None = None) -> list[tuple[str, dict[str, str]]]:
        """Log lines in order: all (``after="-"``), or those after an id (waiting up to
        ``block_ms`` for the first when given, for ``--follow``)."""
        if block_ms is not None:
            answer = self.redis.xread({self.logs_key(job_id): after}, block=block_ms, count=count)
            return [(i, f) for _, entries in answer for i, f in entries]
        start = after if after == "-" else f"({after}"
        return self.redis.xrange(self.logs_key(job_id), start, "+", count=count)

    def count_attempt(self, job_id: str, index: int) -> int:
        """Count one more failed attempt of a piece; returns the total so far."""
        return int(self.redis.hincrby(self.attempts_key(job_id), str(index), 1))

    def add_tasks(self, job_id: str, task_ids: Iterable[str], **fields: Any) -> None:
        """Record task ids of the job (and set record ``fields``) in one round trip."""
        ids = list(task_ids)
        with self.redis.pipeline(transaction=False) as pipe:
            if ids:
                pipe.sadd(self.tasks_key(job_id), *ids)
            if fields:
                pipe.hset(self.job_key(job_id), mapping={k: _encode(v) for k, v in fields.items()})
            pipe.execute()

    def tasks(self, job_id: str) -> list[str]:
        return sorted(self.redis.smembers(self.tasks_key(job_id)))

    def add_metrics(self, job_id: str, items: list[dict[str, Any]]) -> None:
        if items:
            key = self.metrics_key(job_id)
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.rpush(key, *(_encode(item) for item in items))
                pipe.ttl(self.job_key(job_id))
                _, ttl = pipe.execute()
            if ttl and ttl > 0:
                self.redis.expire(key, ttl)

    def metrics(self, job_id: str) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.redis.lrange(self.metrics_key(job_id), 0, -1)]

    def report(self, job_id: str) -> tuple[JobStatus | None, list[dict[str, Any]]]:
        """The record and the metrics, in one round trip (what ``output.json`` needs);
        ``None`` for a job that is gone."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.job_key(job_id))
            pipe.lrange(self.metrics_key(job_id), 0, -1)
            raw, metrics = pipe.execute()
        return (self._status(job_id, raw, None) if raw else None), [json.loads(item) for item in metrics]

    def close_out(self, job_id: str, line: dict[str, Any], keep_seconds: float) -> None:
        """After a job's final transition (which gave its keys ``keep_seconds`` to live):
        forget its deadline, log how it ended."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(self.deadlines_key(), job_id)
            self._xadd_logs(pipe, job_id, [line])
            pipe.expire(self.logs_key(job_id), int(keep_seconds) + 1)
            pipe.execute()

    def missing_pieces(self, job_id: str, total: int) -> list[int]:
        """Indices of pieces with no recorded result, ascending."""
        have = {int(i) for i in self.redis.hkeys(self.results_key(job_id))}
        return [i for i in range(total) if i not in have]

    def reset_failures(self, job_id: str) -> None:
        """Forget failed pieces and attempt counts (a retry of the failed pieces starts)."""
        self.redis.delete(self.failed_key(job_id), self.attempts_key(job_id), self.deliveries_key(job_id))

    def iter_results(self, job_id: str, total: int, chunk: int = 1000) -> Iterator[Any]:
        """Every piece's result in piece order, fetched ``chunk`` at a time."""
        key = self.results_key(job_id)
        for start in range(0, total, chunk):
            indices = list(range(start, min(total, start + chunk)))
            for index, raw in zip(indices, self.redis.hmget(key, indices)):
                if raw is None:
                    raise LookupError(f"job {job_id}: no result recorded for piece {index}")
                yield json.loads(raw)

    def set_result(self, job_id: str, encoded: str) -> None:
        self.redis.set(self.result_key(job_id), encoded)

    def get_result(self, job_id: str) -> Any:
        raw = self.redis.get(self.result_key(job_id))
        return json.loads(raw) if raw is not None else None

    def keep_for(self, job_id: str, seconds: float) -> None:
        """Let every key the job has so far live ``seconds`` from now."""
        with self.redis.pipeline() as pipe:
            for key in self._job_keys(job_id):
                pipe.expire(key, int(seconds) + 1)
            pipe.execute()

    # -- events ---------------------------------------------------------------------
    def add_event(self, job_id: str, kind: str, **data: Any) -> None:
        fields = {"type": kind, **{k: _encode(v) if not isinstance(v, str) else v for k, v in data.items()}}
        self.redis.xadd(self.events_key(job_id), fields, maxlen=EVENTS_MAXLEN)

    def read_events(self, job_id: str, after: str = "0-0", block_ms: int | None = None) -> list[tuple[str, dict[str, str]]]:
        """Events after ``after``; waits up to ``block_ms`` for the first one when given."""
        answer = self.redis.xread({self.events_key(job_id): after}, block=block_ms, count=1000)
        return [(event_id, fields) for _, entries in answer for event_id, fields in entries]
