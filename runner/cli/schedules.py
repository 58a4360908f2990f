"""Commands about recurring jobs and monitoring: ``runner schedule create|pause|resume|
run-now|delete``, ``runner schedules`` and ``runner metrics``. Each calls what a Python
user would (``Client.schedule``, ``Client.schedules``, the ``Schedule`` handle)."""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING

import click

from runner.cli.common import LazyChoice, console, make_client, parse_params, say, uri_option

if TYPE_CHECKING:
    from datetime import datetime

    from rich.table import Table

    from runner.schedules import ScheduleInfo


def _catch_up_policies() -> list[str]:
    from runner.schedules import CatchUp

    return [c.value for c in CatchUp]

__all__ = ["schedule", "schedules", "metrics"]


@click.group()
def schedule() -> None:
    """Create and control recurring jobs (see also: runner schedules)."""


@schedule.command("create")
@click.argument("name")
@click.argument("template")
@click.option("--every", default=None, help="Interval: 90s, 15m, 1h30m, 2d.")
@click.option("--cron", default=None, help="Cron expression, e.g. '*/15 * * * *'.")
@click.option("--tz", default="UTC", show_default=True, help="Time zone of --cron (IANA name).")
@click.option("--catch-up", type=LazyChoice(_catch_up_policies), default="latest", show_default=True,
              help="After an outage: one run (latest), none, or each missed time (all, at most 100).")
@click.option("--max-concurrent", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs at once; a due time beyond it is skipped with the reason.")
@click.option("--expected-interval", default=None, help="Overdue when no run completed within this (e.g. 20m).")
@click.option("--source", "-s", default="bypass:", callback=uri_option, help="Input URI of every run.")
@click.option("--destination", "-d", default="bypass:", callback=uri_option, help="Output URI of every run.")
@click.option("--param", "-p", "param", multiple=True, help="section.field=value (value parsed as JSON if it can be).")
@click.option("--params-json", default=None, help="All params as one JSON object.")
@click.option("--input", "inputs", multiple=True, help="role=URI, a named input of every run.")
@click.option("--task-timeout", type=float, default=None)
@click.option("--job-timeout", type=float, default=None)
@click.option("--max-retries", type=int, default=None)
@click.option("--min-success-ratio", type=float, default=None, help="Each run completes (partial) with this share.")
@click.option("--max-failed-pieces", type=int, default=None, help="Each run completes (partial) with these failed.")
@click.option("--include", "-I", multiple=True)
@click.option("--org", default=None)
def create(name: str, template: str, every: str | None, cron: str | None, tz: str, catch_up: str,
           max_concurrent: int, expected_interval: str | None, source: str, destination: str,
           param: tuple[str, ...], params_json: str | None, inputs: tuple[str, ...], task_timeout: float | None,
           job_timeout: float | None, max_retries: int | None, min_success_ratio: float | None,
           max_failed_pieces: int | None, include: tuple[str, ...], org: str | None) -> None:
    """Fire a job of TEMPLATE every --every or on --cron, named NAME. Checked like submit."""
    bound = {}
    for item in inputs:
        role, sep, uri = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: use role=URI", param_hint="--input")
        bound[role] = uri
    client = make_client(include, org)
    handle = client.schedule(template, name=name, every=every, cron=cron, tz=tz, catch_up=catch_up,
                             max_concurrent=max_concurrent, expected_interval=expected_interval, source=source,
                             destination=destination, params=parse_params(param, params_json),
                             inputs=bound or None, task_timeout=task_timeout, job_timeout=job_timeout,
                             max_retries=max_retries, min_success_ratio=min_success_ratio,
                             max_failed_pieces=max_failed_pieces)
    info = handle.info()
    print(name)
    say(f"schedule {name}: {info.template} {info.timing}; next run {info.next_due:%Y-%m-%d %H:%M:%S} UTC")


def _simple(verb: str, doc: str) -> click.Command:
    @click.command(verb, help=doc)
    @click.argument("name")
    @click.option("--org", default=None)
    def command(name: str, org: str | None) -> None:
        handle = make_client(org=org).get_schedule(name)
        if verb == "run-now":
            job = handle.run_now()
            print(job.id)
            say(f"schedule {name}: submitted job {job.id} now")
            return
        getattr(handle, verb)()
        say(f"schedule {name}: {verb}d" if verb.endswith("e") else f"schedule {name}: {verb}ed")
    return command


for _verb, _doc in [("pause", "Stop firing NAME until resumed."), ("resume", "Fire NAME again from its next due time."),
                    ("run-now", "Submit one run of NAME at once."),
                    ("delete", "Delete NAME and its future firings (past jobs keep their retention).")]:
    schedule.add_command(_simple(_verb, _doc))


@schedule.command("events")
@click.argument("name")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=50, show_default=True, help="The newest N events.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--org", default=None)
def events(name: str, limit: int, as_json: bool, org: str | None) -> None:
    """What NAME did, oldest first: fired (its job), skipped (why), caught_up, overdue,
    recovered, paused, resumed — Schedule.events() in Python."""
    found = make_client(org=org).get_schedule(name).events()[-limit:]
    if as_json:
        print(json.dumps(found, indent=2))
        return
    for event in found:
        print(_event_line(event))
    if not found:
        say(f"schedule {name}: no events yet (its first run is due at the time runner schedules shows)")


