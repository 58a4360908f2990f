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

from fastapi.responses import StreamingResponse

from runner.models import FINAL_STATES, LogLine
from runner.store import LiveReads
from runner.ui.jobview import log_view
from runner.ui.session import Session

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


class _Feed:
    """The cursors of one page's feed and the frames its entries make."""

    def __init__(self, events: str, logs: str, final: bool) -> None:
        self.cursor = {"events": events, "logs": logs}
        self.final = final

    def _frame(self, kind: str, data: dict) -> str:
        return f"id: {self.cursor['events']},{self.cursor['logs']}\nevent: {kind}\ndata: {json.dumps(data)}\n\n"

    def frames(self, entries: list[tuple[str, str, dict[str, str]]]) -> list[str]:
        out = []
        for stream, entry_id, fields in entries:
            self.cursor[stream] = entry_id
            if stream == "events":
                self.final = self.final or (fields.get("type") == "state" and fields.get("state") in _FINAL)
                out.append(self._frame("job", fields))
            else:
                out.append(self._frame("log", log_view(LogLine.model_validate({"id": entry_id, **fields}))))
        return out


async def _frames(live: LiveReads, feed: _Feed, job_id: str, session: Session) -> AsyncIterator[str]:
    idle = drained = 0
    while True:
        if not await live.session_alive(session.digest, session.key_id):
            yield "event: signed-out\ndata: {}\n\n"
            return
        entries = await live.feed(job_id, feed.cursor["events"], feed.cursor["logs"], BLOCK_MS)
        for frame in feed.frames(entries):
            yield frame
        if not feed.final and not entries and not await live.job_exists(job_id):
            feed.final = True  # deleted (or expired) while watched
        if feed.final:
            drained += 1
            if drained > DRAIN_TICKS:
                yield "event: end\ndata: {}\n\n"
                return
        idle = 0 if entries else idle + 1
        if idle >= KEEPALIVE_TICKS:
            idle = 0
            yield ": keep-alive\n\n"


def live_stream(live: LiveReads, job_id: str, cursor: tuple[str, str], session: Session,
                final: bool) -> StreamingResponse:
    """The SSE response of a job page. The caller has checked the job is the viewer's."""
    return StreamingResponse(_frames(live, _Feed(*cursor, final), job_id, session), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
