"""The Prediction API's own records in Redis: sources, their immutable versions, and
inputs registered by id — every read and write of them, per org.

A *source* is a named model, a *source version* one immutable release of it bound to a
Runner template, an *input* a URI registered under an id that role bindings may name.
They are configuration, not job data, so they never expire (as schedules and templates).

Every key comes from :class:`runner.store.keyspace.Keys` (see its table) and holds the
org, so an org reads only its own; the claim script is in :mod:`runner.store.scripts`. Records are JSON objects; the routes that own their shape
(``runner/api/prediction_sources.py``) validate them. A name and a version are claimed
with one script (index and record together): of two racing creators exactly one wins,
and the other reads the winner's record back.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from runner.store.keyspace import Keys
from runner.store.part import Part
from runner.store.scripts import CLAIM_NAME

__all__ = ["SourceRecords"]

def _decode(raw: str | None) -> dict[str, Any] | None:
    return None if raw is None else json.loads(raw)


class SourceRecords(Part):
    """Sources, source versions and registered inputs, over the status store's Redis and keys."""

    def __init__(self, redis_client: redis.Redis, keys: Keys) -> None:
        super().__init__(redis_client, keys)
        self._claim = self.redis.register_script(CLAIM_NAME)

    def _claimed(self, index: str, records: str, field: str, record: dict[str, Any]) -> dict[str, Any]:
        winner = self._claim(keys=[index, records], args=[field, record["id"], json.dumps(record)])
        if winner == record["id"]:
            return record
        return _decode(self.redis.hget(records, winner)) or record

    # -- sources --------------------------------------------------------------------------
    def add_source(self, org: str, record: dict[str, Any]) -> dict[str, Any]:
        """Store a new source unless its ``name`` is taken; returns the one stored under the
        name (the caller compares it with what it asked for)."""
        return self._claimed(self.keys.source_names_key(org), self.keys.sources_key(org), record["name"], record)

    def source(self, org: str, source_id: str) -> dict[str, Any] | None:
        return _decode(self.redis.hget(self.keys.sources_key(org), source_id))

    def source_named(self, org: str, name: str) -> dict[str, Any] | None:
        found = self.redis.hget(self.keys.source_names_key(org), name)
        return None if found is None else self.source(org, found)

    def sources(self, org: str) -> list[dict[str, Any]]:
        """The org's sources, oldest first."""
        rows = [json.loads(raw) for raw in self.redis.hvals(self.keys.sources_key(org))]
        return sorted(rows, key=lambda row: (row["created_at"], row["id"]))

    # -- source versions ------------------------------------------------------------------
    def add_version(self, org: str, record: dict[str, Any]) -> dict[str, Any]:
        """Store a new version of ``record["source_id"]`` unless that version exists; returns
        the one stored under it (versions never change)."""
        index = self.keys.source_version_ids_key(org, record["source_id"])
        return self._claimed(index, self.keys.source_versions_key(org), record["version"], record)

    def version(self, org: str, version_id: str) -> dict[str, Any] | None:
        return _decode(self.redis.hget(self.keys.source_versions_key(org), version_id))

    def version_ids(self, org: str, source_id: str) -> dict[str, str]:
        """``{version string: version id}`` of one source."""
        return self.redis.hgetall(self.keys.source_version_ids_key(org, source_id))

    def versions(self, org: str, source_id: str | None = None) -> list[dict[str, Any]]:
        """The org's versions (of one source), oldest first."""
        key = self.keys.source_versions_key(org)
        if source_id is None:
            raws = self.redis.hvals(key)
        else:
            ids = list(self.version_ids(org, source_id).values())
            raws = [raw for raw in self.redis.hmget(key, ids) if raw is not None] if ids else []
        rows = [json.loads(raw) for raw in raws]
        return sorted(rows, key=lambda row: (row["created_at"], row["id"]))

    # -- inputs ---------------------------------------------------------------------------
    def add_input(self, org: str, record: dict[str, Any]) -> None:
        self.redis.hset(self.keys.inputs_key(org), record["id"], json.dumps(record))

    def input(self, org: str, input_id: str) -> dict[str, Any] | None:
        return _decode(self.redis.hget(self.keys.inputs_key(org), input_id))

    def inputs(self, org: str) -> list[dict[str, Any]]:
        rows = [json.loads(raw) for raw in self.redis.hvals(self.keys.inputs_key(org))]
        return sorted(rows, key=lambda row: (row["created_at"], row["id"]))
