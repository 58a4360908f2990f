"""``http://`` and ``https://`` sources: read-only, streamed, never fully in memory.

A job's source URL is chosen by whoever submits the job, yet it is fetched by a worker
inside the operator's network. On a cloud VM that makes it a server-side request forgery
risk: ``http://169.254.169.254/latest/meta-data/`` hands out the instance's credentials.
So before every connection — the first one *and* every redirect hop, which is why
redirects are followed here rather than by httpx — the host is resolved and refused if
any of its addresses is link-local or a cloud metadata endpoint (IPv4 169.254.0.0/16,
IPv6 fe80::/10, AWS's ``fd00:ec2::254``), unless ``RUNNER_URL_ALLOW_LINK_LOCAL=true``.
Loopback and private ranges stay allowed: self-hosted users fetch from their own LAN.

Known limit: the address httpx connects to comes from its own lookup, made just after
ours; a DNS server that answers differently within that instant (DNS rebinding) is not
caught. Literal addresses and ordinary names are.

Requests ask for ``Accept-Encoding: identity`` and bodies are read raw, so the bytes a
partitioner sees are exactly the ones ``size()`` counts and ``Range`` addresses.
"""

from __future__ import annotations

import io
import ipaddress
import socket
from collections.abc import Iterator
from typing import BinaryIO
from urllib.parse import urlparse

import httpx

from runner.config import Settings
from runner.errors import SourceError
from runner.storage.base import safe_uri

__all__ = ["HttpStorage", "MAX_REDIRECTS"]

MAX_REDIRECTS = 5
_SCHEMES = ("http", "https")
_BLOCKED = (
    ipaddress.ip_network("169.254.0.0/16"),  # IPv4 link-local; AWS/GCP/Azure/OCI metadata at .169.254
    ipaddress.ip_network("fe80::/10"),  # IPv6 link-local
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS metadata over IPv6
)
_ALLOW_HINT = "set RUNNER_URL_ALLOW_LINK_LOCAL=true to allow it"
_CHUNK = 64 * 1024


def _blocked(address: str) -> bool:
    """Whether ``address`` (as getaddrinfo gives it) is link-local or a metadata endpoint.
    IPv4-mapped IPv6 (``::ffff:169.254.169.254``) is judged by its IPv4 address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id (fe80::1%eth0)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in _BLOCKED)


def _scrub(text: str, uri: str) -> str:
    """``text`` with ``uri``'s password masked: exception texts are not ours to trust."""
    password = urlparse(uri).password
    return text.replace(password, "***") if password else text


class _ResponseStream(io.RawIOBase):
    """A raw binary stream over a streamed response; closing it closes the response and
    its client. Wrapped in :class:`io.BufferedReader`, so ``io.TextIOWrapper`` works."""

    def __init__(self, uri: str, client: httpx.Client, response: httpx.Response) -> None:
        super().__init__()
        self._uri = uri
        self._client = client
        self._response = response
        self._chunks: Iterator[bytes] = response.iter_raw(_CHUNK)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
            except httpx.HTTPError as exc:
                raise SourceError(f"reading {safe_uri(self._uri)} failed: {_scrub(str(exc), self._uri)}") from None
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def close(self) -> None:
        if not self.closed:
            try:
                self._response.close()
            finally:
                self._client.close()
        super().close()


