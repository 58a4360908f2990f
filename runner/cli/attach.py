"""``runner attach``: create a job your own process runs, and print its id and own key.

::

    runner attach --name train --settings '{"epochs": 3}' --json
    # {"id": "…", "apiKey": "rk_…"}  →  python train.py --job_id … --api_key …
"""

from __future__ import annotations

import json

import click

from runner.cli.common import make_client, say

__all__ = ["attach"]


@click.command()
@click.option("--name", default=None, help="The job's name.")
@click.option("--settings", "settings_json", default=None, help="The job's settings as one JSON object.")
@click.option("--job-timeout", type=float, default=None, help="Seconds the whole job may run.")
@click.option("--retention-hours", type=float, default=None, help="Hours the ended job is kept.")
@click.option("--json", "as_json", is_flag=True, help="Print {id, apiKey} as JSON.")
@click.option("--org", default=None)
def attach(name: str | None, settings_json: str | None, job_timeout: float | None, retention_hours: float | None,
           as_json: bool, org: str | None) -> None:
    """Create a job your own process runs (runner.attach.Job); prints its id and its own
    API key (shown only now)."""
    try:
        settings = json.loads(settings_json) if settings_json is not None else None
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON ({exc.msg} at character {exc.pos})", param_hint="--settings") from None
    job, key = make_client(org=org).create_attached(name=name, settings=settings, job_timeout=job_timeout,
                                                    retention_hours=retention_hours)
    if as_json:
        print(json.dumps({"id": job.id, "apiKey": key}))
        return
    print(job.id)
    print(key)
    say(f"next: python your_job.py --job_id {job.id} --api_key <the key above> (RUNNER_API_URL: runner api)")
