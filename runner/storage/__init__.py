"""Sources and destinations behind one small interface, chosen by URI scheme.

Partitioners receive a :class:`Source`, assemblers write through a :class:`Destination`;
neither knows which backend is behind the URI, so adding a scheme touches only this
package. :class:`Storages` builds each backend once per configuration, on first use
(so a worker that never sees ``s3://`` never imports boto3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urlparse

from runner.config import Settings
from runner.errors import SourceError
from runner.storage.base import Storage, redact_url, safe_uri
from runner.storage.bypass import BypassStorage
from runner.storage.file import FileStorage

__all__ = ["Storage", "Storages", "Source", "Destination", "scheme_of", "safe_uri", "redact_url"]


def _s3(settings: Settings) -> Storage:
    from runner.storage.s3 import S3Storage

    return S3Storage(settings)


def _http(settings: Settings) -> Storage:
    from runner.storage.http import HttpStorage

    return HttpStorage(settings)


_FACTORIES: dict[str, Callable[[Settings], Storage]] = {
    "file": lambda settings: FileStorage(settings.allowed_roots),
    "bypass": lambda settings: BypassStorage(),
    "s3": _s3,
    "http": _http,
    "https": _http,
}


def scheme_of(uri: str) -> str:
    """``uri``'s scheme, with ``""`` and ``bypass`` meaning no data (``bypass``)."""
    return "bypass" if uri in ("bypass:", "bypass", "") else urlparse(uri).scheme


class Storages:
    """The storage backends of one configuration, keyed by URI scheme."""

    def __init__(self, settings: Settings, process: str | None = None) -> None:
        self.settings = settings
        self.process = process  # who refuses a file outside the roots: "worker NAME" on the worker side
        self._backends: dict[str, Storage] = {}

    def backend(self, uri: str) -> Storage:
        """The backend of ``uri``'s scheme; raises :class:`SourceError` for unknown schemes."""
        scheme = scheme_of(uri)
        if scheme not in _FACTORIES:
            known = ", ".join(f"{s}:" for s in sorted(_FACTORIES))
            raise SourceError(f"unsupported URI scheme {scheme or '(none)'!r} in {safe_uri(uri)!r}; supported: {known}")
        if scheme not in self._backends:
            made = _FACTORIES[scheme](self.settings)
            if isinstance(made, FileStorage):
                made.process = self.process
            self._backends[scheme] = made
        return self._backends[scheme]

    def check(self, uri: str | None) -> str:
        """``uri`` normalised (``bypass:`` for none) after checking it is acceptable here
        (scheme known, file paths inside ``RUNNER_FILE_ROOTS``, no credentials in it)."""
        uri = uri or "bypass:"
        if scheme_of(uri) == "bypass":
            return "bypass:"
        if urlparse(uri).password:
            raise SourceError(f"{safe_uri(uri)!r} carries credentials; configure them in settings, never in a URI")
        self.backend(uri).check(uri)
        return uri

    def source(self, uri: str) -> "Source":
        return Source(uri, self.backend(uri))

    def destination(self, uri: str) -> "Destination":
        return Destination(uri, self.backend(uri))

    def read_range(self, piece: dict) -> bytes:
        """The bytes of a range piece ``{"uri", "start", "end"}``."""
        return self.backend(piece["uri"]).read_range(piece["uri"], int(piece["start"]), int(piece["end"]))


@dataclass(frozen=True)
class Source:
    """What a partitioner reads: a URI and the operations its backend offers."""

    uri: str
    storage: Storage

    @property
    def is_bypass(self) -> bool:
        return scheme_of(self.uri) == "bypass"

    def open(self) -> BinaryIO:
        """A stream of the whole object, read lazily."""
        return self.storage.open_read(self.uri)

    def size(self) -> int:
        return self.storage.size(self.uri)

    def read_range(self, start: int, end: int) -> bytes:
        return self.storage.read_range(self.uri, start, end)

    def list(self) -> list[str]:
        """URIs of the objects under this prefix or directory (itself, if one object)."""
        return self.storage.list(self.uri)


@dataclass(frozen=True)
class Destination:
    """Where an assembler writes its output; ``bypass:`` when the job keeps it in the store."""

    uri: str
    storage: Storage

    @property
    def is_bypass(self) -> bool:
        return scheme_of(self.uri) == "bypass"

    @property
    def is_prefix(self) -> bool:
        """A URI ending in ``/`` (``s3://bucket/out/``, ``file:///dir/``) names a place, not an object."""
        return self.uri.endswith("/")

    def object(self, name: str) -> "Destination":
        """The object to write: this one, or ``name`` under it when this is a prefix."""
        return Destination(self.uri + name, self.storage) if self.is_prefix else self

    def open(self) -> BinaryIO:
        """A stream whose content becomes the object when closed without error."""
        return self.storage.open_write(self.uri)
