"""``json_list``: the results as one JSON list, in piece order."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from runner.registry import assembler


@assembler("json_list")
def json_list(results: Iterable[Any], ctx) -> Any:
    """Returns the list; with a destination, streams it there as a JSON array and
    returns ``{"destination", "bytes", "pieces"}`` instead."""
    if ctx.destination is None or ctx.destination.is_bypass:
        return list(results)
    written = pieces = 0
    with ctx.destination.open() as out:
        out.write(b"[")
        for index, result in enumerate(results):
            data = ((b"," if index else b"") + json.dumps(result, separators=(",", ":")).encode())
            out.write(data)
            written += len(data)
            pieces += 1
        out.write(b"]\n")
    return {"destination": ctx.destination.uri, "bytes": written + 3, "pieces": pieces}
