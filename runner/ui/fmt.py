"""How numbers, times and values read on the dashboard (Jinja filters).

Times render in UTC with the zone said, durations as ``1h 02m``/``3.4s``, sizes in
binary units: one spelling everywhere, so a column of them lines up.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from jinja2 import Environment

__all__ = ["install", "duration", "when", "size", "pretty", "percent", "metric"]


def duration(seconds: float | None) -> str:
    """``850ms``, ``3.4s``, ``2m 05s``, ``1h 02m``; ``—`` when unknown."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def when(value: datetime | float | None, seconds: bool = True) -> str:
    """A UTC time, ``2026-12-02 06:13:04``; ``—`` when unset."""
    if value is None:
        return "—"
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(float(value), timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def size(count: int | None) -> str:
    """``512 B``, ``3.2 KiB``, ``1.0 GiB``."""
    if count is None:
        return "—"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def pretty(value: Any) -> str:
    """JSON, indented, for ``<pre>`` blocks."""
    return json.dumps(value, indent=2, sort_keys=False, default=str, ensure_ascii=False)


def metric(value: Any) -> str:
    """A metric's value: floats to 6 significant digits, anything else as JSON."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value if isinstance(value, str) else json.dumps(value, default=str)


def percent(part: int | None, whole: int | None) -> float:
    """``part`` of ``whole`` in percent (0 when the whole is unknown), for bar widths."""
    if not whole or not part:
        return 0.0
    return round(min(100.0, 100.0 * part / whole), 2)


def install(env: Environment) -> None:
    """Register the filters on the dashboard's Jinja environment."""
    env.filters.update(duration=duration, when=when, size=size, pretty=pretty, percent=percent, metric=metric)
    env.globals["percent"] = percent
