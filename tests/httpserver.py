"""A real HTTP server for the http(s) source tests: files from a directory on 127.0.0.1,
with byte ranges, plus the misbehaving routes a source must cope with.

Routes (``/name`` serves ``root/name``):

- ``GET``/``HEAD /<file>`` — the file; ``Range: bytes=a-b`` (or ``a-``) answers 206 with
  ``Content-Range``, a range past the end 416, a missing file 404.
- ``/norange/<file>`` — the file, always 200 with the whole body (ignores ``Range``);
  ``ignore_range=True`` makes every file route behave so.
- ``/nolength/<file>`` — the file without ``Content-Length`` (body ends at close).
- ``/redirect?to=<url>`` — 302 to ``url``; ``/loop`` — 302 to itself, forever.
- ``/forbidden...`` — always 403.

Every request is recorded (method, path, Range header) so a test can assert how a file
was fetched. HTTP/1.0: one request per connection, so stopping never waits on keep-alive.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

from runner.local import free_port

__all__ = ["LocalHttpServer", "Recorded", "http_server"]

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclass(frozen=True)
class Recorded:
    """One request the server received."""

    method: str
    path: str
    range: str | None


@dataclass
class LocalHttpServer:
    """What :func:`http_server` yields: where it listens and what it was asked."""

    root: Path
    url: str
    ignore_range: bool = False
    _requests: list[Recorded] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url_for(self, path: str) -> str:
        return f"{self.url}/{path.lstrip('/')}"

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def record(self, request: Recorded) -> None:
        with self._lock:
            self._requests.append(request)


class _Handler(BaseHTTPRequestHandler):
    state: LocalHttpServer  # set on the per-server subclass

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet: the recorded requests are what tests look at."""

    def do_HEAD(self) -> None:
        self._handle(body=False)

    def do_GET(self) -> None:
        self._handle(body=True)

    def _handle(self, body: bool) -> None:
        self.state.record(Recorded(self.command, self.path, self.headers.get("Range")))
        try:
            self._route(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading early, as a range fallback does

    def _route(self, body: bool) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        if path == "/redirect":
            return self._redirect(parse_qs(parts.query).get("to", ["/"])[0])
        if path == "/loop":
            return self._redirect("/loop")
        if path.startswith("/forbidden"):
            return self._empty(403)
        ignore_range, send_length = self.state.ignore_range, True
        if path.startswith("/norange/"):
            path, ignore_range = path.removeprefix("/norange"), True
        elif path.startswith("/nolength/"):
            path, ignore_range, send_length = path.removeprefix("/nolength"), True, False
        file = (self.state.root / path.lstrip("/")).resolve()
        if not file.is_relative_to(self.state.root) or not file.is_file():
            return self._empty(404)
        self._file(file, body, ignore_range, send_length)

    def _file(self, file: Path, body: bool, ignore_range: bool, send_length: bool) -> None:
        size = file.stat().st_size
        start, end = 0, size  # end exclusive
        match = _RANGE.match(self.headers.get("Range", "")) if not ignore_range else None
        if match:
            start = int(match.group(1))
            end = min(size, int(match.group(2)) + 1) if match.group(2) else size
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if send_length:
            self.send_header("Content-Length", str(end - start))
        self.end_headers()
        if body:
            with file.open("rb") as stream:
                stream.seek(start)
                _copy(stream, self.wfile, end - start)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _copy(source: BinaryIO, target: BinaryIO, count: int) -> None:
    """Copy ``count`` bytes in chunks, so a multi-MB file is never one write."""
    while count > 0:
        chunk = source.read(min(count, 64 * 1024))
        if not chunk:
            return
        target.write(chunk)
        count -= len(chunk)


@contextmanager
def http_server(root: Path, ignore_range: bool = False) -> Iterator[LocalHttpServer]:
    """Serve ``root`` on ``http://127.0.0.1:<free port>`` from a background thread."""
    for attempt in range(5):  # free_port's port may be taken before we bind it
        port = free_port()
        state = LocalHttpServer(root=root.resolve(), url=f"http://127.0.0.1:{port}", ignore_range=ignore_range)
        handler = type("Handler", (_Handler,), {"state": state})
        try:
            server = ThreadingHTTPServer(("127.0.0.1", port), handler)
            break
        except OSError:
            if attempt == 4:
                raise
    thread = threading.Thread(target=server.serve_forever, name=f"http-server-{port}", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

