"""``replicas``: ``count`` pieces carrying their index, for apps that generate rather than
read (simulations, parameter sweeps, load tests). Ignores the source."""

from __future__ import annotations

from pydantic import BaseModel, Field

from runner.registry import partitioner


class ReplicasParams(BaseModel):
    count: int = Field(1, ge=0, le=100_000_000, description="How many pieces.")


@partitioner("replicas", params=ReplicasParams)
def replicas(source, ctx) -> range:
    """Pieces are the integers ``0 .. count-1``: a ``range``, so the store keeps only the
    count and each batch computes its own pieces (see :mod:`runner.pieces`)."""
    return range(ctx.params.count)
