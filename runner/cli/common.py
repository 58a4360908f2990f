"""What every command shares: the console and turning options into a :class:`Client`."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console

from runner.exits import err_console
from runner.client import Client

__all__ = ["console", "say", "make_client", "parse_params"]

def _console() -> Console:
    """The stdout console; when piped it never wraps or cuts (ids stay whole)."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=10_000, soft_wrap=True, highlight=False)


console = _console()


def say(message: str) -> None:
    """A message for the person at the terminal: stderr (stdout stays data), never wrapped."""
    err_console.print(message, markup=False)


def make_client(include: tuple[str, ...] = (), org: str | None = None) -> Client:
    """The client of a command. A Redis it never reached fails at once (one line); one
    that goes away mid-command, e.g. during --wait, is ridden out (runner/outage.py)."""
    return Client(org=org, include=[m for item in include for m in item.split(",") if m])


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
