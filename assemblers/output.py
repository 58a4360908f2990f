"""Writing an assembler's output to the job's destination, the same way for every
built-in: a destination ending in ``/`` is a prefix and the output goes under it as
``result.json`` (JSON outputs) or ``result.txt`` (``concat``)."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["JSON_NAME", "TEXT_NAME", "wants_output", "target", "write_json"]

JSON_NAME, TEXT_NAME = "result.json", "result.txt"


def wants_output(ctx: Any) -> bool:
    """Whether the job has a destination to write (not ``bypass:``)."""
    return ctx.destination is not None and not ctx.destination.is_bypass


def target(ctx: Any, name: str) -> Any:
    """The destination object to write: the destination itself, or ``name`` under a prefix."""
    return ctx.destination.object(name)


def write_json(ctx: Any, value: Any) -> str:
    """Write ``value`` as JSON to the destination (``result.json`` under a prefix);
    returns the URI written."""
    destination = target(ctx, JSON_NAME)
    with destination.open() as out:
        out.write(json.dumps(value, indent=2).encode() + b"\n")
    return destination.uri
