"""What a job's page shows, read from the store: the state timeline, progress with rate
and ETA, the failed pieces, the log tail and the metrics as series.

Read-only, and every read is of a job the caller has already found in the viewer's org
(``web.job_or_404``): these functions take the job's id, never an org.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from runner.artifacts import summarize_metrics
from runner.models import JobState, JobStatus, LogLine
from runner.store import StatusStore

__all__ = ["Progress", "progress", "timeline", "failed_pieces", "log_tail", "metric_series", "LOG_TAIL",
           "FAILED_SHOWN", "log_view"]

LOG_TAIL = 500  # lines a page shows (the store keeps up to RUNNER_LOG_MAX_LINES)
FAILED_SHOWN = 100
RESULT_INLINE_BYTES = 256 * 1024
TIMELINE_EVENTS = 64  # events read from each end of the job's stream for its timeline
_STAGES = (JobState.QUEUED, JobState.PARTITIONING, JobState.RUNNING, JobState.ASSEMBLING)


@dataclass(frozen=True)
class Progress:
    """Pieces done/failed/total, and how fast: pieces a second since the job started and
    the seconds left at that rate (None until it can be said)."""

    done: int
    failed: int
    total: int | None
    rate: float | None
    eta: float | None


def progress(status: JobStatus, now: float | None = None) -> Progress:
    now = now or time.time()
    rate = eta = None
    if status.started_at is not None and status.pieces_done:
        end = status.finished_at.timestamp() if status.finished_at else now
        elapsed = max(1e-3, end - status.started_at.timestamp())
        rate = status.pieces_done / elapsed
        if status.pieces_total and not status.is_final:
            eta = max(0, status.pieces_total - status.pieces_done - status.pieces_failed) / rate
    return Progress(status.pieces_done, status.pieces_failed, status.pieces_total, rate, eta)


def _stamp(event_id: str) -> float:
    return int(event_id.split("-", 1)[0]) / 1000


def timeline(store: StatusStore, status: JobStatus) -> list[dict[str, Any]]:
    """Each stage the job went through, with when it began (from the state events, whose
    ids are their times, at both ends of the stream: a bounded read however many progress
    events lie between); the stages still ahead follow with no time; the end state last."""
    entered: dict[str, float] = {}
    # a big job's stream is mostly progress: its early states are at the start, the end at the end
    first, last = store.dashboard.event_ends(status.id, TIMELINE_EVENTS)
    for event_id, fields in [*first, *reversed(last)]:
        if fields.get("type") == "state":
            entered[fields["state"]] = _stamp(event_id)  # a retried job: its latest entry
    steps = [{"state": stage.value, "at": entered.get(stage.value), "reached": stage.value in entered}
             for stage in _STAGES]
    end = status.state.value if status.is_final else "end"
    at = status.finished_at.timestamp() if status.finished_at else entered.get(end)
    steps.append({"state": end, "at": at, "reached": status.is_final})
    current = status.state.value
    for step in steps:
        step["current"] = step["state"] == current
    return steps


def failed_pieces(store: StatusStore, job_id: str) -> tuple[int, list[dict[str, Any]]]:
    """How many pieces failed for good, and ``FAILED_SHOWN`` of them with their error: the
    lowest-numbered, or for a job with very many failures a bounded sample (``HSCAN``)."""
    count, raw = store.dashboard.failed(job_id, 10 * FAILED_SHOWN, FAILED_SHOWN)
    pieces = sorted(raw.items(), key=lambda item: int(item[0]))[:FAILED_SHOWN]
    return count, [{"piece": int(index), **_error(text)} for index, text in pieces]


def _error(text: str) -> dict[str, Any]:
    try:
        error = json.loads(text)
    except ValueError:
        return {"message": text}
    return error if isinstance(error, dict) else {"message": str(error)}


def log_view(line: LogLine) -> dict[str, Any]:
    """A log line as the page (and its event stream) shows it."""
    where = (f"piece {line.piece}" if line.piece is not None else
             f"pieces {line.start}..{line.stop - 1}" if line.start is not None and line.stop is not None else "job")
    return {"id": line.id, "t": line.t.strftime("%H:%M:%S.%f")[:-3], "level": line.level.upper(),
            "source": line.source, "where": where, "msg": line.msg, "piece": line.piece,
            "start": line.start, "stop": line.stop}


def log_tail(store: StatusStore, job_id: str, piece: int | None = None) -> list[dict[str, Any]]:
    """The newest ``LOG_TAIL`` lines (only those about ``piece``, when given), oldest first."""
    count = None if piece is not None else LOG_TAIL
    raw = store.dashboard.log_tail(job_id, count)
    lines = [LogLine.model_validate({"id": line_id, **fields}) for line_id, fields in reversed(raw)]
    if piece is not None:
        lines = [line for line in lines if line.concerns(piece)][-LOG_TAIL:]
    return [log_view(line) for line in lines]


def metric_series(store: StatusStore, job_id: str) -> dict[str, Any]:
    """Each metric's summary (the table) and, for numeric ones, its series by step (the
    charts): the live summaries (``store.metric_series``: one read, the latest 1,000 points
    per metric) — or, for a job whose metrics predate them, the values' list."""
    live = store.metric_series.read(job_id)
    if not live:
        return _from_values(store.metrics(job_id))
    summary = {name: m.model_dump(exclude={"series"}, exclude_none=True) for name, m in live.items()}
    series = {}
    for name, m in live.items():
        if m.mean is not None and m.series:
            points = sorted((float(step), float(value)) for step, value in m.series)  # a chart's x ascends
            series[name] = {"x": [x for x, _ in points], "y": [y for _, y in points]}
    return {"summary": summary, "series": series}


def _from_values(items: list[dict[str, Any]]) -> dict[str, Any]:
    series: dict[str, dict[str, list[float]]] = {}
    for item in items:
        value = item.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        points = series.setdefault(str(item.get("name")), {"x": [], "y": []})
        step = item.get("step")
        points["x"].append(float(step) if isinstance(step, (int, float)) else float(len(points["x"])))
        points["y"].append(float(value))
    return {"summary": summarize_metrics(items), "series": series}
