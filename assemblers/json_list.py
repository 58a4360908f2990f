"""``json_list``: the results as one JSON list, in piece order."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from assemblers.output import JSON_NAME, target, wants_output
from runner.registry import assembler


@assembler("json_list", writes=JSON_NAME)
def json_list(results: Iterable[Any], ctx) -> Any:
    """Returns the list; with a destination, streams it there as a JSON array
    (``result.json`` under a prefix) and returns ``{"destination", "bytes", "pieces"}``."""
    if not wants_output(ctx):
        return list(results)
    written = pieces = 0
    destination = target(ctx, JSON_NAME)
    with destination.open() as out:
        out.write(b"[")
        for index, result in enumerate(results):
            data = ((b"," if index else b"") + json.dumps(result, separators=(",", ":")).encode())
            out.write(data)
            written += len(data)
            pieces += 1
        out.write(b"]\n")
    return {"destination": destination.uri, "bytes": written + 3, "pieces": pieces}
