"""The dashboard's sessions in the store (``runner/ui/session.py`` says what they are):
each session's record (org, key id, the job of a job's own key, CSRF token) under the
SHA-256 of its cookie, with a lifetime that slides with use.

Loading a session reads its key's record in the same round trip, so the caller can end a
session whose key was revoked at its very next request.
"""

from __future__ import annotations

from runner.store.part import Part

__all__ = ["UiSessions"]


class UiSessions(Part):
    """Session records: open, load (with the key's org and job), drop."""

    def open(self, digest: str, record: dict[str, str], seconds: int) -> None:
        key = self.keys.ui_session_key(digest)
        with self.redis.pipeline() as pipe:
            pipe.hset(key, mapping=record)
            pipe.expire(key, seconds)
            pipe.execute()

    def load(self, digest: str, key_id: str, seconds: int) -> tuple[dict[str, str], str | None, str | None]:
        """The session's record (empty if none), and its key's org and job (``None`` once
        the key is gone); the session's lifetime restarts."""
        key = self.keys.ui_session_key(digest)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(key)
            pipe.hmget(self.keys.api_key_key(key_id), ["org", "job"])
            pipe.expire(key, seconds)
            record, (key_org, key_job), _ = pipe.execute()
        return record, key_org, key_job

    def drop(self, digest: str) -> None:
        self.redis.delete(self.keys.ui_session_key(digest))
