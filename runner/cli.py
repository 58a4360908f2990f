"""The ``runner`` command: each subcommand calls what a Python user would call."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Column, Table

from runner.client import Client
from runner.errors import JobError, RunnerError
from runner.fleet import live_workers
from runner.models import JobState, JobStatus

console = Console()


def _client(include: tuple[str, ...] = (), org: str | None = None) -> Client:
    return Client(org=org, include=[m for item in include for m in item.split(",") if m])


def _parse_param(item: str) -> tuple[list[str], Any]:
    path, sep, raw = item.partition("=")
    if not sep or "." not in path:
        raise click.BadParameter(f"{item!r}: use section.field=value, e.g. app.lowercase=false")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return path.split("."), value


def _params(items: tuple[str, ...], params_json: str | None) -> dict[str, Any]:
    params: dict[str, Any] = json.loads(params_json) if params_json else {}
    for item in items:
        path, value = _parse_param(item)
        node = params
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return params


def _status_table(status: JobStatus) -> Table:
    table = Table(show_header=False, box=None)
    for key, value in status.model_dump(exclude={"params"}).items():
        if value is not None:
            table.add_row(f"[bold]{key}", str(value.value if isinstance(value, JobState) else value))
    table.add_row("[bold]params", json.dumps(status.params))
    return table


def _jobs_table(jobs: list[JobStatus]) -> Table:
    table = Table("job", "template", "state", "pieces", "created", "error")
    for job in jobs:
        pieces = f"{job.pieces_done}/{job.pieces_total if job.pieces_total is not None else '?'}"
        error = (job.error or {}).get("message", "")
        table.add_row(job.id, job.template, job.state.value, pieces, job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                      error[:60])
    return table


@click.group()
@click.version_option(package_name="runner")
def cli() -> None:
    """Runner: partition / app / assemble jobs on Celery and Redis."""


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--include", "-I", multiple=True, help="Module(s) defining templates (comma-separated).")
@click.option("--queues", "-Q", default=None, help="Queues to consume (the control queue is always added).")
@click.option("--concurrency", "-c", type=int, default=None, help="Worker processes (default: CPU count).")
@click.pass_context
def worker(ctx: click.Context, include: tuple[str, ...], queues: str | None, concurrency: int | None) -> None:
    """Start a worker; any other `celery worker` option is passed through.

    Replaces this process with ``python -m workers``: the worker side is its own program.
    """
    from runner.local import worker_command

    argv = [*worker_command(), *(f"--include={item}" for item in include)]
    if queues:
        argv.append(f"--queues={queues}")
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    sys.stdout.flush()
    os.execv(argv[0], [*argv, *ctx.args])


@cli.command()
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
    client = _client(include, org)
    job = client.submit(template, source=source, destination=destination, params=_params(param, params_json),
                        task_timeout=task_timeout, job_timeout=job_timeout, max_retries=max_retries, test=test,
                        name=name)
    console.print(f"submitted job [bold]{job.id}[/] ({template})")
    for warning in job.status().warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    if wait:
        result = job.wait(progress=True)
        print(json.dumps(result, indent=2))


@cli.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@click.option("--org", default=None)
def status(job_id: str, as_json: bool, org: str | None) -> None:
    """Show a job's state, counters and error."""
    current = _client(org=org).get(job_id).status()
    if as_json:
        print(current.model_dump_json(indent=2))
    else:
        console.print(_status_table(current))


@cli.command()
@click.option("--state", type=click.Choice([s.value for s in JobState]), default=None)
@click.option("--limit", type=int, default=50)
@click.option("--json", "as_json", is_flag=True)
@click.option("--org", default=None)
def jobs(state: str | None, limit: int, as_json: bool, org: str | None) -> None:
    """List this org's jobs, newest first."""
    found = _client(org=org).jobs(state=state, limit=limit)
    if as_json:
        print(json.dumps([j.model_dump(mode="json") for j in found], indent=2))
    else:
        console.print(_jobs_table(found))


