"""A job's own API key: what the process of an attached job presents (Brevetti's
``apiKey``), scoped to that one job.

It has an org key's form and record (``rk_<id>_<secret>``, an argon2 hash under
``P:api:key:{id}``) plus the job's id, so it is exchanged for a token at the same
``POST /v1/auth/access_token``; every request with that token may touch only that job
(``runner/api/deps.py``). It is shown once, at creation, is not listed among the org's
keys, and expires with the job's keys.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING

from argon2 import PasswordHasher

if TYPE_CHECKING:
    from runner.store import StatusStore

__all__ = ["create_job_key"]

KEY_PREFIX = "rk"  # the same form as an org key (runner/api/keys.py)


def create_job_key(store: "StatusStore", org: str, job_id: str, lifetime: float) -> tuple[str, str]:
    """A new key for ``job_id`` of ``org``, living ``lifetime`` seconds: ``(id, key)``;
    only its hash is stored."""
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    record = {"org": org, "job": job_id, "hash": PasswordHasher().hash(key), "created_at": f"{time.time():.3f}"}
    store.api_keys.add_job_key(key_id, record, lifetime)
    return key_id, key
