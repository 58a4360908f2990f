"""The attached process's only line to Runner: ``runner api`` over HTTP (httpx) — no
Redis URL, no Celery, so a laptop or a GPU box outside the fleet needs just the API's
URL, the job's id and its key.

The key is exchanged for an access token once, and again when the token expires (a
training run outlives a token). Artifacts are streamed both ways, a chunk at a time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, BinaryIO
from urllib.parse import quote

import httpx

from runner.errors import RunnerError

__all__ = ["AttachApi", "AttachError"]

CHUNK = 1024 * 1024


class AttachError(RunnerError):
    """``runner api`` refused a request of an attached job (the message is the API's)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def _check(answer: httpx.Response) -> httpx.Response:
    if answer.is_success:
        return answer
    try:
        message = answer.json().get("message") or answer.text
    except ValueError:
        message = answer.text
    raise AttachError(f"{answer.request.method} {answer.request.url.path}: {answer.status_code} {message}",
                      answer.status_code)


class AttachApi:
    """Calls ``runner api`` at ``url`` for job ``job_id`` with its ``api_key``."""

    def __init__(self, url: str, job_id: str, api_key: str, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.job_id = job_id
        self._key = api_key
        self.http = httpx.Client(base_url=self.url, timeout=timeout)
        self._login()

    def _login(self) -> None:
        try:
            answer = self.http.post("/v1/auth/access_token", json={"apiKey": self._key})
        except httpx.HTTPError as exc:
            raise AttachError(f"cannot reach runner api at {self.url} ({exc}); set RUNNER_API_URL or host=") from None
        body = _check(answer).json()
        self.http.headers["Authorization"] = f"Bearer {body['token']}"
        self._renew_at = time.monotonic() + 0.8 * float(body.get("expiresIn") or 3600)

    def _fresh(self) -> None:
        """Renew the token before it expires: a streamed upload cannot be sent twice."""
        if time.monotonic() >= self._renew_at:
            self._login()

    def _path(self, tail: str = "") -> str:
        return f"/v1/jobs/{quote(self.job_id, safe='')}{tail}"

    def call(self, method: str, tail: str = "", **kwargs: Any) -> httpx.Response:
        """One request about the job; a token that expired is renewed once."""
        self._fresh()
        answer = self.http.request(method, self._path(tail), **kwargs)
        if answer.status_code == 401:
            self._login()
            answer = self.http.request(method, self._path(tail), **kwargs)
        return _check(answer)

    # -- the job ------------------------------------------------------------------------
    def job(self) -> dict[str, Any]:
        return self.call("GET").json()

    def start(self, host: str, pid: int) -> dict[str, Any]:
        return self.call("POST", "/start", json={"host": host, "pid": pid}).json()

    def heartbeat(self) -> str:
        return self.call("POST", "/heartbeat").json()["state"]

    def metrics(self, items: list[dict[str, Any]]) -> int:
        return self.call("POST", "/metrics", json=items).json()["added"]

    def complete(self, model: str | None) -> dict[str, Any]:
        return self.call("POST", "/complete", json={"model": model} if model else {}).json()

    def fail(self, message: str, kind: str | None, traceback: str | None) -> dict[str, Any]:
        return self.call("POST", "/fail", json={"error": message or kind or "failed", "type": kind,
                                                 "traceback": traceback}).json()

    # -- artifacts ----------------------------------------------------------------------
    def put_artifact(self, name: str, data: bytes | BinaryIO) -> int:
        """Upload ``data`` (bytes, or a binary file read a chunk at a time) as artifact
        ``name``; returns its size."""
        if isinstance(data, (bytes, bytearray)):
            return self.call("PUT", f"/artifacts/{quote(name)}", content=bytes(data)).json()["bytes"]
        size = _remaining(data)
        headers = {"Content-Length": str(size)} if size is not None else {}
        answer = self.call("PUT", f"/artifacts/{quote(name)}", content=_read_chunks(data), headers=headers)
        return answer.json()["bytes"]

    def get_artifact(self, name: str, out: BinaryIO) -> int:
        """Download artifact ``name`` into ``out``, a chunk at a time; returns its size."""
        size = 0
        self._fresh()
        for attempt in (1, 2):
            with self.http.stream("GET", self._path(f"/artifacts/{quote(name)}")) as answer:
                if answer.status_code == 401 and attempt == 1:
                    self._login()
                    continue
                if not answer.is_success:
                    answer.read()
                    _check(answer)
                for chunk in answer.iter_bytes(CHUNK):
                    out.write(chunk)
                    size += len(chunk)
                return size
        return size

    def close(self) -> None:
        self.http.close()


def _remaining(stream: BinaryIO) -> int | None:
    """Bytes left in a seekable file (so the API can refuse an oversized one at once)."""
    try:
        here = stream.tell()
        end = stream.seek(0, 2)
        stream.seek(here)
        return end - here
    except (OSError, AttributeError, ValueError):
        return None


def _read_chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk
