"""What the foreign route families write on a job's own record (JSON, like every other
field): ByteNite's ``description``; the Prediction API's ``schedule_hint``
(``{"expected_interval_minutes": n}``), ``input_types`` (role → ``input_type``),
``input_ids`` (role → registered input id), ``source_ref`` (``{source_id,
source_version_id, output_roles}``) and ``schedule`` (a standing job's schedule).
``JobStatus`` ignores them, so Runner's own views are unchanged: one job, three views.
And who cancelled a job through them, as its error says it.
"""

from __future__ import annotations

from typing import Any

from runner.api.keys import Principal
from runner.client import Client

__all__ = ["extra_fields", "requester"]


def extra_fields(client: Client, job_ids: list[str], *names: str) -> list[dict[str, Any]]:
    """``names`` of each job's record, decoded (missing ones ``None``), in one round trip
    for a whole page of jobs."""
    return client.store.jobs.fields_each(job_ids, *names)


def queued_by(who: Principal) -> str:
    """Who queued a job, as its first log line says it: the API key and its org."""
    return f"API key {who.key_id} (org {who.org})"


def requester(who: Principal) -> str:
    """Who cancelled, as the job's error says it: the API key (never the server's user)."""
    return f"API key {who.key_id}"