def _event_line(event: dict[str, str]) -> str:
    """``2026-01-02 10:15:00 UTC  fired  due 10:15:00  job 3f2a…``: one event a line."""
    from datetime import datetime, timezone

    def stamp(seconds: float, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        return datetime.fromtimestamp(seconds, timezone.utc).strftime(fmt)

    at = stamp(int(event["id"].split("-")[0]) / 1000) + " UTC"
    details = [f"due {stamp(float(event['due']), '%H:%M:%S')}" if key == "due" else f"{key} {value}"
               for key, value in event.items() if key not in ("id", "type") and value != ""]
    return "  ".join([at, event.get("type", "?"), *details])


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--org", default=None)
def schedules(as_json: bool, org: str | None) -> None:
    """List this org's schedules: template, timing, next run, last run, overdue."""
    found = make_client(org=org).schedules()
    if as_json:
        print(json.dumps([s.model_dump(mode="json") for s in found], indent=2))
    elif found:
        console.print(schedules_table(found))
    else:
        say("no schedules; create one with: runner schedule create NAME TEMPLATE --every 15m")


def _when(due: "datetime") -> str:
    """A due time (UTC): the time of day when it is today, else the date too."""
    from datetime import datetime, timezone

    return f"{due:%H:%M:%S}" if due.date() == datetime.now(timezone.utc).date() else f"{due:%Y-%m-%d %H:%M:%S}"


def schedules_table(found: list["ScheduleInfo"]) -> "Table":
    from rich.table import Table
    from rich.text import Text

    from runner.cli.render import age

    table = Table()
    for column in ("name", "template", "timing", "next run", "last run", "state", "age", "status"):
        table.add_column(column, no_wrap=column in ("name", "last run"))
    for s in found:
        status = "paused" if s.paused else ("OVERDUE" if s.overdue else "ok")
        table.add_row(s.name, s.template, s.timing, _when(s.next_due) if s.next_due else "-",
                      s.last_job or "-", s.last_state or "-", age(s.last_age) if s.last_age is not None else "-",
                      Text(status, style="red" if s.overdue else ""))
    return table


@click.command()
@click.option("--port", type=click.IntRange(1, 65535), default=9808, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on (loopback by default: the labels name orgs, templates and schedules).")
@click.option("--addr", default=None, hidden=True, help="Old name of --host.")
def metrics(port: int, host: str, addr: str | None) -> None:
    """Serve Prometheus metrics from the store at http://HOST:PORT/metrics until Ctrl-C."""
    from runner.config import get_settings
    from runner.metrics import serve

    host = addr or host
    serve(get_settings(), port, host)
    say(f"serving Runner metrics on http://{host}:{port}/metrics (Ctrl-C stops)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        time.sleep(0)