@cli.command()
@click.argument("job_id")
@click.option("--org", default=None)
def cancel(job_id: str, org: str | None) -> None:
    """Cancel a job (a no-op, said so, if it has already ended)."""
    client = _client(org=org)
    if client.cancel(job_id):
        console.print(f"job {job_id} cancelled")
    else:
        console.print(f"job {job_id} is already {client.get(job_id).status().state.value}; nothing to cancel")


@cli.command()
@click.argument("job_id")
@click.option("--job-timeout", type=float, default=None, help="New job timeout (default: the job's own).")
@click.option("--wait", "wait", is_flag=True, help="Wait and print the result.")
@click.option("--org", default=None)
def retry(job_id: str, job_timeout: float | None, wait: bool, org: str | None) -> None:
    """Re-run only the failed pieces of a failed or timed-out job, then assemble."""
    job = _client(org=org).retry_failed(job_id, job_timeout)
    status = job.status()
    missing = (status.pieces_total or 0) - status.pieces_done
    console.print(f"job {job_id} retrying {missing} piece(s) without a result")
    if wait:
        print(json.dumps(job.wait(progress=True), indent=2))


@cli.command()
@click.argument("job_id")
@click.option("--piece", type=int, default=None, help="Only the lines about this piece.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the job ends.")
@click.option("--org", default=None)
def logs(job_id: str, piece: int | None, follow: bool, org: str | None) -> None:
    """Print a job's log: its code's ctx.log lines and Runner's lifecycle lines."""
    job = _client(org=org).get(job_id)
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


@cli.command()
@click.argument("job_id")
@click.option("--download", type=click.Path(file_okay=False), default=None, help="Copy them into this directory.")
@click.option("--org", default=None)
def artifacts(job_id: str, download: str | None, org: str | None) -> None:
    """List (or download) a job's artifacts, output.json included."""
    job = _client(org=org).get(job_id)
    if download:
        for path in job.download_artifacts(download):
            console.print(str(path))
    else:
        for name in job.artifacts():
            console.print(name)


@cli.command()
@click.option("--json", "as_json", is_flag=True)
def workers(as_json: bool) -> None:
    """Live workers: their queues, concurrency and the pieces they are running."""
    client = _client()
    found = live_workers(client.store, client.celery)
    if as_json:
        print(json.dumps([w.model_dump() for w in found], indent=2))
        return
    table = Table("worker", "queues", "processes", "active", "heartbeat")
    for w in found:
        active = "\n".join(f"{a['job']} pieces {a['pieces'][0]}..{a['pieces'][1] - 1}" if a.get("pieces")
                           else f"{a['task']} {a['job']}" for a in w.active) or "-"
        table.add_row(w.hostname, ",".join(w.queues), str(w.concurrency), active, f"{w.seen_seconds_ago:g}s ago")
    console.print(table if found else "no live workers")


@cli.command()
@click.argument("job_id")
@click.option("--org", default=None)
def watch(job_id: str, org: str | None) -> None:
    """Follow a job live: state, pieces done/failed/total, rate and ETA, to its end."""
    from runner.watch import watch_job

    status = watch_job(_client(org=org).get(job_id), console)
    if status.state is not JobState.COMPLETED:
        sys.exit(1)


@cli.command()
def doctor() -> None:
    """Check the installation; print a fix for each problem; exit 1 if any."""
    from runner.doctor import run_checks

    checks = run_checks(_client().settings)
    table = Table("check", "", "detail", "fix")
    for check in checks:
        table.add_row(check.name, "[green]ok" if check.ok else "[red]FAIL", check.detail, check.fix)
    console.print(table)
    if not all(check.ok for check in checks):
        sys.exit(1)


