"""Tables the commands print. Values are plain text (never rich markup: ``[app]`` in an
error stays ``[app]``), and ids never wrap or get cut.

``runner status`` prints its two columns itself (click styles them on a terminal) rather
than through rich, whose import is a sixth of that command's start-up."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import click

from runner.models import JobState, JobStatus

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["status_text", "jobs_table", "age", "TRACEBACK_FRAMES"]

TRACEBACK_FRAMES = 8  # last lines of a recorded traceback shown by `runner status`


def age(seconds: float) -> str:
    """``42s``, ``5m``, ``3h``, ``2d``: how long ago, at a glance."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{max(seconds, 0):.0f}s"


def _error_rows(error: dict[str, Any]) -> list[tuple[str, str]]:
    """The recorded error as rows: stage, piece, type, message, attempts, traceback."""
    rows = [(name, str(error[name])) for name in ("stage", "piece", "type", "message", "attempts")
            if error.get(name) is not None]
    trace = error.get("traceback") or []
    if trace:
        rows.append(("traceback", "\n".join(trace[-TRACEBACK_FRAMES:])))
    return [(f"error.{name}", value) for name, value in rows]


def _shown(value: Any) -> str:
    """A record's value as a user reads it: JSON for a dict or list (``result_summary``,
    ``warnings``, never a Python repr), the word of a state."""
    if isinstance(value, JobState):
        return value.value
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def status_text(status: JobStatus) -> str:
    """A job's record as ``key  value`` lines, the values aligned, error rows last (and
    red on a terminal); a value of several lines (a traceback) stays in its column."""
    hidden = {"params", "error", "metrics", *(() if status.partial else ("partial",))}  # partial: only when true
    rows = [(key, _shown(value)) for key, value in status.model_dump(exclude=hidden).items()
            if value is not None and value != [] and value != {}]
    rows.append(("params", json.dumps(status.params)))
    for name, metric in status.metrics.items():  # the summary; the series is in --json
        numbers = f" mean={metric.mean:g} min={metric.min:g} max={metric.max:g}" if metric.mean is not None else ""
        rows.append((f"metric {name}", f"count={metric.count}{numbers} last={metric.last}"))
    errors = _error_rows(status.error or {})
    width = max(len(key) for key, _ in [*rows, *errors])
    lines = []
    for (key, value), style in [*((row, {"bold": True}) for row in rows), *((row, {"fg": "red"}) for row in errors)]:
        first, *rest = value.split("\n") or [""]
        lines.append(click.style(key.ljust(width), **style) + "  " + first)
        lines += [" " * (width + 2) + line for line in rest]
    return "\n".join(lines)


def _progress(job: JobStatus) -> str:
    total = job.pieces_total
    text = f"{job.pieces_done}/{total if total is not None else '?'}"
    if total:
        text += f" {100 * job.pieces_done / total:.0f}%"
    partial = ", partial" if job.partial else ""
    return text + (f" ({job.pieces_failed} failed{partial})" if job.pieces_failed else "")


def jobs_table(jobs: list[JobStatus]) -> "Table":
    """One row a job: the whole id (never wrapped), template, state, progress, age, error."""
    from rich.table import Table
    from rich.text import Text

    table = Table()
    table.add_column("job", no_wrap=True, min_width=max((len(j.id) for j in jobs), default=3))
    for name in ("template", "state", "progress", "age"):
        table.add_column(name, no_wrap=True)
    table.add_column("error", overflow="fold")
    now = time.time()
    for job in jobs:
        error = (job.error or {}).get("message", "")
        table.add_row(job.id, job.template, job.state.value, _progress(job), age(now - job.created_at.timestamp()),
                      Text(error[:80]))
    return table
