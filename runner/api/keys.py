"""API keys and access tokens of the HTTP API.

A key (``rk_<id>_<secret>``) belongs to one org (a job's own key, to one job of it:
``runner/job_keys.py``) and is shown once, at creation; the
store keeps only an argon2 hash of it, found by the id inside the key, so a leaked Redis
dump reveals no usable key. A key is exchanged for a short-lived access token
(``rt_<id>_<secret>``, ``RUNNER_API_TOKEN_SECONDS``), whose SHA-256 is stored with a TTL:
tokens are random and long, so a fast hash suffices, and every request checks one in a
single round trip. Revoking a key kills its tokens at once, since each check also reads
the key's record. The org of a request is always its key's.

Kept free of FastAPI so that ``runner keys`` stays light.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from runner.errors import JobNotFound, RunnerError
from runner.models import JobStatus
from runner.store import StatusStore
from runner.store.metric_series import summaries
from runner.store.part import status_of

__all__ = [
    "ApiKeys", "ApiKeyInfo", "Principal", "RateLimit", "Unauthorized", "RateLimited", "check_org",
]

KEY_PREFIX = "rk"
TOKEN_PREFIX = "rt"
_ORG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ID = re.compile(r"^[0-9a-f]{12}$")

class Unauthorized(RunnerError):
    """No token, a malformed, unknown or expired token, or a revoked or wrong key (HTTP 401)."""


class RateLimited(RunnerError):
    """The key made more requests in this window than ``RUNNER_API_RATE_LIMIT`` allows (HTTP 429)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Principal:
    """Who is calling: the org every read and write is scoped to, and the key it used;
    for a job's own key (``runner/job_keys.py``), the one job it may touch."""

    org: str
    key_id: str
    job: str | None = None


@dataclass(frozen=True)
class ApiKeyInfo:
    id: str
    org: str
    created_at: float


