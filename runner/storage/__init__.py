"""Sources and destinations behind one small interface, chosen by URI scheme.

Partitioners receive a :class:`Source`, assemblers write through a :class:`Destination`;
neither knows which backend is behind the URI, so adding S3 or HTTP touches only this
package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urlparse

from runner.errors import SourceError
from runner.storage.base import Storage
from runner.storage.bypass import BypassStorage
from runner.storage.file import FileStorage

__all__ = ["Storage", "Source", "Destination", "storage_for", "check_uri"]

_BACKENDS: dict[str, Storage] = {}
for _backend in (FileStorage(), BypassStorage()):
    for _scheme in _backend.schemes:
        _BACKENDS[_scheme] = _backend


def _scheme(uri: str) -> str:
    return "bypass" if uri in ("bypass:", "bypass", "") else urlparse(uri).scheme


def storage_for(uri: str) -> Storage:
    """The backend of ``uri``'s scheme; raises :class:`SourceError` for unknown schemes."""
    scheme = _scheme(uri)
    try:
        return _BACKENDS[scheme]
    except KeyError:
        known = ", ".join(f"{s}:" for s in sorted(_BACKENDS))
        raise SourceError(f"unsupported URI scheme {scheme or '(none)'!r} in {uri!r}; supported: {known}") from None


def check_uri(uri: str) -> str:
    """``uri`` normalised (``bypass:`` for none), after checking its scheme is supported."""
    uri = uri or "bypass:"
    storage_for(uri)
    return "bypass:" if _scheme(uri) == "bypass" else uri


@dataclass(frozen=True)
class Source:
    """What a partitioner reads: a URI and the operations its backend offers."""

    uri: str

    @property
    def is_bypass(self) -> bool:
        return _scheme(self.uri) == "bypass"

    def open(self) -> BinaryIO:
        return storage_for(self.uri).open_read(self.uri)

    def size(self) -> int:
        return storage_for(self.uri).size(self.uri)

    def read_range(self, start: int, end: int) -> bytes:
        return storage_for(self.uri).read_range(self.uri, start, end)

    def list(self) -> list[str]:
        return storage_for(self.uri).list(self.uri)


@dataclass(frozen=True)
class Destination:
    """Where an assembler writes its output; ``bypass:`` when the job keeps it in the store."""

    uri: str

    @property
    def is_bypass(self) -> bool:
        return _scheme(self.uri) == "bypass"

    def open(self) -> BinaryIO:
        return storage_for(self.uri).open_write(self.uri)
