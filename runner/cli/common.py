"""What every command shares: the console and turning options into a :class:`Client`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from runner.exits import LazyConsole, err_console

if TYPE_CHECKING:
    from rich.console import Console

    from runner.client import Client
    from runner.store import StatusStore

__all__ = ["console", "say", "make_client", "read_store", "parse_params", "uri_option", "LazyChoice"]


def _console() -> "Console":
    """The stdout console; when piped it never wraps or cuts (ids stay whole)."""
    from rich.console import Console

    if sys.stdout.isatty():
        return Console()
    return Console(width=10_000, soft_wrap=True, highlight=False)


console = LazyConsole(_console)


class LazyChoice(click.Choice):
    """A ``click.Choice`` whose values come from a function called when they are first
    needed (parsing that option, or its ``--help``): the values are an enum of a module
    that imports pydantic, which ``runner --help`` should not load."""

    def __init__(self, values: Callable[[], list[str]]) -> None:
        self._values = values
        self._loaded: tuple[str, ...] | None = None
        super().__init__([])

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        if self._loaded is None:
            self._loaded = tuple(self._values())
        return self._loaded

    @choices.setter
    def choices(self, _: Any) -> None:
        pass  # click.Choice.__init__ sets them; ours come from the function


def say(message: str) -> None:
    """A message for the person at the terminal: stderr (stdout stays data), never wrapped."""
    err_console.print(message, markup=False)


def make_client(include: tuple[str, ...] = (), org: str | None = None) -> "Client":
    """The client of a command. A Redis it never reached fails at once (one line); one
    that goes away mid-command, e.g. during --wait, is ridden out (runner/outage.py)."""
    from runner.client import Client

    return Client(org=org, include=[m for item in include for m in item.split(",") if m])


def read_store(org: str | None = None) -> tuple["StatusStore", str]:
    """The status store and org of a command that only reads job records (``runner
    status``, ``runner jobs``): what ``Client.get(job).status()`` and ``Client.jobs``
    read, without making a client, which imports the built-in and ``RUNNER_INCLUDE``
    template modules — a third of the command's start-up (benchmarks/README.md, CLI
    start-up)."""
    from runner.config import get_settings
    from runner.store import StatusStore

    settings = get_settings()
    return StatusStore.from_settings(settings), org or settings.org


def uri_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A click callback for a URI option: a bare path (``book.txt``, ``./out/``) is
    refused with the ``file://`` URI it meant, resolved where the command runs; an
    absolute one is said by the client itself (``runner.guards.uri``), for every caller."""
    if value is None or ":" in value or not value.strip():
        return value
    from pathlib import Path

    uri = Path(value).resolve().as_uri() + ("/" if value.endswith("/") else "")
    raise click.BadParameter(f"{value!r} is a path, not a URI; did you mean {uri}?")


def _parse_param(item: str) -> tuple[list[str], Any]:
    path, sep, raw = item.partition("=")
    parts = path.split(".")
    if not sep or len(parts) < 2 or not all(parts):
        raise click.BadParameter(f"{item!r}: use section.field=value, e.g. app.lowercase=false", param_hint="-p")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return parts, value


def _params_json(raw: str) -> dict[str, Any]:
    try:
        params = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{raw!r} is not valid JSON ({exc.msg}, column {exc.colno}); "
                                 """e.g. '{"app": {"lowercase": false}}'""", param_hint="--params-json") from None
    if not isinstance(params, dict):
        raise click.BadParameter(f"{raw!r} must be a JSON object of sections, e.g. "
                                 """'{"app": {"lowercase": false}}'""", param_hint="--params-json")
    return params


def parse_params(items: tuple[str, ...], params_json: str | None) -> dict[str, Any]:
    """The params of ``--params-json`` with every ``-p section.field=value`` on top."""
    params: dict[str, Any] = _params_json(params_json) if params_json else {}
    for item in items:
        path, value = _parse_param(item)
        node = params
        for depth, part in enumerate(path[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise click.BadParameter(f"{item!r}: {'.'.join(path[:depth + 1])} is already set to a value, "
                                         f"not a section", param_hint="-p")
        node[path[-1]] = value
    return params
