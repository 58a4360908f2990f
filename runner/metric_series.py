"""Metrics, live: each value a job reports lands in the store as it is added — from
``ctx.add_metric`` (flushed with each batch) and from an attached job's
``add_output_metric`` — so ``runner status`` and ``GET /v1/jobs/{id}`` show them while
the job runs, not only in ``output.json`` at its end.

One Lua call per flush appends the values to the job's metrics list (what ``output.json``
summarizes, unchanged) and folds them into one summary per metric name (count, sum,
min, max, last, and the latest ``[step, value]`` points, capped at ``SERIES_MAX`` with the
oldest dropped), so reading a job's metrics costs one ``HGETALL`` however long it ran.
"""

from __future__ import annotations

import json
import math
import weakref
from typing import TYPE_CHECKING, Any

from runner.models import MetricSummary

if TYPE_CHECKING:
    from runner.store import StatusStore

__all__ = ["add_metrics", "read_metrics", "SERIES_MAX"]

SERIES_MAX = 1000

# KEYS: metrics list, series hash, job record. ARGV: series cap, then each item as JSON
# ({name, value, step?, ...}). A value that is not a number counts, but has no sum/min/max.
_ADD = """
local cap = tonumber(ARGV[1])
local stats = {}
for i = 2, #ARGV do
  redis.call('RPUSH', KEYS[1], ARGV[i])
  local item = cjson.decode(ARGV[i])
  local name = tostring(item.name)
  local s = stats[name]
  if not s then
    local raw = redis.call('HGET', KEYS[2], name)
    if raw then s = cjson.decode(raw) else s = {count = 0, n = 0, series = {}} end
    stats[name] = s
  end
  local v, step = item.value, item.step
  if type(step) ~= 'number' then step = s.count end
  s.count = s.count + 1
  s.last = v
  if type(v) == 'number' then
    s.n = s.n + 1
    s.sum = (s.sum or 0) + v
    if s.min == nil or v < s.min then s.min = v end
    if s.max == nil or v > s.max then s.max = v end
  end
  table.insert(s.series, {step, v})
end
for name, s in pairs(stats) do
  if #s.series > cap then
    local kept = {}
    for j = #s.series - cap + 1, #s.series do table.insert(kept, s.series[j]) end
    s.series = kept
  end
  redis.call('HSET', KEYS[2], name, cjson.encode(s))
end
local ttl = redis.call('TTL', KEYS[3])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
end
return #ARGV - 1
"""

_scripts: "weakref.WeakKeyDictionary[StatusStore, Any]" = weakref.WeakKeyDictionary()


def _clean(value: Any) -> Any:
    """A JSON value Lua's cjson can read: non-finite floats become strings ("nan")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def add_metrics(store: "StatusStore", job_id: str, items: list[dict[str, Any]]) -> int:
    """Store metric values (``{name, value, step?}`` each, any other keys kept in the
    list) in one round trip; returns how many."""
    if not items:
        return 0
    script = _scripts.get(store)
    if script is None:
        script = _scripts[store] = store.redis.register_script(_ADD)
    encoded = [json.dumps({**item, "name": str(item["name"]), "value": _clean(item.get("value"))},
                          separators=(",", ":"), default=str) for item in items]
    keys = [store.metrics_key(job_id), store.metric_series_key(job_id), store.job_key(job_id)]
    return int(script(keys=keys, args=[SERIES_MAX, *encoded]))


def read_metrics(store: "StatusStore", job_id: str) -> dict[str, MetricSummary]:
    """Every metric of the job so far, by name: its summary and latest series."""
    found = {}
    for name, raw in sorted(store.redis.hgetall(store.metric_series_key(job_id)).items()):
        data = json.loads(raw)
        numeric = data.get("n", 0) == data["count"] and data["count"] > 0
        series = data.get("series") or []
        found[name] = MetricSummary(
            count=data["count"], last=data.get("last"), series=[tuple(point) for point in series],
            **({"sum": data["sum"], "min": data["min"], "max": data["max"], "mean": data["sum"] / data["n"]}
               if numeric else {}))
    return found
