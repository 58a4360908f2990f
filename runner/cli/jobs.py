"""Commands about jobs: submit, status, jobs, cancel, retry, logs, artifacts, watch."""

from __future__ import annotations

import json
import sys

import click

from runner.cli.common import console, make_client, parse_params
from runner.cli.render import jobs_table, status_table
from runner.models import JobState

__all__ = ["COMMANDS"]


@click.command()
@click.argument("template")
@click.option("--source", "-s", default="bypass:", help="Input URI (file://…, bypass:).")
@click.option("--destination", "-d", default="bypass:", help="Output URI.")
@click.option("--param", "-p", "param", multiple=True, help="section.field=value (value parsed as JSON if it can be).")
@click.option("--params-json", default=None, help="All params as one JSON object.")
@click.option("--task-timeout", type=float, default=None)
@click.option("--job-timeout", type=float, default=None)
@click.option("--max-retries", type=int, default=None)
@click.option("--test", is_flag=True, help="Run only the template's first few pieces.")
@click.option("--name", default=None)
@click.option("--wait", "wait", is_flag=True, help="Wait and print the result.")
@click.option("--include", "-I", multiple=True)
@click.option("--org", default=None)
def submit(template: str, source: str, destination: str, param: tuple[str, ...], params_json: str | None,
           task_timeout: float | None, job_timeout: float | None, max_retries: int | None, test: bool,
           name: str | None, wait: bool, include: tuple[str, ...], org: str | None) -> None:
    """Submit a job of TEMPLATE (name@version, or name for the newest)."""
    client = make_client(include, org)
    job = client.submit(template, source=source, destination=destination, params=parse_params(param, params_json),
                        task_timeout=task_timeout, job_timeout=job_timeout, max_retries=max_retries, test=test,
                        name=name)
    console.print(f"submitted job [bold]{job.id}[/] ({template})")
    for warning in job.status().warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    if wait:
        result = job.wait(progress=True)
        print(json.dumps(result, indent=2))


@click.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@click.option("--org", default=None)
def status(job_id: str, as_json: bool, org: str | None) -> None:
    """Show a job's state, counters and error."""
    current = make_client(org=org).get(job_id).status()
    if as_json:
        print(current.model_dump_json(indent=2))
    else:
        console.print(status_table(current))


@click.command()
@click.option("--state", type=click.Choice([s.value for s in JobState]), default=None)
@click.option("--limit", type=int, default=50)
@click.option("--json", "as_json", is_flag=True)
@click.option("--org", default=None)
def jobs(state: str | None, limit: int, as_json: bool, org: str | None) -> None:
    """List this org's jobs, newest first."""
    found = make_client(org=org).jobs(state=state, limit=limit)
    if as_json:
        print(json.dumps([j.model_dump(mode="json") for j in found], indent=2))
    else:
        console.print(jobs_table(found))


@click.command()
@click.argument("job_id")
@click.option("--org", default=None)
def cancel(job_id: str, org: str | None) -> None:
    """Cancel a job (a no-op, said so, if it has already ended)."""
    client = make_client(org=org)
    if client.cancel(job_id):
        console.print(f"job {job_id} cancelled")
    else:
        console.print(f"job {job_id} is already {client.get(job_id).status().state.value}; nothing to cancel")


@click.command()
@click.argument("job_id")
@click.option("--job-timeout", type=float, default=None, help="New job timeout (default: the job's own).")
@click.option("--wait", "wait", is_flag=True, help="Wait and print the result.")
@click.option("--org", default=None)
def retry(job_id: str, job_timeout: float | None, wait: bool, org: str | None) -> None:
    """Re-run only the failed pieces of a failed or timed-out job, then assemble."""
    job = make_client(org=org).retry_failed(job_id, job_timeout)
    status = job.status()
    missing = (status.pieces_total or 0) - status.pieces_done
    console.print(f"job {job_id} retrying {missing} piece(s) without a result")
    if wait:
        print(json.dumps(job.wait(progress=True), indent=2))


@click.command()
@click.argument("job_id")
@click.option("--piece", type=int, default=None, help="Only the lines about this piece.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the job ends.")
@click.option("--org", default=None)
def logs(job_id: str, piece: int | None, follow: bool, org: str | None) -> None:
    """Print a job's log: its code's ctx.log lines and Runner's lifecycle lines."""
    job = make_client(org=org).get(job_id)
    cursor = "-"
    while True:
        lines = job.logs(piece=None, after=cursor, block_ms=500 if follow and cursor != "-" else None)
        for line in lines:
            cursor = line.id
            if piece is None or line.concerns(piece):
                print(line.render())
        if not follow or (not lines and job.status().is_final):
            return
        if cursor == "-":
            cursor = "0-0"


@click.command()
@click.argument("job_id")
@click.option("--download", type=click.Path(file_okay=False), default=None, help="Copy them into this directory.")
@click.option("--org", default=None)
def artifacts(job_id: str, download: str | None, org: str | None) -> None:
    """List (or download) a job's artifacts, output.json included."""
    job = make_client(org=org).get(job_id)
    if download:
        for path in job.download_artifacts(download):
            console.print(str(path))
    else:
        for name in job.artifacts():
            console.print(name)


@click.command()
@click.argument("job_id")
@click.option("--org", default=None)
def watch(job_id: str, org: str | None) -> None:
    """Follow a job live: state, pieces done/failed/total, rate and ETA, to its end."""
    from runner.watch import watch_job

    status = watch_job(make_client(org=org).get(job_id), console)
    if status.state is not JobState.COMPLETED:
        sys.exit(1)



COMMANDS = [submit, status, jobs, cancel, retry, logs, artifacts, watch]
