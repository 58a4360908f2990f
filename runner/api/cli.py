"""``runner api`` and ``runner keys``: registered on the main CLI by ``runner/cli.py``.

FastAPI and uvicorn are imported only when ``runner api`` runs.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import click

__all__ = ["api", "keys"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (loopback by default).")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--workers", type=int, default=1, show_default=True, help="uvicorn worker processes.")
@click.option("--include", "-I", multiple=True, help="Module(s) defining templates (comma-separated).")
@click.option("--log-level", default="info", show_default=True)
@click.option("--no-ui", is_flag=True, help="Do not serve the jobs dashboard at /ui.")
def api(host: str, port: int, workers: int, include: tuple[str, ...], log_level: str, no_ui: bool) -> None:
    """Serve the HTTP API (OpenAPI at /docs and /openapi.json; GET /healthz needs no auth) and
    the jobs dashboard at /ui (sign in with an API key)."""
    import sys

    import uvicorn

    from runner.config import get_settings

    settings = get_settings()  # a bad RUNNER_* setting fails here, once, not in every worker
    # like `python -m workers` and `celery -A`: --include myjobs finds myjobs.py in the cwd
    sys.path.insert(0, os.getcwd())
    if no_ui:
        os.environ["RUNNER_UI"] = "false"  # uvicorn's worker processes read it too
    modules = [m for item in include for m in item.split(",") if m]
    if modules:
        # uvicorn's worker processes build their own app from the environment
        os.environ["RUNNER_INCLUDE"] = ",".join(dict.fromkeys([*settings.include, *modules]))
    uvicorn.run("runner.api.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, server_header=False, proxy_headers=False)


def _keys():
    from runner.api.keys import ApiKeys
    from runner.config import get_settings
    from runner.store import StatusStore

    return ApiKeys(StatusStore.from_settings(get_settings()))


@click.group()
def keys() -> None:
    """Create, list and revoke HTTP API keys (one org each)."""


@keys.command("create")
@click.option("--org", required=True, help="The org the key acts for.")
@click.option("--json", "as_json", is_flag=True, help="Print {id, org, key}.")
def create(org: str, as_json: bool) -> None:
    """Create a key; it is printed once and only its hash is kept."""
    try:
        key_id, key = _keys().create(org)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--org") from None
    if as_json:
        click.echo(json.dumps({"id": key_id, "org": org, "key": key}))
    else:
        click.echo(f"key {key_id} for org {org} (shown once; store it now):\n{key}")


@keys.command("list")
@click.option("--org", required=True)
@click.option("--json", "as_json", is_flag=True)
def list_(org: str, as_json: bool) -> None:
    """List an org's keys (ids and dates; secrets are never kept)."""
    found = _keys().list(org)
    if as_json:
        click.echo(json.dumps([{"id": k.id, "org": k.org, "created_at": k.created_at} for k in found]))
        return
    for info in found:
        created = datetime.fromtimestamp(info.created_at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        click.echo(f"{info.id}  {info.org}  {created}")
    if not found:
        click.echo(f"no keys for org {org}")


@keys.command("revoke")
@click.argument("key_id")
def revoke(key_id: str) -> None:
    """Revoke a key: its tokens stop working at once."""
    if not _keys().revoke(key_id):
        raise click.ClickException(f"no key {key_id!r} (see runner keys list --org X)")
    click.echo(f"key {key_id} revoked")
