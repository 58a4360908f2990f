"""Commands about jobs: submit, status, jobs, result, cancel, retry, logs, artifacts,
watch, check-source.

stdout carries data (a job id, JSON, a result, a table); messages, hints and errors go to
stderr, so ``JOB=$(runner submit …)`` and ``runner result JOB | jq`` just work.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from runner.cli.common import LazyChoice, console, make_client, parse_params, read_store, say, uri_option
from runner.exits import INTERRUPTED, USAGE

if TYPE_CHECKING:
    from runner.client import Job

__all__ = ["COMMANDS"]

# Each command imports what it needs (the client, the tables) when it runs: `runner
# --help` loads only click. See benchmarks/README.md (CLI start-up).


def _job_states() -> list[str]:
    from runner.models import JobState

    return [s.value for s in JobState]


@contextmanager
def still_running_hint(job_id: str) -> Iterator[None]:
    """Ctrl-C stops the waiting, not the job: say so, and how to follow or stop it."""
    try:
        yield
    except KeyboardInterrupt:
        say(f"job {job_id} is still running: runner watch {job_id}, runner cancel {job_id}")
        sys.exit(INTERRUPTED)


def _wait_and_print(job: "Job") -> Any:
    with still_running_hint(job.id):
        result = job.wait(progress=sys.stdout.isatty())
    print(json.dumps(result, indent=2))
    status = job.status()
    if status.partial:
        say(f"partial: {status.pieces_failed} piece(s) failed for good and are left out (runner logs {job.id}); "
            f"runner retry {job.id} re-runs them")
    say(f"next: runner result {job.id} --output result.json · runner logs {job.id} · runner status {job.id}")
    return result


@click.command()
@click.argument("template")
@click.option("--source", "-s", default="bypass:", callback=uri_option,
              help="Input URI (file://…, s3://…, https://…, bypass:).")
@click.option("--destination", "-d", default="bypass:", callback=uri_option,
              help="Output URI; one ending in / is a prefix (result.json / result.txt go under it).")
@click.option("--param", "-p", "param", multiple=True, help="section.field=value (value parsed as JSON if it can be).")
@click.option("--params-json", default=None, help="All params as one JSON object.")
@click.option("--task-timeout", type=float, default=None, help="Seconds one piece may run.")
@click.option("--job-timeout", type=float, default=None, help="Seconds the whole job may run.")
@click.option("--max-retries", type=int, default=None)
@click.option("--min-success-ratio", type=float, default=None,
              help="Complete (partial) when at least this share of pieces (0-1) succeeds.")
@click.option("--max-failed-pieces", type=int, default=None,
              help="Complete (partial) when at most this many pieces fail for good.")
@click.option("--test", is_flag=True, help="Run only the template's first few pieces.")
@click.option("--name", default=None)
@click.option("--wait", "wait", is_flag=True, help="Wait and print the result.")
@click.option("--json", "as_json", is_flag=True, help="Print the job's record as JSON (its final one with --wait).")
@click.option("--include", "-I", multiple=True)
@click.option("--org", default=None)
def submit(template: str, source: str, destination: str, param: tuple[str, ...], params_json: str | None,
           task_timeout: float | None, job_timeout: float | None, max_retries: int | None,
           min_success_ratio: float | None, max_failed_pieces: int | None, test: bool,
           name: str | None, wait: bool, as_json: bool, include: tuple[str, ...], org: str | None) -> None:
    """Submit a job of TEMPLATE (name@version, or name for the newest).

    Prints the job id (alone on stdout when piped: JOB=$(runner submit …)); with --wait,
    the result; with --json, the job's record.
    """
    params = parse_params(param, params_json)
    client = make_client(include, org)
    job = client.submit(template, source=source, destination=destination, params=params,
                        task_timeout=task_timeout, job_timeout=job_timeout, max_retries=max_retries, test=test,
                        name=name, min_success_ratio=min_success_ratio, max_failed_pieces=max_failed_pieces)
    with still_running_hint(job.id):  # from here on Ctrl-C leaves a queued job behind: say so
        say(f"submitted job {job.id} ({template})")
        for warning in job.status().warnings:
            say(f"warning: {warning}")
        if wait and as_json:
            job.wait(progress=sys.stdout.isatty())
            print(job.status().model_dump_json(indent=2))
        elif wait:
            _wait_and_print(job)
        elif as_json:
            print(job.status().model_dump_json(indent=2))
        elif not sys.stdout.isatty():
            print(job.id)
        else:
            say(f"next: runner watch {job.id} · runner result {job.id}")


@click.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@click.option("--org", default=None)
def status(job_id: str, as_json: bool, org: str | None) -> None:
    """Show a job's state, counters and error (stage, piece, type, message, traceback)."""
    store, org = read_store(org)
    current = store.get(job_id, org)
    current.metrics = store.metric_series.read(job_id)  # as Job.status() reads them
    if as_json:
        print(current.model_dump_json(indent=2))
    else:
        from runner.cli.render import status_text

        click.echo(status_text(current))


