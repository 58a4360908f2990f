"""The one small interface every source and destination backend implements."""

from __future__ import annotations

import io
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlparse, urlunparse

__all__ = ["Storage", "AtomicWriter", "safe_uri", "redact_url"]


def safe_uri(uri: str) -> str:
    """``uri`` with any user:password removed, fit for messages and logs."""
    parsed = urlparse(uri)
    if parsed.username is None and parsed.password is None:
        return uri
    host = parsed.hostname or ""
    netloc = f"{host}:{parsed.port}" if parsed.port else host
    return urlunparse(parsed._replace(netloc=netloc))


def redact_url(url: str) -> str:
    """``url`` with its password shown as ``***`` (``redis://:***@host:6379/0``); a lone
    user part (often a token) becomes ``***`` too."""
    try:
        parsed = urlparse(url)
        if parsed.password is None and parsed.username is None:
            return url
        user = "***" if parsed.password is None else f"{parsed.username or ''}:***"
        host = parsed.hostname or ""
        netloc = f"{user}@{host}" + (f":{parsed.port}" if parsed.port else "")
    except ValueError:  # an unparsable port: hide everything between :// and @
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rpartition('@')[2]}" if "@" in rest else url
    return urlunparse(parsed._replace(netloc=netloc))


class Storage(Protocol):
    """A URI scheme's backend. Every method raises :class:`SourceError` naming the URI
    (through :func:`safe_uri`: never with credentials)."""

    def check(self, uri: str) -> None:
        """Raise :class:`SourceError` if ``uri`` is not acceptable (cheap: no I/O needed)."""

    def open_read(self, uri: str) -> BinaryIO:
        """A binary stream of the whole object, read lazily (never all in memory)."""

    def read_range(self, uri: str, start: int, end: int) -> bytes:
        """Bytes ``start`` (inclusive) to ``end`` (exclusive)."""

    def size(self, uri: str) -> int:
        """The object's size in bytes."""

    def list(self, uri: str) -> list[str]:
        """URIs of the objects under a prefix or directory, sorted; ``[uri]`` for one object."""

    def open_write(self, uri: str) -> BinaryIO:
        """A binary stream whose content becomes the object when closed without error;
        closed after an error (used as a context manager), nothing is left behind."""

    def delete(self, uri: str) -> None:
        """Remove one object (no error if it is already gone); used to delete a job's artifacts."""


class AtomicWriter(io.RawIOBase):
    """A destination stream whose content becomes the object only on a clean ``close()``.

    Leaving a ``with`` block by an exception aborts instead, and so does garbage
    collection of a writer nobody closed: a half-written output is never published.
    Subclasses implement ``_write``, ``_commit`` and ``_abort``. Being a real
    ``io.RawIOBase``, it works under ``io.TextIOWrapper``, ``csv`` and ``shutil``.
    """

    def __init__(self, uri: str) -> None:
        super().__init__()
        self.uri = uri

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.closed:
            raise ValueError(f"write to closed destination {safe_uri(self.uri)}")
        chunk = bytes(data)
        self._write(chunk)
        return len(chunk)

    def close(self) -> None:
        """Publish the content (once)."""
        if self.closed:
            return
        try:
            self._commit()
        except BaseException:
            self._abort()
            raise
        finally:
            super().close()

    def abort(self) -> None:
        """Discard everything written; nothing is published."""
        if self.closed:
            return
        try:
            self._abort()
        finally:
            super().close()

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        if not self.closed:
            self.abort()

    def _write(self, data: bytes) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _abort(self) -> None:
        raise NotImplementedError
