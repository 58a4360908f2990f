"""A job's events stream as server-sent events (``GET /v1/jobs/{id}/events``).

Each Redis stream entry becomes one SSE message whose ``id`` is the entry id, so a
client that reconnects with ``Last-Event-ID`` resumes exactly after the last one it
saw. The response ends after the job's final state; a comment line every
``KEEPALIVE_SECONDS`` keeps proxies from closing an idle stream.

The loop is async (the store's :class:`~runner.store.LiveReads`): a blocking read per open
stream would hold one of the threadpool's 40 threads each, and 40 watchers would stall
every other route.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

from runner.models import FINAL_STATES
from runner.store import LiveReads

__all__ = ["event_stream"]

BLOCK_MS = 1000
KEEPALIVE_SECONDS = 15
_FINAL = {state.value for state in FINAL_STATES}


def _frame(event_id: str, fields: dict[str, str]) -> str:
    return f"id: {event_id}\nevent: {fields.get('type', 'message')}\ndata: {json.dumps(fields)}\n\n"


async def _frames(live: LiveReads, job_id: str, after: str) -> AsyncIterator[str]:
    cursor, idle = after, 0
    while True:
        events = await live.events(job_id, cursor, BLOCK_MS)
        for event_id, fields in events:
            cursor = event_id
            yield _frame(event_id, fields)
            if fields.get("type") == "state" and fields.get("state") in _FINAL:
                return
        if events:
            idle = 0
            continue
        state = await live.state(job_id)
        if state is None or state in _FINAL:  # ended before `after`, or deleted: drain and stop
            for event_id, fields in await live.events(job_id, cursor, None):
                yield _frame(event_id, fields)
            return
        idle += 1
        if idle * BLOCK_MS >= KEEPALIVE_SECONDS * 1000:
            idle = 0
            yield ": keep-alive\n\n"


def event_stream(live: LiveReads, job_id: str, after: str | None) -> StreamingResponse:
    """The SSE response for ``job_id``'s events after ``after`` (all when None). The
    caller has already checked that the job belongs to the caller's org."""
    return StreamingResponse(_frames(live, job_id, after or "0-0"), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