@click.command()
@click.option("--state", type=LazyChoice(_job_states), default=None)
@click.option("--template", "-t", default=None, help="Only jobs of this template (name or name@version).")
@click.option("--schedule", default=None, help="Only the runs of this schedule (newest due time first).")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--org", default=None)
def jobs(state: str | None, template: str | None, schedule: str | None, limit: int, as_json: bool,
         org: str | None) -> None:
    """List this org's jobs, newest first: whole ids, template, state, progress, age."""
    if schedule:
        found = [j for j in make_client(org=org).get_schedule(schedule).jobs(limit) if state in (None, j.state.value)]
    else:  # what Client.jobs reads, without making a client (see read_store)
        from runner.models import JobState

        store, org = read_store(org)
        found = store.list_jobs(org, JobState(state) if state else None, limit, template)
    if as_json:
        print(json.dumps([j.model_dump(mode="json") for j in found], indent=2))
    elif found:
        from runner.cli.render import jobs_table

        console.print(jobs_table(found))
    else:
        say("no jobs" + (f" in state {state}" if state else "") + (f" of template {template}" if template else ""))


@click.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON even when it is a string.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="Save the result to this file.")
@click.option("--org", default=None)
def result(job_id: str, as_json: bool, output: str | None, org: str | None) -> None:
    """Print (or save) a completed job's result.

    A failed, timed-out or cancelled job: prints its error, exit status 1. A job that has
    not ended yet: says so, exit status 2 (try again, or runner watch JOB).
    """
    job = make_client(org=org).get(job_id)
    current = job.status()
    if not current.is_final:
        say(f"job {job_id} is still {current.state.value}: runner watch {job_id}, then runner result {job_id}")
        sys.exit(USAGE)
    value = job.result(current)  # raises JobFailed / JobTimedOut / JobCancelled: one line, exit 1
    text = value if isinstance(value, str) and not as_json else json.dumps(value, indent=2)
    if output:
        Path(output).write_text(text if text.endswith("\n") else text + "\n")
        say(f"saved the result of job {job_id} to {output}")
    else:
        print(text)


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
    """Re-run only the failed pieces of a failed or timed-out job, or of a partial completion, then assemble."""
    job = make_client(org=org).retry_failed(job_id, job_timeout)
    status = job.status()
    missing = (status.pieces_total or 0) - status.pieces_done
    say(f"job {job_id} retrying {missing} piece(s) without a result")
    if wait:
        _wait_and_print(job)


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
    """List (or download) a job's artifacts, output.json included. Finding none, says
    where it looked (and where the workers write theirs); exits 1 if the job has ended."""
    client = make_client(org=org)
    job = client.get(job_id)
    found = job.download_artifacts(download) if download else job.artifacts()
    for name in found:
        console.print(str(name))
    if not found:
        from runner.fleet import no_artifacts

        ended = job.status().is_final
        say(no_artifacts(client.store, client.settings, job_id, ended))
        sys.exit(1 if ended else 0)


@click.command()
@click.argument("job_id")
@click.option("--org", default=None)
def watch(job_id: str, org: str | None) -> None:
    """Follow a job live: state, pieces done/failed/total, rate and ETA, to its end."""
    from runner.models import JobState
    from runner.watch import watch_job

    job = make_client(org=org).get(job_id)
    with still_running_hint(job_id):
        say(f"watching job {job_id} (Ctrl-C stops watching, not the job)")
        status = watch_job(job, console.get())
    if not sys.stdout.isatty():
        print()  # the last frame, when piped, ends without a newline
    if status.state is not JobState.COMPLETED:
        sys.exit(1)


@click.command("check-source")
@click.argument("uri", callback=uri_option)
@click.option("--json", "as_json", is_flag=True)
@click.option("--show", type=int, default=10, show_default=True, help="How many object names to print.")
def check_source(uri: str, as_json: bool, show: int) -> None:
    """List what a job would read from URI: object count, total bytes, first names."""
    report = make_client().check_source(uri, first=show)
    if as_json:
        print(report.model_dump_json(indent=2))
        return
    console.print(f"{report.uri}: {report.objects} object(s), {report.bytes:,} bytes", markup=False)
    for name in report.first:
        console.print(f"  {name}", markup=False)
    if report.objects > len(report.first):
        console.print(f"  … and {report.objects - len(report.first)} more", markup=False)


COMMANDS = [submit, status, jobs, result, cancel, retry, logs, artifacts, watch, check_source]
