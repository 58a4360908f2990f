"""A job page's live feed: one server-sent event stream per open page, carrying the
job's events (state changes, progress, failed pieces) and its new log lines.

One blocking ``XREAD`` waits on both streams at once, so an open page costs one Redis
connection and no polling; between reads the session is checked again (its key may
have been revoked: the page is then told ``signed-out`` and the stream ends). The event
id is ``<events cursor>,<logs cursor>``, so a reconnecting ``EventSource`` resumes exactly
after the last message of each stream. The stream ends shortly after the job's final
state, once the closing log lines have had time to arrive.

Async (``redis.asyncio``), like ``runner.api.events``: a thread per open page would
exhaust the threadpool that every other route needs.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import redis.asyncio as aredis
from fastapi.responses import StreamingResponse

from runner.models import FINAL_STATES, LogLine
from runner.store import StatusStore
from runner.ui.jobview import log_view

__all__ = ["live_stream", "parse_cursor"]

BLOCK_MS = 1000
KEEPALIVE_TICKS = 15
DRAIN_TICKS = 2  # reads after the final state, for the job's closing log lines
_FINAL = {state.value for state in FINAL_STATES}
_CURSOR = re.compile(r"^(\d{1,20}-\d{1,20}),(\d{1,20}-\d{1,20})$")


def parse_cursor(value: str | None, events: str, logs: str) -> tuple[str, str]:
    """``<events id>,<logs id>`` from ``Last-Event-ID``; else the page's own starting ids."""
    match = _CURSOR.match(value or "")
    return (match.group(1), match.group(2)) if match else (events, logs)


def _frame(kind: str, cursor: tuple[str, str], data: dict) -> str:
    return f"id: {cursor[0]},{cursor[1]}\nevent: {kind}\ndata: {json.dumps(data)}\n\n"


class _Feed:
    """The cursors of one stream and the frames their entries make."""

    def __init__(self, store: StatusStore, job_id: str, events: str, logs: str) -> None:
        self.keys = (store.events_key(job_id), store.logs_key(job_id))
        self.cursor = [events, logs]
        self.final = False

    def frames(self, answer: list) -> list[str]:
        out = []
        for key, entries in answer:
            for entry_id, fields in entries:
                if key == self.keys[0]:
                    self.cursor[0] = entry_id
                    self.final = self.final or (fields.get("type") == "state" and fields.get("state") in _FINAL)
                    out.append(_frame("job", (self.cursor[0], self.cursor[1]), fields))
                else:
                    self.cursor[1] = entry_id
                    line = LogLine.model_validate({"id": entry_id, **fields})
                    out.append(_frame("log", (self.cursor[0], self.cursor[1]), log_view(line)))
        return out


async def _alive(conn: aredis.Redis, alive: tuple[str, str]) -> bool:
    return int(await conn.exists(*alive)) == 2


async def _frames(conn: aredis.Redis, feed: _Feed, alive: tuple[str, str], job_key: str) -> AsyncIterator[str]:
    idle = drained = 0
    while True:
        if not await _alive(conn, alive):
            yield "event: signed-out\ndata: {}\n\n"
            return
        answer = await conn.xread(dict(zip(feed.keys, feed.cursor)), block=BLOCK_MS, count=500)
        for frame in feed.frames(answer):
            yield frame
        if not feed.final and not answer and not await conn.exists(job_key):
            feed.final = True  # deleted (or expired) while watched
        if feed.final:
            drained += 1
            if drained > DRAIN_TICKS:
                yield "event: end\ndata: {}\n\n"
                return
        idle = 0 if answer else idle + 1
        if idle >= KEEPALIVE_TICKS:
            idle = 0
            yield ": keep-alive\n\n"


def live_stream(conn: aredis.Redis, store: StatusStore, job_id: str, cursor: tuple[str, str],
                alive: tuple[str, str], final: bool) -> StreamingResponse:
    """The SSE response of a job page. The caller has checked the job is the viewer's."""
    feed = _Feed(store, job_id, *cursor)
    feed.final = final
    return StreamingResponse(_frames(conn, feed, alive, store.job_key(job_id)), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
