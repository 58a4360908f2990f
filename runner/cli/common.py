"""What every command shares: the console and turning options into a :class:`Client`."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console

from runner.client import Client

__all__ = ["console", "make_client", "parse_params"]

console = Console()


def make_client(include: tuple[str, ...] = (), org: str | None = None) -> Client:
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


def parse_params(items: tuple[str, ...], params_json: str | None) -> dict[str, Any]:
    params: dict[str, Any] = json.loads(params_json) if params_json else {}
    for item in items:
        path, value = _parse_param(item)
        node = params
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return params
