"""The one small interface every source and destination backend implements."""

from __future__ import annotations

from typing import BinaryIO, Protocol

__all__ = ["Storage"]


class Storage(Protocol):
    """A URI scheme's backend. Every method raises :class:`SourceError` naming the URI."""

    schemes: tuple[str, ...]

    def open_read(self, uri: str) -> BinaryIO:
        """A binary stream of the whole object, read lazily (never all in memory)."""

    def read_range(self, uri: str, start: int, end: int) -> bytes:
        """Bytes ``start`` (inclusive) to ``end`` (exclusive)."""

    def size(self, uri: str) -> int:
        """The object's size in bytes."""

    def list(self, uri: str) -> list[str]:
        """URIs of the objects under a prefix or directory, sorted."""

    def open_write(self, uri: str) -> BinaryIO:
        """A binary stream whose content becomes the object when closed without error."""
