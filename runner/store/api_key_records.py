"""The HTTP API's keys in the store: each key's record (org, argon2 hash, creation time;
a job's own key also its job),
each org's set of key ids, access tokens by SHA-256, request counters per rate-limit
window, and the secret that signs result links.

Only records live here; what a key or a token is, how it is hashed and checked, is
:mod:`runner.api.keys`'s.
"""

from __future__ import annotations

import redis

from runner.store.keyspace import Keys
from runner.store.part import Part
from runner.store.scripts import AUTHENTICATE, AUTHENTICATE_READ

__all__ = ["ApiKeyRecords"]


class ApiKeyRecords(Part):
    """Key records, token digests, rate counters and the link secret."""

    def __init__(self, redis_client: redis.Redis, keys: Keys) -> None:
        super().__init__(redis_client, keys)
        self._authenticate = self.redis.register_script(AUTHENTICATE)
        self._authenticate_read = self.redis.register_script(AUTHENTICATE_READ)

    def add_key(self, key_id: str, org: str, record: dict[str, str]) -> None:
        """Store a key's record and list it under its org, in one transaction."""
        with self.redis.pipeline() as pipe:
            pipe.hset(self.keys.api_key_key(key_id), mapping=record)
            pipe.sadd(self.keys.api_org_keys_key(org), key_id)
            pipe.execute()

    def add_job_key(self, key_id: str, record: dict[str, str], seconds: float) -> None:
        """Store a job's own key (``runner/job_keys.py``): not listed under its org, and
        gone after ``seconds`` (the job's lifetime)."""
        with self.redis.pipeline() as pipe:
            pipe.hset(self.keys.api_key_key(key_id), mapping=record)
            pipe.expire(self.keys.api_key_key(key_id), int(seconds) + 1)
            pipe.execute()

    def key(self, key_id: str) -> dict[str, str]:
        """The record of key ``key_id`` (empty if there is none)."""
        return self.redis.hgetall(self.keys.api_key_key(key_id))

    def org_keys(self, org: str) -> dict[str, dict[str, str]]:
        """The records of the org's live keys, by id."""
        found = {key_id: self.key(key_id) for key_id in self.redis.smembers(self.keys.api_org_keys_key(org))}
        return {key_id: record for key_id, record in found.items() if record}

    def delete_key(self, key_id: str) -> bool:
        """Delete a key's record and its org's mention of it; False if there was none."""
        org = self.redis.hget(self.keys.api_key_key(key_id), "org")
        if org is None:
            return False
        with self.redis.pipeline() as pipe:
            pipe.delete(self.keys.api_key_key(key_id))
            pipe.srem(self.keys.api_org_keys_key(org), key_id)
            pipe.execute()
        return True

    def add_token(self, digest: str, key_id: str, seconds: int) -> None:
        """Remember an access token (by its SHA-256) for ``seconds``, as key ``key_id``'s."""
        self.redis.set(self.keys.api_token_key(digest), key_id, ex=seconds)

    def authenticate(self, digest: str, key_id: str, window: int,
                     window_seconds: int) -> tuple[str, int, str | None] | None:
        """For a live token of a live key: its org, the requests counted in ``window``
        (this one included) and, for a job's own key, its job; ``None`` otherwise. One
        round trip; only a valid token counts."""
        keys = [self.keys.api_token_key(digest), self.keys.api_key_key(key_id), self.keys.api_rate_key(key_id, window)]
        answer = self._authenticate(keys=keys, args=[key_id, window_seconds + 1])
        return (answer[1], int(answer[2]), answer[3] or None) if answer[0] else None

    def authenticate_read(self, digest: str, key_id: str, window: int, window_seconds: int, allowed: int,
                          job_id: str) -> tuple[str, int, str | None, dict[str, str], dict[str, str]] | None:
        """:meth:`authenticate`, and in the same round trip the job's record and metric
        series (``HGETALL`` each, as ``store.get`` and ``store.metric_series.read`` read
        them) — empty unless the count is within ``allowed``, the job is the key's org's
        and, for a job's own key, is its job. ``GET /v1/jobs/{id}`` costs one round trip."""
        keys = [self.keys.api_token_key(digest), self.keys.api_key_key(key_id), self.keys.api_rate_key(key_id, window),
                self.keys.job_key(job_id), self.keys.metric_series_key(job_id)]
        answer = self._authenticate_read(keys=keys, args=[key_id, window_seconds + 1, job_id, allowed])
        if not answer[0]:
            return None
        return answer[1], int(answer[2]), answer[3] or None, _pairs(answer[4]), _pairs(answer[5])

    def count_request(self, key_id: str, window: int, window_seconds: int) -> int:
        """Count one request of the key in ``window``; returns the window's count."""
        key = self.keys.api_rate_key(key_id, window)
        with self.redis.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, window_seconds + 1)
            count, _ = pipe.execute()
        return int(count)

    def link_secret(self, candidate: str) -> str:
        """The shared link secret: ``candidate`` if none was set yet (``SET NX``), else the
        one an earlier process set."""
        key = self.keys.api_link_secret_key()
        self.redis.set(key, candidate, nx=True)
        return self.redis.get(key)  # type: ignore[return-value]


def _pairs(flat: list[str]) -> dict[str, str]:
    """A flat ``[field, value, ...]`` (a script's ``HGETALL``) as the dict ``HGETALL`` gives."""
    return dict(zip(flat[::2], flat[1::2]))
