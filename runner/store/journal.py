"""A job's journal in the store: its log lines, its events, its metrics and its Celery
task ids, and the few writes that touch several of them in one round trip (a batch
starting, a job closing out).

Log lines and events are capped streams (``log_max_lines``, ``EVENTS_MAXLEN``) so a
chatty job cannot fill Redis; log lines live as long as the job's record.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

import redis

from runner.models import JobState, JobStatus
from runner.store.keyspace import Keys
from runner.store.part import Part, encode, status_of
from runner.store.scripts import ADD_LOGS

__all__ = ["Journal", "EVENTS_MAXLEN"]

EVENTS_MAXLEN = 10_000


class Journal(Part):
    """Logs, events, metrics and task ids of jobs."""

    def __init__(self, redis_client: redis.Redis, keys: Keys, log_max_lines: int = 10_000) -> None:
        super().__init__(redis_client, keys)
        self.log_max_lines = log_max_lines
        self._add_logs = self.redis.register_script(ADD_LOGS)

    # -- log lines --------------------------------------------------------------------
    def xadd_logs(self, pipe: Any, job_id: str, lines: list[dict[str, Any]]) -> None:
        """Queue ``lines`` on ``pipe``: the other parts log inside their own round trips."""
        now = time.time()
        for line in lines:
            pipe.xadd(self.keys.logs_key(job_id), self.line_fields(line, now), maxlen=self.log_max_lines,
                      approximate=True)

    @staticmethod
    def line_fields(line: dict[str, Any], now: float | None = None) -> dict[str, str]:
        """A log line as its stream entry's fields (``t``: when, unless it says)."""
        fields = {k: str(v) for k, v in line.items() if v is not None}
        fields.setdefault("t", f"{now or time.time():.6f}")
        return fields

    def add_logs(self, job_id: str, lines: list[dict[str, Any]]) -> None:
        """Append log lines (``level``, ``source``, ``msg``, ``piece`` or ``start``/``stop``)."""
        if not lines:
            return
        encoded = [self._encode_line(line) for line in lines]
        self._add_logs(keys=[self.keys.job_key(job_id), self.keys.logs_key(job_id)],
                       args=[self.log_max_lines, *encoded])

    @staticmethod
    def _encode_line(line: dict[str, Any]) -> str:
        return json.dumps({"t": f"{time.time():.6f}", **{k: str(v) for k, v in line.items() if v is not None}})

    def logs(self, job_id: str, after: str = "-", count: int | None = None,
             block_ms: int | None = None) -> list[tuple[str, dict[str, str]]]:
        """Log lines in order: all (``after="-"``), or those after an id (waiting up to
        ``block_ms`` for the first when given, for ``--follow``)."""
        if block_ms is not None:
            answer = self.redis.xread({self.keys.logs_key(job_id): after}, block=block_ms, count=count)
            return [(i, f) for _, entries in answer for i, f in entries]
        start = after if after == "-" else f"({after}"
        return self.redis.xrange(self.keys.logs_key(job_id), start, "+", count=count)

    # -- events -----------------------------------------------------------------------
    def add_event(self, job_id: str, kind: str, **data: Any) -> None:
        fields = {"type": kind, **{k: encode(v) if not isinstance(v, str) else v for k, v in data.items()}}
        self.redis.xadd(self.keys.events_key(job_id), fields, maxlen=EVENTS_MAXLEN)

    def read_events(self, job_id: str, after: str = "0-0",
                    block_ms: int | None = None) -> list[tuple[str, dict[str, str]]]:
        """Events after ``after``; waits up to ``block_ms`` for the first one when given."""
        answer = self.redis.xread({self.keys.events_key(job_id): after}, block=block_ms, count=1000)
        return [(event_id, fields) for _, entries in answer for event_id, fields in entries]

    # -- task ids -------------------------------------------------------------------
    def add_tasks(self, job_id: str, task_ids: Iterable[str], logs: list[dict[str, Any]] | None = None,
                  **fields: Any) -> None:
        """Record task ids of the job (and log ``logs``, set record ``fields``) in one round
        trip. The log stream exists already (its first line is written with the record)."""
        ids = list(task_ids)
        with self.redis.pipeline(transaction=False) as pipe:
            if ids:
                pipe.sadd(self.keys.tasks_key(job_id), *ids)
            if logs:
                self.xadd_logs(pipe, job_id, logs)
            if fields:
                pipe.hset(self.keys.job_key(job_id), mapping={k: encode(v) for k, v in fields.items()})
            pipe.execute()

    def tasks(self, job_id: str) -> list[str]:
        return sorted(self.redis.smembers(self.keys.tasks_key(job_id)))

    # -- metrics --------------------------------------------------------------------
    def add_metrics(self, job_id: str, items: list[dict[str, Any]]) -> None:
        if items:
            key = self.keys.metrics_key(job_id)
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.rpush(key, *(encode(item) for item in items))
                pipe.ttl(self.keys.job_key(job_id))
                _, ttl = pipe.execute()
            if ttl and ttl > 0:  # the record notes it: the final move sets their lifetime, a report reads them
                with self.redis.pipeline(transaction=False) as pipe:
                    pipe.expire(key, ttl)
                    pipe.hset(self.keys.job_key(job_id), "has_metrics", 1)
                    pipe.execute()

    def metrics(self, job_id: str) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.redis.lrange(self.keys.metrics_key(job_id), 0, -1)]

    # -- writes spanning the journal and the record ------------------------------------
    def begin_batch(self, job_id: str, delivery: str, event: dict[str, Any]) -> tuple[JobState | None, int, float]:
        """Note that an app task starts (an event, a log line and its delivery count) in
        one round trip; returns the job's state, how often this delivery has started and
        the job's deadline. (``TAKE_WHOLE`` makes the same writes for a batch it hands the
        process that runs it, from :meth:`begin_args`.)"""
        fields, line = self._batch_started(event)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self.keys.job_key(job_id), "state", "deadline")
            pipe.hincrby(self.keys.deliveries_key(job_id), delivery, 1)
            pipe.xadd(self.keys.events_key(job_id), fields, maxlen=EVENTS_MAXLEN)
            self.xadd_logs(pipe, job_id, [line])
            (state, deadline), deliveries, *_ = pipe.execute()
        return self.begun([state, deliveries, deadline])

    def begin_args(self, delivery: str, event: dict[str, Any], logs: Iterable[dict[str, Any]] = ()) -> str:
        """:meth:`begin_batch`'s writes as a script's argument (JSON): the delivery counted,
        the batch event and, after ``logs``, the "started on" line; each stream's cap."""
        fields, line = self._batch_started(event)
        flat = lambda mapping: [item for pair in mapping.items() for item in pair]  # noqa: E731
        now = time.time()
        return json.dumps({"delivery": delivery, "event": flat(fields), "events_maxlen": EVENTS_MAXLEN,
                           "logs": [flat(self.line_fields(each, now)) for each in (*logs, line)],
                           "logs_maxlen": self.log_max_lines})

    @staticmethod
    def begun(reply: list[Any]) -> tuple[JobState | None, int, float]:
        """A batch's start as :meth:`begin_batch` returns it, from ``[state, deliveries, deadline]``."""
        state, deliveries, deadline = reply
        return (JobState(json.loads(state)) if state else None), int(deliveries), float(json.loads(deadline or "0"))

    @staticmethod
    def _batch_started(event: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
        """A batch's start: its event's fields and its "started on" log line."""
        line = {"level": "INFO", "source": "runner", "start": event["start"], "stop": event["stop"],
                "msg": f"started on {event['host']} (pid {event['pid']})"}
        return {"type": "batch", **{k: str(v) for k, v in event.items()}}, line

    def report(self, job_id: str, result: str | None = None) -> tuple[JobStatus | None, list[dict[str, Any]]]:
        """The record and the metrics, in one round trip (what ``output.json`` needs);
        ``None`` for a job that is gone. ``result`` (JSON), when given, is stored first, in
        the same round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            if result is not None:
                self.queue_result(pipe, job_id, result)
            self.queue_report(pipe, job_id)
            *_, raw = pipe.execute()
        return self.read_report(job_id, raw)

    def queue_report(self, pipe: Any, job_id: str) -> None:
        """:meth:`report`'s read queued on ``pipe`` (the caller's round trip): the record,
        one reply, for :meth:`read_report`."""
        pipe.hgetall(self.keys.job_key(job_id))

    def read_report(self, job_id: str, raw: dict[str, str]) -> tuple[JobStatus | None, list[dict[str, Any]]]:
        """The record read (``raw``) and the job's metrics — read now, only when the record
        says it has some (``has_metrics``; or it is from before records said so): most jobs
        have none, and a read of an empty list is a command per job for nothing."""
        metrics: list[str] = []
        if raw and (raw.get("has_metrics") or not raw.get("keys_tracked")):
            metrics = self.redis.lrange(self.keys.metrics_key(job_id), 0, -1)
        return (status_of(job_id, raw, None) if raw else None), [json.loads(item) for item in metrics]

    def queue_result(self, pipe: Any, job_id: str, result: str) -> None:
        """Store the assembled output (JSON) on ``pipe``: the caller sends it."""
        pipe.set(self.keys.result_key(job_id), result)

    def close_out(self, job_id: str, line: dict[str, Any] | None, keep_seconds: float, pipe: Any = None) -> None:
        """After a job's final transition (which gave its keys ``keep_seconds`` to live):
        forget its deadline, log how it ended unless the move logged it (on ``pipe``, when
        given: the caller sends it)."""
        if pipe is None:
            with self.redis.pipeline(transaction=False) as own:
                self.close_out(job_id, line, keep_seconds, own)
                own.execute()
            return
        pipe.zrem(self.keys.deadlines_key(), job_id)
        if line is not None:  # (a move that logged it gave the logs their lifetime already)
            self.xadd_logs(pipe, job_id, [line])
            pipe.expire(self.keys.logs_key(job_id), int(keep_seconds) + 1)
