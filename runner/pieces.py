"""Pieces by reference: one protocol for every piece that is not carried inline.

A partitioner yields either the piece itself (any JSON value: it is stored once in the
status store) or a :class:`PieceRef` — where the piece's data lives (a URI, optionally a
byte range) and what the app should receive. The worker resolves every reference the same
way just before calling the app, so gigabytes never pass through the partitioner's memory,
the store or the broker, and the worker core needs to know no partitioner.

What the app receives (``as_``):

- ``"location"``: the reference itself as a plain dict (``{"uri"}``, or ``{"uri", "start",
  "end"}`` for a range); the app reads it when and how it likes (``ctx.read_range``,
  ``ctx.open``, ``ctx.read``). ``bytes`` and ``objects`` pieces are of this kind.
- ``"bytes"``: the range's (or the whole object's) bytes.
- ``"text"``: those bytes decoded with ``encoding`` — how ``lines`` passes large sources.

Stored form: ``{"$piece": {...}}``, a single-key dict no ordinary piece is likely to be.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from runner.storage import Storages

__all__ = ["PieceRef", "to_stored", "resolve"]

MARKER = "$piece"


@dataclass(frozen=True)
class PieceRef:
    """A piece whose data lives at ``uri`` (bytes ``start``..``end``, end exclusive, when a
    range); ``as_`` says what the app receives: ``location``, ``bytes`` or ``text``."""

    uri: str
    start: int | None = None
    end: int | None = None
    as_: Literal["location", "bytes", "text"] = "location"
    encoding: str = "utf-8"

    def location(self) -> dict[str, Any]:
        """The plain ``{"uri"[, "start", "end"]}`` dict an app reads itself."""
        if self.start is None or self.end is None:
            return {"uri": self.uri}
        return {"uri": self.uri, "start": self.start, "end": self.end}

    def read(self, storages: Storages) -> bytes:
        if self.start is None or self.end is None:
            backend = storages.backend(self.uri)
            with backend.open_read(self.uri) as stream:
                return stream.read()
        return storages.read_range(self.location())


def to_stored(piece: Any) -> Any:
    """The JSON form of a piece as the store keeps it."""
    if isinstance(piece, PieceRef):
        return {MARKER: asdict(piece)}
    return piece


def resolve(piece: Any, storages: Storages) -> Any:
    """What the app receives for a stored piece: the piece itself, or its reference
    resolved (see the module docstring)."""
    if type(piece) is not dict or MARKER not in piece:
        return piece
    ref = PieceRef(**piece[MARKER])
    if ref.as_ == "location":
        return ref.location()
    data = ref.read(storages)
    return data.decode(ref.encoding) if ref.as_ == "text" else data
