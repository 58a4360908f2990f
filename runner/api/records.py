"""Fields the foreign route families keep on a job's own record (JSON, like every other
field): ByteNite's ``description``; the Prediction API's ``schedule_hint``
(``{"expected_interval_minutes": n}``) and ``input_types`` (role → ``input_type``).
``JobStatus`` ignores them, so Runner's own views are unchanged: one job, three views.
"""

from __future__ import annotations

import json
from typing import Any

from runner.client import Client

__all__ = ["extra_fields"]


def extra_fields(client: Client, job_ids: list[str], *names: str) -> list[dict[str, Any]]:
    """``names`` of each job's record, decoded (missing ones ``None``), in one round trip
    for a whole page of jobs."""
    with client.store.redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hmget(client.store.job_key(job_id), list(names))
        rows = pipe.execute()
    return [{name: (json.loads(raw) if raw is not None else None) for name, raw in zip(names, row)} for row in rows]
