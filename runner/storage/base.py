"""The one small interface every source and destination backend implements."""

from __future__ import annotations

from typing import BinaryIO, Protocol
from urllib.parse import urlparse, urlunparse

__all__ = ["Storage", "safe_uri"]


def safe_uri(uri: str) -> str:
    """``uri`` with any user:password removed, fit for messages and logs."""
    parsed = urlparse(uri)
    if parsed.username is None and parsed.password is None:
        return uri
    host = parsed.hostname or ""
    netloc = f"{host}:{parsed.port}" if parsed.port else host
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