@dataclass(frozen=True)
class RateLimit:
    """``requests`` per ``seconds``, counted in fixed windows shared through Redis."""

    requests: int
    seconds: int

    @classmethod
    def parse(cls, spec: str) -> "RateLimit":
        """``"100/second"``, ``"600/minute"``, ``"5000/hour"`` or ``"10/30s"``."""
        count, _, per = spec.partition("/")
        units = {"second": 1, "minute": 60, "hour": 3600}
        seconds = units[per] if per in units else int(per.rstrip("s"))
        return cls(int(count), max(1, seconds))

    def window(self, now: float) -> tuple[int, int]:
        """The current window's number and the whole seconds until the next one."""
        index = int(now // self.seconds)
        return index, max(1, int((index + 1) * self.seconds - now + 0.999))


def check_org(org: str) -> str:
    """``org`` if it is a plain name (it becomes part of Redis keys); else ValueError."""
    if not _ORG.match(org or ""):
        raise ValueError(f"org {org!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return org


def _split(secret: str, prefix: str) -> str | None:
    """The id inside ``rk_<id>_<secret>`` / ``rt_<id>_<secret>``, or None if malformed."""
    head, _, rest = secret.partition("_")
    key_id, _, tail = rest.partition("_")
    return key_id if head == prefix and _ID.match(key_id) and tail else None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class ApiKeys:
    """Create, list and revoke API keys; exchange a key for a token; check tokens."""

    def __init__(self, store: StatusStore, token_seconds: int = 3600) -> None:
        self.records = store.api_keys
        self.token_seconds = token_seconds
        self.hasher = PasswordHasher()

    # -- keys ------------------------------------------------------------------------
    def create(self, org: str) -> tuple[str, str]:
        """A new key of ``org``: returns ``(id, key)``; the key is never stored or shown again."""
        check_org(org)
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        record = {"org": org, "hash": self.hasher.hash(key), "created_at": f"{time.time():.3f}"}
        self.records.add_key(key_id, org, record)
        return key_id, key

    def list(self, org: str) -> list[ApiKeyInfo]:
        """The org's live keys, oldest first (ids and dates only: secrets are not kept)."""
        found = [ApiKeyInfo(key_id, record["org"], float(record["created_at"]))
                 for key_id, record in self.records.org_keys(check_org(org)).items()]
        return sorted(found, key=lambda info: info.created_at)

    def revoke(self, key_id: str) -> bool:
        """Delete a key; its tokens stop working at once. False if there was no such key."""
        return self.records.delete_key(key_id)

    # -- tokens ----------------------------------------------------------------------
    def exchange(self, api_key: str, limit: RateLimit | None = None) -> tuple[str, Principal]:
        """A new access token for a valid key; raises :class:`Unauthorized` otherwise."""
        who = self.verify(api_key, limit)
        token = f"{TOKEN_PREFIX}_{who.key_id}_{secrets.token_urlsafe(32)}"
        self.records.add_token(_sha256(token), who.key_id, self.token_seconds)
        return token, who

    def verify(self, api_key: str, limit: RateLimit | None = None) -> Principal:
        """The principal of a valid key (the dashboard's sign-in); raises :class:`Unauthorized`.

        Every attempt on an existing key id counts against that key's ``limit`` *before*
        the slow hash is checked, so guessing cannot make the server hash without bound.
        """
        key_id = _split(api_key or "", KEY_PREFIX)
        record = self.records.key(key_id) if key_id else {}
        if record and limit is not None:
            self._count(key_id, limit)  # type: ignore[arg-type]
        try:
            if not record or not self.hasher.verify(record["hash"], api_key):
                raise Unauthorized("invalid API key")
        except (VerificationError, InvalidHashError):
            raise Unauthorized("invalid API key") from None
        return Principal(record["org"], key_id, record.get("job") or None)  # type: ignore[arg-type]

    def authenticate(self, token: str, limit: RateLimit | None = None) -> Principal:
        """The principal of a live token, counting the request against its key's limit.

        Raises :class:`Unauthorized` (unknown, expired or malformed token, revoked key)
        or :class:`RateLimited` (with the seconds until the next window).
        """
        key_id, limit, window, retry_after = self._token(token, limit)
        answer = self.records.authenticate(_sha256(token), key_id, window, limit.seconds)
        return self._principal(key_id, answer, limit, retry_after)

    def read_job(self, token: str, limit: RateLimit | None, job_id: str) -> tuple[Principal, JobStatus]:
        """:meth:`authenticate`, and the job as ``GET /v1/jobs/{id}`` shows it (its
        metrics included), in one round trip. Raises what :meth:`authenticate` raises,
        then :class:`JobNotFound` for a job of another org, an expired one, and for a
        job's own key any job but its own."""
        key_id, limit, window, retry_after = self._token(token, limit)
        answer = self.records.authenticate_read(_sha256(token), key_id, window, limit.seconds, limit.requests, job_id)
        who = self._principal(key_id, answer[:3] if answer else None, limit, retry_after)
        if who.job is not None and who.job != job_id:
            raise JobNotFound(f"no job {job_id!r} (it may have expired)")
        status = status_of(job_id, answer[3], who.org)  # type: ignore[index]
        status.metrics = summaries(answer[4])  # type: ignore[index]
        return who, status

    @staticmethod
    def _token(token: str, limit: RateLimit | None) -> tuple[str, RateLimit, int, int]:
        """The key id inside ``token``, the limit, its current window and the seconds to
        the next; raises :class:`Unauthorized` for a malformed token."""
        key_id = _split(token or "", TOKEN_PREFIX)
        if key_id is None:
            raise Unauthorized("malformed access token: get one from POST /v1/auth/access_token")
        limit = limit or RateLimit(1 << 62, 3600)
        window, retry_after = limit.window(time.time())
        return key_id, limit, window, retry_after

    @staticmethod
    def _principal(key_id: str, answer: tuple[str, int, str | None] | None, limit: RateLimit,
                   retry_after: int) -> Principal:
        """The principal of a token check's answer; raises Unauthorized or RateLimited."""
        if answer is None:
            raise Unauthorized("access token expired, unknown or revoked: get a new one from POST /v1/auth/access_token")
        org, count, job = answer
        if count > limit.requests:
            raise RateLimited(f"rate limit of {limit.requests} requests per {limit.seconds}s exceeded", retry_after)
        return Principal(org, key_id, job)

    def _count(self, key_id: str, limit: RateLimit) -> None:
        window, retry_after = limit.window(time.time())
        if self.records.count_request(key_id, window, limit.seconds) > limit.requests:
            raise RateLimited(f"rate limit of {limit.requests} requests per {limit.seconds}s exceeded", retry_after)

    # -- signed links ----------------------------------------------------------------
    def link_secret(self) -> bytes:
        """The HMAC secret for signed result links: made once, kept in Redis, so every API
        process signs and checks links alike."""
        return bytes.fromhex(self.records.link_secret(secrets.token_hex(32)))
