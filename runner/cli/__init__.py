"""The ``runner`` command: each subcommand calls what a Python user would call.

Commands live by topic — ``jobs.py`` (submit, status, jobs, …), ``fleet.py`` (worker,
workers, doctor, …) — and are registered on the one ``cli`` group below; ``main`` turns
Runner's errors into one clear line.
"""

from __future__ import annotations

import sys

import click

from runner.cli import fleet, jobs
from runner.cli.common import console
from runner.errors import JobError, RunnerError

__all__ = ["cli", "main"]


@click.group()
@click.version_option(package_name="runner")
def cli() -> None:
    """Runner: partition / app / assemble jobs on Celery and Redis."""


for _command in [*jobs.COMMANDS, *fleet.COMMANDS]:
    cli.add_command(_command)

# Commands from other modules register here, one line each: cli.add_command(module.command)


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
