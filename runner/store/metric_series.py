"""Metrics, live: each value a job reports lands in the store as it is added — from
``ctx.add_metric`` (flushed with each batch) and from an attached job's
``add_output_metric`` — so ``runner status`` and ``GET /v1/jobs/{id}`` show them while
the job runs, not only in ``output.json`` at its end.

One Lua call per flush (``scripts.ADD_METRIC_VALUES``) appends the values to the job's
metrics list (what ``output.json`` summarizes, unchanged) and folds them into one summary
per metric name (count, sum, min, max, last, and the latest ``[step, value]`` points,
capped at ``SERIES_MAX`` with the oldest dropped), so reading a job's metrics costs one
``HGETALL`` however long it ran.
"""

from __future__ import annotations

import json
import math
from typing import Any

import redis

from runner.models import MetricSummary
from runner.store.keyspace import Keys
from runner.store.part import Part
from runner.store.scripts import ADD_METRIC_VALUES

__all__ = ["MetricSeries", "SERIES_MAX", "summaries"]

SERIES_MAX = 1000


def _clean(value: Any) -> Any:
    """A JSON value Lua's cjson can read: non-finite floats become strings ("nan")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricSeries(Part):
    """Every job's metrics as they come: summaries and capped series."""

    def __init__(self, redis_client: redis.Redis, keys: Keys) -> None:
        super().__init__(redis_client, keys)
        self._add = self.redis.register_script(ADD_METRIC_VALUES)

    def add(self, job_id: str, items: list[dict[str, Any]]) -> int:
        """Store metric values (``{name, value, step?}`` each; other keys are kept in the
        list) in one round trip; returns how many."""
        if not items:
            return 0
        encoded = [json.dumps({**item, "name": str(item["name"]), "value": _clean(item.get("value"))},
                              separators=(",", ":"), default=str) for item in items]
        keys = [self.keys.metrics_key(job_id), self.keys.metric_series_key(job_id), self.keys.job_key(job_id)]
        return int(self._add(keys=keys, args=[SERIES_MAX, *encoded]))

    def read(self, job_id: str) -> dict[str, MetricSummary]:
        """Every metric of the job so far, by name: its summary and latest series."""
        return summaries(self.redis.hgetall(self.keys.metric_series_key(job_id)))


def summaries(stored: dict[str, str]) -> dict[str, MetricSummary]:
    """The job's metric series hash (as ``HGETALL`` reads it) as summaries by name; shared
    with the API's one-round-trip read of a job (``ApiKeyRecords.authenticate_read``)."""
    found = {}
    for name, raw in sorted(stored.items()):
        data = json.loads(raw)
        numeric = data.get("n", 0) == data["count"] and data["count"] > 0
        found[name] = MetricSummary(
            count=data["count"], last=data.get("last"), series=[tuple(point) for point in data.get("series") or []],
            **({"sum": data["sum"], "min": data["min"], "max": data["max"], "mean": data["sum"] / data["n"]}
               if numeric else {}))
    return found
