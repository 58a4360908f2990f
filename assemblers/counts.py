"""``merge_counts``: add up ``{key: count}`` dicts, as word counts and histograms need."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from pydantic import BaseModel, Field

from assemblers.output import JSON_NAME, wants_output, write_json
from runner.registry import assembler


class MergeCountsParams(BaseModel):
    top: int | None = Field(None, ge=1, description="Keep only the N largest counts.")


def add_counts(a: dict[str, int], b: dict[str, int]) -> Counter[str]:
    """``merge_counts``' combine: each batch adds its pieces' counts into one ``Counter``
    (``a`` is the fold's own once it is a Counter; ``b`` is never modified)."""
    for counts in (a, b):
        if not isinstance(counts, dict):
            raise TypeError(f"merge_counts adds dicts of counts, but a result is {type(counts).__name__}")
    merged = a if isinstance(a, Counter) else Counter(a)
    merged.update(b)
    return merged


@assembler("merge_counts", params=MergeCountsParams, writes=JSON_NAME, combine=add_counts)
def merge_counts(results: Iterable[dict[str, int]], ctx) -> dict[str, int]:
    """One dict with every key's total, largest first (ties by key); with a
    destination, also written there as JSON."""
    merged: Counter[str] = Counter()
    for index, counts in enumerate(results):
        if not isinstance(counts, dict):
            raise TypeError(f"merge_counts adds dicts of counts, but piece {index}'s result is {type(counts).__name__}")
        merged.update(counts)
    ordered = sorted(merged.items(), key=lambda item: (-item[1], item[0]))
    top = ctx.params.top if ctx.params is not None else None
    output = dict(ordered[:top] if top else ordered)
    if wants_output(ctx):
        write_json(ctx, output)
    return output