class HttpStorage:
    """Read-only http(s) sources, guarded against link-local and metadata addresses."""

    def __init__(self, settings: Settings) -> None:
        self.timeout = settings.http_timeout
        self.allow_link_local = settings.url_allow_link_local

    # -- checks -----------------------------------------------------------------------

    def check(self, uri: str) -> None:
        """The URI's form, and a literal link-local host, without any network I/O."""
        self._check(uri, via="")

    def _check(self, uri: str, via: str) -> None:
        """:meth:`check`, with ``via`` saying which URL redirected here. ``AI_NUMERICHOST``
        parses every numeric spelling (``2852039166``, ``0xa9fea9fe``) the way the
        connection would, yet never asks DNS."""
        host = self._host(uri)
        if self.allow_link_local:
            return
        try:
            infos = socket.getaddrinfo(host.split("%", 1)[0], None, flags=socket.AI_NUMERICHOST)
        except (socket.gaierror, UnicodeError):
            return  # a name: it is resolved and checked before each connection
        for info in infos:
            if _blocked(str(info[4][0])):
                raise SourceError(f"refusing {safe_uri(uri)}{via}: {host} is a link-local / cloud-metadata "
                                  f"address; {_ALLOW_HINT}")

    def _host(self, uri: str) -> str:
        """``uri``'s host, after checking it is an http(s) URL with one."""
        parsed = urlparse(uri)
        if parsed.scheme not in _SCHEMES:
            raise SourceError(f"{safe_uri(uri)} is not an http:// or https:// URL")
        try:
            parsed.port  # noqa: B018  (raises on a bad port)
        except ValueError:
            raise SourceError(f"{safe_uri(uri)} has an invalid port") from None
        if not parsed.hostname:
            raise SourceError(f"{safe_uri(uri)} names no host; use e.g. https://example.com/data.txt")
        return parsed.hostname

    def _guard(self, url: str, origin: str) -> None:
        """Resolve ``url``'s host and refuse it if any address is link-local / metadata.
        Every address is checked, not just the first: the connection may use any."""
        via = "" if url == origin else f" (redirected from {safe_uri(origin)})"
        self._check(url, via)
        if self.allow_link_local:
            return
        host = self._host(url)
        port = urlparse(url).port or (443 if url.lower().startswith("https:") else 80)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise SourceError(f"cannot resolve host {host!r} of {safe_uri(url)}{via}: {reason}") from None
        for info in infos:
            address = str(info[4][0])
            if _blocked(address):
                raise SourceError(f"refusing {safe_uri(url)}{via}: {host} resolves to {address}, a link-local / "
                                  f"cloud-metadata address; {_ALLOW_HINT}")

    # -- requests ---------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        return httpx.Client(timeout=self.timeout, follow_redirects=False,
                            headers={"Accept-Encoding": "identity"})

    def _send(self, client: httpx.Client, method: str, uri: str, headers: dict[str, str] | None = None,
              ok: tuple[int, ...] = ()) -> httpx.Response:
        """A streamed response to ``method uri``, redirects followed by hand so each hop is
        guarded; error statuses (other than those in ``ok``) raise :class:`SourceError`."""
        url = uri
        for _hop in range(MAX_REDIRECTS + 1):
            self._guard(url, uri)
            try:
                response = client.send(client.build_request(method, url, headers=headers), stream=True)
            except httpx.TimeoutException:
                raise SourceError(f"{safe_uri(url)} timed out after {self.timeout:g}s "
                                  f"(RUNNER_HTTP_TIMEOUT)") from None
            except httpx.HTTPError as exc:
                raise SourceError(f"cannot reach {safe_uri(url)}: {_scrub(str(exc), url)}") from None
            if not response.is_redirect:
                if response.status_code >= 400 and response.status_code not in ok:
                    response.close()
                    raise SourceError(self._status_message(url, response.status_code))
                return response
            location = response.headers["Location"]
            response.close()
            url = str(response.url.join(location))
            if urlparse(url).scheme not in _SCHEMES:
                raise SourceError(f"{safe_uri(uri)} redirects to a non-http(s) URL {safe_uri(url)}")
        raise SourceError(f"{safe_uri(uri)} redirected more than {MAX_REDIRECTS} times")

    @staticmethod
    def _status_message(url: str, status: int) -> str:
        if status == 404:
            return f"source {safe_uri(url)} does not exist (HTTP 404)"
        if status in (401, 403):
            return f"access denied to {safe_uri(url)} (HTTP {status})"
        return f"cannot read {safe_uri(url)}: the server answered HTTP {status}"

    # -- the Storage protocol ---------------------------------------------------------

    def open_read(self, uri: str) -> BinaryIO:
        client = self._client()
        try:
            response = self._send(client, "GET", uri)
        except BaseException:
            client.close()
            raise
        return io.BufferedReader(_ResponseStream(uri, client, response), _CHUNK)  # type: ignore[return-value]

    def size(self, uri: str) -> int:
        """Content-Length of a HEAD. Servers that refuse HEAD (405/501) or sign URLs for GET
        only (a presigned object-store URL answers HEAD with 403) are asked by a GET whose
        body is never read."""
        with self._client() as client:
            response = self._send(client, "HEAD", uri, ok=(403, 405, 501))
            response.close()
            if response.status_code >= 400:
                response = self._send(client, "GET", uri)
                response.close()
            length = response.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise SourceError(f"the server of {safe_uri(uri)} gives no size (no Content-Length), so `bytes` pieces "
                              f"cannot be planned; use a streaming partitioner such as `lines`")
        return int(length)

    def read_range(self, uri: str, start: int, end: int) -> bytes:
        """Bytes ``start``..``end`` by a ``Range`` request. A server that ignores ranges (200)
        is read as a stream: the bytes before ``start`` are skipped, reading stops at ``end``
        and the connection is closed — correct, but each piece then downloads its prefix.
        A range past the end (416) is ``b""``, as for a file."""
        if end <= start:
            return b""
        with self._client() as client:
            response = self._send(client, "GET", uri, headers={"Range": f"bytes={start}-{end - 1}"}, ok=(416,))
            try:
                if response.status_code == 416:
                    return b""
                skip = start
                if response.status_code == 206:
                    skip = 0
                    first = response.headers.get("Content-Range", "").removeprefix("bytes ").split("-", 1)[0]
                    if first != str(start):
                        raise SourceError(f"{safe_uri(uri)} answered the range {start}-{end - 1} with "
                                          f"{response.headers.get('Content-Range')!r}")
                return self._take(uri, response, skip, end - start)
            finally:
                response.close()

    @staticmethod
    def _take(uri: str, response: httpx.Response, skip: int, count: int) -> bytes:
        """``count`` bytes after the first ``skip`` of ``response``'s body, reading no further."""
        out = bytearray()
        try:
            for chunk in response.iter_raw(_CHUNK):
                if skip >= len(chunk):
                    skip -= len(chunk)
                    continue
                out += chunk[skip:skip + count - len(out)]
                skip = 0
                if len(out) >= count:
                    break
        except httpx.HTTPError as exc:
            raise SourceError(f"reading {safe_uri(uri)} failed: {_scrub(str(exc), uri)}") from None
        return bytes(out)

    def list(self, uri: str) -> list[str]:
        """One URL is one object: http has no listing."""
        self.check(uri)
        return [uri]

    def open_write(self, uri: str) -> BinaryIO:
        raise SourceError(f"http(s) URIs cannot be destinations: {safe_uri(uri)}; write to file:// or s3:// instead")