@cli.command()
@click.option("--port", type=int, default=5555)
@click.option("--address", default="127.0.0.1", help="Interface to listen on (default: loopback only).")
@click.option("--unsafe-no-auth", is_flag=True, help="Run without authentication (its API can run tasks!).")
@click.option("--url-prefix", default=None)
def flower(port: int, address: str, unsafe_no_auth: bool, url_prefix: str | None) -> None:
    """Run Flower on the configured broker, with basic auth and persistent state."""
    from runner.dispatch import make_celery

    settings = _client().settings
    auth = settings.flower_basic_auth.get_secret_value() if settings.flower_basic_auth else None
    if not auth and not unsafe_no_auth:
        raise click.UsageError("set RUNNER_FLOWER_BASIC_AUTH=user:password (Flower can run tasks and stop "
                               "workers), or pass --unsafe-no-auth")
    if auth:
        os.environ["FLOWER_BASIC_AUTH"] = auth  # not on the command line, where `ps` would show it
    settings.flower_db.parent.mkdir(parents=True, exist_ok=True)
    argv = ["flower", f"--port={port}", f"--address={address}", "--persistent=True", f"--db={settings.flower_db}",
            "--state_save_interval=10000", "--tasks_columns=name,uuid,state,args,received,runtime,worker"]
    if url_prefix:
        argv.append(f"--url_prefix={url_prefix}")
    make_celery(settings, main="runner-flower").start(argv)


@cli.command()
@click.argument("ref", required=False)
@click.option("--include", "-I", multiple=True, help="Also import these module(s) (comma-separated).")
@click.option("--json", "as_json", is_flag=True, help="The TemplateInfo list as JSON.")
def templates(ref: str | None, include: tuple[str, ...], as_json: bool) -> None:
    """List the templates the fleet published (and any imported here), or with
    NAME[@VERSION] show one template's params: every field, its type, default and meaning."""
    from runner.catalog import KINDS, TemplateInfo, param_fields

    client = _client(include)
    found: list[TemplateInfo] = [client.template(ref)] if ref else client.templates()
    if as_json:
        print(json.dumps([info.model_dump(mode="json") for info in found], indent=2))
    elif ref:
        info = found[0]
        console.print(f"[bold]{info.ref}[/]  {info.description}\n  inputs: {', '.join(info.inputs) or 'none'}"
                      f"   queue: {info.queue or 'default'}")
        for kind in KINDS:
            table = Table("field", "type", "default", "description", title=f"{kind} {getattr(info, kind)}",
                          title_justify="left")
            for row in param_fields(info, kind):
                table.add_row(*row)
            console.print(table if table.rows else f"{kind} {getattr(info, kind)}: no params")
    else:
        table = Table(Column("template", no_wrap=True), "partitioner", "app", "assembler", "queue", "description")
        for tmpl in found:
            table.add_row(tmpl.ref, tmpl.partitioner, tmpl.app, tmpl.assembler, tmpl.queue or "default",
                          tmpl.description)
        console.print(table if found else "no templates published yet: start a worker with the module that "
                      "defines yours (`runner worker --include myjobs`, run where myjobs.py is); it publishes them")


@cli.command()
@click.option("--workers", "-w", type=int, default=2, help="Worker processes to start.")
@click.option("--source", default=None, help="Text file to count words in (default: the bundled example).")
def demo(workers: int, source: str | None) -> None:
    """Run the word-count example on a private Redis and worker pool, then stop them."""
    from runner.local import local_cluster

    path = Path(source) if source else Path(__file__).resolve().parent.parent / "examples" / "data" / "book.txt"
    console.print(f"starting a private Redis and {workers} worker processes …")
    roots = [Path.cwd(), path.resolve().parent]  # artifacts go to ./.runner/artifacts
    with local_cluster(workers=workers, include=["examples.wordcount"], file_roots=roots) as client:
        job = client.submit("wordcount", source=path.resolve().as_uri(),
                            params={"partitioner": {"lines_per_piece": 4}, "assembler": {"top": 15}})
        console.print(f"submitted job [bold]{job.id}[/] over {path}")
        counts = job.wait(progress=True, timeout=300)
        table = Table("word", "count", title="most frequent words")
        for word, count in counts.items():
            table.add_row(word, str(count))
        console.print(table)
        console.print(_status_table(job.status()))


from runner.api.cli import api as _api_command, keys as _keys_command  # noqa: E402

cli.add_command(_api_command)
cli.add_command(_keys_command)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: Runner's errors become one clear line and exit status 1."""
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except JobError as exc:
        console.print(f"[red]{exc}")
        sys.exit(1)
    except RunnerError as exc:
        console.print(f"[red]error:[/] {exc}")
        sys.exit(1)
