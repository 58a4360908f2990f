"""``runner template import`` and ``runner engine new``: ByteNite engines on Runner."""

from __future__ import annotations

from pathlib import Path

import click

from runner.cli.common import console, make_client, say

__all__ = ["template", "engine"]


@click.group()
def template() -> None:
    """Templates from elsewhere (runner templates lists them all)."""


@template.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--version", default=None, help="The template's version (default 1.0.0).")
@click.option("--engines", "engine_dirs", multiple=True, type=click.Path(path_type=Path, file_okay=False),
              help="Also look for engine folders here (besides the template's folder and its parent).")
@click.option("--queue", default=None, help="Queue of its app tasks (default: 'gpu' for an app that needs a GPU).")
def import_(path: Path, version: str | None, engine_dirs: tuple[Path, ...], queue: str | None) -> None:
    """Import a ByteNite template.json and its engine folders into the store, where every
    worker, client and API on it runs it without a restart. Prints the template's ref."""
    from runner.engines import import_template

    client = make_client()
    report = import_template(path, client.store, client.storages, client.settings, version=version,
                             engine_dirs=list(engine_dirs), queue=queue)
    for warning in report.warnings:
        say(f"warning: {warning}")
    if report.ignored:
        say(f"ignored (give them per job instead): {', '.join(report.ignored)}")
    if report.kept:
        say(f"kept as each job's defaults (a client's own win): {', '.join(report.kept)}")
    engines = ", ".join(f"{kind} {name}" for kind, name in report.functions.items())
    say(f"{'imported' if report.created else 'already imported, unchanged:'} {report.ref} ({engines}"
        + (f"; queue {report.queue}" if report.queue else "") + ")")
    console.print(report.ref, markup=False)


@click.group()
def engine() -> None:
    """Executable engines (ByteNite folders)."""


@engine.command("new")
@click.argument("name")
@click.option("--type", "kind", type=click.Choice(["partitioner", "app", "assembler"]), required=True)
@click.option("--dir", "directory", type=click.Path(path_type=Path, file_okay=False), default=Path("."),
              show_default=True, help="Where to create the NAME folder.")
def new(name: str, kind: str, directory: Path) -> None:
    """Write an engine folder NAME that follows the contract and passes data through."""
    from runner.engines.scaffold import new_engine

    folder = new_engine(name, kind, directory)  # type: ignore[arg-type]
    say(f"wrote {folder}/manifest.json and {folder}/app/main.py; edit main.py, then runner template import")
    console.print(str(folder), markup=False)
