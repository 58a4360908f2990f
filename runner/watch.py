"""``runner watch JOB``: a live view of one job, driven by its events stream."""

from __future__ import annotations

import time
from collections import deque

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from runner.job import Job, describe_error
from runner.models import JobStatus

__all__ = ["watch_job"]


def _view(status: JobStatus, rate: float | None) -> Table:
    table = Table(show_header=False, box=None, title=f"job {status.id} ({status.template})")
    total = status.pieces_total
    table.add_row("[bold]state", status.state.value)
    table.add_row("[bold]pieces", f"{status.pieces_done} done / {status.pieces_failed} failed / "
                                  f"{total if total is not None else '?'} total")
    table.add_row("[bold]rate", f"{rate:,.1f} pieces/s" if rate else "-")
    if rate and total is not None and not status.is_final:
        table.add_row("[bold]eta", f"{(total - status.pieces_done) / rate:,.0f}s")
    if status.duration is not None:
        table.add_row("[bold]elapsed", f"{status.duration:,.1f}s")
    if status.waiting and status.state.value == "queued":
        table.add_row("[yellow]waiting", Text(status.waiting.removeprefix("waiting: ")))
    for warning in status.warnings:
        table.add_row("[yellow]warning", Text(warning))
    if status.error:
        table.add_row("[red]error", Text(describe_error(status)))  # plain text: "[app]" is no markup
    return table


def watch_job(job: Job, console: Console, window: float = 5.0) -> JobStatus:
    """Show the job until it ends; returns its final status. The rate is measured over
    the last ``window`` seconds of progress."""
    samples: deque[tuple[float, int]] = deque()
    cursor = "$"
    with Live(console=console, auto_refresh=False) as live:
        while True:
            status = job.status()
            now = time.monotonic()
            samples.append((now, status.pieces_done))
            while len(samples) > 2 and now - samples[0][0] > window:
                samples.popleft()
            elapsed = samples[-1][0] - samples[0][0]
            rate = (samples[-1][1] - samples[0][1]) / elapsed if elapsed > 0 else None
            live.update(_view(status, rate), refresh=True)
            if status.is_final:
                return status
            events = job.client.store.journal.read_events(job.id, cursor, block_ms=500)
            if events:
                cursor = events[-1][0]
