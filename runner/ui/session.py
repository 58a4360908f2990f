"""Dashboard sessions: an API key signs in once, a cookie carries the session after.

A session id is ``<key id>.<secret>``; the store keeps only the SHA-256 of it (a leaked
Redis dump holds no usable cookie), with the org, the key id and the session's CSRF
token, and a lifetime that slides with use (``RUNNER_UI_SESSION_SECONDS``). Every load
also reads the key's own record in the same round trip, so revoking the key
(``runner keys revoke``) ends its sessions at the very next request — the same rule the
API's access tokens follow.

A job's own key (its record names the job) opens a session that sees that job only.

The sign-in form has no session yet, so its CSRF token is a double-submit cookie: the
form's hidden field must equal a cookie that only this origin could have set.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from runner.api.keys import Principal
from runner.store import StatusStore

__all__ = ["Session", "Sessions", "SESSION_COOKIE", "LOGIN_COOKIE", "same_token"]

SESSION_COOKIE = "runner_ui"
LOGIN_COOKIE = "runner_ui_login"
_SID = re.compile(r"^([0-9a-f]{12})\.([A-Za-z0-9_-]{32,64})$")


@dataclass(frozen=True)
class Session:
    """A signed-in browser: the org every page shows, the key it signed in with, and the
    token every form it posts must carry."""

    org: str
    key_id: str
    csrf: str
    digest: str
    job: str | None = None  # a job's own key sees that one job only


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def same_token(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a posted token with the expected one."""
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())  # type: ignore[union-attr]


class Sessions:
    """Open, load (checking the key is still live) and close dashboard sessions."""

    def __init__(self, store: StatusStore, seconds: int) -> None:
        self.store = store
        self.seconds = seconds

    def open(self, who: Principal) -> str:
        """A new session for a verified key; returns the cookie value (shown only to the browser)."""
        sid = f"{who.key_id}.{secrets.token_urlsafe(32)}"
        record = {"org": who.org, "key_id": who.key_id, "csrf": secrets.token_urlsafe(32), "job": who.job or ""}
        self.store.ui_sessions.open(_digest(sid), record, self.seconds)
        return sid

    def load(self, sid: str | None) -> Session | None:
        """The live session of a cookie, or None (unknown, expired, or its key revoked —
        then the session is deleted at once)."""
        match = _SID.match(sid or "")
        if match is None:
            return None
        digest = _digest(sid)  # type: ignore[arg-type]
        record, key_org, key_job = self.store.ui_sessions.load(digest, match.group(1), self.seconds)
        if not record:
            return None
        if (key_org is None or key_org != record.get("org") or record.get("key_id") != match.group(1)
                or (key_job or "") != record.get("job", "")):
            self.store.ui_sessions.drop(digest)  # the key was revoked: its sessions end now
            return None
        return Session(record["org"], record["key_id"], record["csrf"], digest, record.get("job") or None)

    def close(self, sid: str | None) -> None:
        """Sign out: forget the session (the cookie is cleared by the response)."""
        if sid and _SID.match(sid):
            self.store.ui_sessions.drop(_digest(sid))
