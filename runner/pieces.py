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

Generated pieces: a partitioner whose pieces follow from their index may *describe* them
instead of yielding them — it returns a ``range`` (piece ``i`` is ``r[i]``) or a
:class:`Generated` (``count`` pieces, piece ``i`` is ``piece(i)``, or ``i`` itself). The
store then keeps only that description (a few bytes, whatever the count), and each batch
computes its own pieces: a ten-million-piece job stores no pieces at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from runner.storage import Storages

__all__ = ["PieceRef", "Generated", "to_stored", "resolve", "describe", "generate"]

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
    if type(piece) is PieceRef:  # a generated piece may be a reference too
        ref = piece
    elif type(piece) is not dict or MARKER not in piece:
        return piece
    else:
        ref = PieceRef(**piece[MARKER])
    if ref.as_ == "location":
        return ref.location()
    data = ref.read(storages)
    return data.decode(ref.encoding) if ref.as_ == "text" else data


@dataclass(frozen=True)
class Generated:
    """Pieces ``0 … count-1`` described, not listed: piece ``i`` is ``piece(i)`` (``i``
    itself without a function; a :class:`PieceRef` is resolved as a yielded one would be).
    Return one from a partitioner instead of yielding pieces::

        @partitioner("seeds", params=SeedParams)
        def seeds(source, ctx):
            return Generated(ctx.params.count, piece=lambda i: {"seed": ctx.params.first + i})

    Only ``count`` is stored. With a ``piece`` function, each worker process calls the
    partitioner again (once per job) to get it, so such a partitioner must be cheap and
    deterministic: it describes its pieces, it does not read the source to find them.
    Raises :class:`ValueError` for a negative count.
    """

    count: int
    piece: Callable[[int], Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.count, int) or isinstance(self.count, bool) or self.count < 0:
            raise ValueError(f"Generated(count={self.count!r}): count must be an int >= 0")


def describe(pieces: Any, limit: int | None = None) -> dict[str, Any] | None:
    """The stored description of generated pieces (``None``: the partitioner yields its
    pieces), at most ``limit`` of them: ``{"count", "first", "step"}`` for a range and a
    function-less :class:`Generated`, ``{"count", "function": true}`` otherwise."""
    if isinstance(pieces, range):
        count = len(pieces)
        first, step = (pieces.start, pieces.step)
    elif isinstance(pieces, Generated):
        count, first, step = pieces.count, 0, 1
    else:
        return None
    if limit is not None:
        count = min(count, limit)
    if isinstance(pieces, Generated) and pieces.piece is not None:
        return {"count": count, "function": True}
    return {"count": count, "first": first, "step": step}


def generate(description: dict[str, Any], start: int, stop: int,
             piece: Callable[[], Callable[[int], Any]]) -> Any:
    """Pieces ``start``..``stop`` of a described job, computed: a ``range`` when they are
    integers, else ``piece()(i)`` for each (``piece`` fetches the function, once)."""
    stop = min(stop, description["count"])
    if not description.get("function"):
        first, step = description["first"], description["step"]
        return range(first + start * step, first + max(start, stop) * step, step)
    fn = piece()
    return map(fn, range(start, stop))
