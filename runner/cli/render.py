"""Tables the commands print."""

from __future__ import annotations

import json

from rich.table import Table

from runner.models import JobState, JobStatus

__all__ = ["status_table", "jobs_table"]


def status_table(status: JobStatus) -> Table:
    table = Table(show_header=False, box=None)
    for key, value in status.model_dump(exclude={"params"}).items():
        if value is not None:
            table.add_row(f"[bold]{key}", str(value.value if isinstance(value, JobState) else value))
    table.add_row("[bold]params", json.dumps(status.params))
    return table


def jobs_table(jobs: list[JobStatus]) -> Table:
    table = Table("job", "template", "state", "pieces", "created", "error")
    for job in jobs:
        pieces = f"{job.pieces_done}/{job.pieces_total if job.pieces_total is not None else '?'}"
        error = (job.error or {}).get("message", "")
        table.add_row(job.id, job.template, job.state.value, pieces, job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                      error[:60])
    return table
