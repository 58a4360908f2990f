"""What every part of the store shares: the one Redis connection, the key builders, and
the JSON encoding of a job record.

The store (:class:`runner.store.StatusStore`) is composed of parts, one per concept (job
records, pieces and results, the journal, fleet records, API keys, schedules); each holds
the same connection, so composing them costs no extra connections or round trips.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from runner.errors import JobNotFound
from runner.models import JobStatus
from runner.store.keyspace import Keys

__all__ = ["Part", "encode", "status_of", "stored_status", "queue_script"]


_COMPACT = json.JSONEncoder(separators=(",", ":"))  # one encoder: json.dumps builds one a call for these options


def encode(value: Any) -> str:
    """A record field's stored form: compact JSON (every value of a job record is JSON)."""
    return _COMPACT.encode(value)


def status_of(job_id: str, raw: dict[str, str], org: str | None) -> JobStatus:
    """The record ``raw`` (as ``HGETALL`` returns it) of ``job_id``; raises
    :class:`JobNotFound` if it is empty or owned by another org than ``org``."""
    if not raw:
        raise JobNotFound(f"no job {job_id!r}" + (f" in org {org!r}" if org else "") + " (it may have expired)")
    data = {key: json.loads(value) for key, value in raw.items()}
    if org is not None and data.get("org") != org:
        raise JobNotFound(f"no job {job_id!r} in org {org!r} (it may have expired)")
    return JobStatus.model_validate(data)


def queue_script(pipe: Any, script: Any, keys: list[str], args: list[Any]) -> None:
    """Queue ``script`` (a registered :class:`redis.commands.core.Script`) on ``pipe`` as
    ``EVAL`` of its text, not ``EVALSHA``: redis-py checks a pipeline's scripts with a
    ``SCRIPT EXISTS`` round trip before sending it (an ``EVALSHA`` after a Redis restart
    would find nothing), which a per-job pipeline cannot afford. Redis caches the
    compiled script by its digest, so the text costs only its bytes and one SHA-1."""
    pipe.eval(script.script, len(keys), *keys, *args)


def stored_status(record: dict[str, Any]) -> JobStatus:
    """The status the record a writer just stored reads back as (each field through its
    stored JSON), without reading it: what ``get`` would return right after ``create``.
    The whole record goes through JSON at once: the same values as field by field (each
    field is its own JSON value either way), at a quarter of the cost of ~40 calls."""
    return JobStatus.model_validate(json.loads(json.dumps(record)))


class Part:
    """One concept's reads and writes over the store's connection and keys."""

    def __init__(self, redis_client: redis.Redis, keys: Keys) -> None:
        self.redis = redis_client
        self.keys = keys
