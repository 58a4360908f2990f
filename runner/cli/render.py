"""Tables the commands print. Values are plain text (never rich markup: ``[app]`` in an
error stays ``[app]``), and ids never wrap or get cut."""

from __future__ import annotations

import json
import time
from typing import Any

from rich.table import Table
from rich.text import Text

from runner.models import JobState, JobStatus

__all__ = ["status_table", "jobs_table", "age", "TRACEBACK_FRAMES"]

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


def status_table(status: JobStatus) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in status.model_dump(exclude={"params", "error", "metrics"}).items():
        if value is not None and value != [] and value != {}:
            table.add_row(key, Text(str(value.value if isinstance(value, JobState) else value)))
    table.add_row("params", Text(json.dumps(status.params)))
    for name, metric in status.metrics.items():  # the summary; the series is in --json
        numbers = f" mean={metric.mean:g} min={metric.min:g} max={metric.max:g}" if metric.mean is not None else ""
        table.add_row(f"metric {name}", Text(f"count={metric.count}{numbers} last={metric.last}"))
    for key, value in _error_rows(status.error or {}):
        table.add_row(Text(key, style="red"), Text(value))
    return table


def _progress(job: JobStatus) -> str:
    total = job.pieces_total
    text = f"{job.pieces_done}/{total if total is not None else '?'}"
    if total:
        text += f" {100 * job.pieces_done / total:.0f}%"
    return text + (f" ({job.pieces_failed} failed)" if job.pieces_failed else "")


def jobs_table(jobs: list[JobStatus]) -> Table:
    """One row a job: the whole id (never wrapped), template, state, progress, age, error."""
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
