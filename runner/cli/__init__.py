"""The ``runner`` command: each subcommand calls what a Python user would call.

Commands live by topic — ``jobs.py`` (submit, status, jobs, …), ``fleet.py`` (worker,
workers, doctor, …) — and are registered on the one ``cli`` group below; ``main`` turns
Runner's errors into one clear line.
"""

from __future__ import annotations

import click

from runner.api import cli as api_cli
from runner.cli import attach, engines, fleet, jobs, orgs, schedules
from runner.exits import exit_on_error

__all__ = ["cli", "main"]


@click.group()
@click.version_option(package_name="runner")
@click.option("--debug", is_flag=True, help="Print the traceback of an error (or set RUNNER_DEBUG=1).")
def cli(debug: bool) -> None:
    """Runner: partition / app / assemble jobs on Celery and Redis."""


for _command in [*jobs.COMMANDS, *fleet.COMMANDS]:
    cli.add_command(_command)

# Commands from other modules register here, one line each: cli.add_command(module.command)
cli.add_command(api_cli.api)
cli.add_command(attach.attach)
cli.add_command(api_cli.keys)
cli.add_command(engines.template)
cli.add_command(engines.engine)
cli.add_command(schedules.schedule)
cli.add_command(schedules.schedules)
cli.add_command(schedules.metrics)
cli.add_command(orgs.orgs)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: every error becomes one clear line and an exit status
    (2: usage, 1: failure, 130: Ctrl-C); see :mod:`runner.exits`."""
    with exit_on_error(argv):
        cli.main(args=argv, standalone_mode=False)
