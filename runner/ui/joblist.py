"""The jobs list's query: one page of an org's jobs, newest first, filtered, by cursor.

Why not ``StatusStore.page_jobs``: it reads every job's state to count matches, a
round trip over the whole index that grows with it (100,000 jobs: ~100,000 reads per
page). Here a page walks the org's index (``P:org:{org}:jobs``, scored by creation
time) *from a cursor*, newest first: with no filter it reads exactly one page of ids
(``ZREVRANGEBYSCORE … LIMIT``) and their records; with filters it reads ids in chunks
with only the fields filters need, pipelined, and stops when the page is full or after
``MAX_SCAN`` ids, returning a cursor to carry on — so no page costs more than a bounded
amount, however large the index. The time range is the score range itself.

The cursor is ``<score>:<id>`` of the last row shown; ties on the score (jobs created
in the same microsecond) are ordered by id, as Redis orders them. Read-only: expired
ids left in the index are skipped, never written (``list_jobs`` prunes them).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from runner.models import JobState, JobStatus
from runner.store import StatusStore

__all__ = ["JobFilter", "JobPage", "page_of_jobs", "MAX_SCAN"]

CHUNK = 500
MAX_SCAN = 20_000
_CURSOR = re.compile(r"^(-?[0-9.e+-]{1,32}):([A-Za-z0-9_.-]{1,64})$")
_FIELDS = ("state", "template", "name", "schedule")


@dataclass(frozen=True)
class JobFilter:
    """What the list shows: a state, a template (``name`` or ``name@version``), a schedule,
    text in the name or id, and a creation time range (epoch seconds)."""

    state: JobState | None = None
    template: str | None = None
    schedule: str | None = None
    name: str | None = None
    since: float | None = None
    until: float | None = None

    @property
    def by_fields(self) -> bool:
        return any((self.state, self.template, self.schedule, self.name))

    def matches(self, job_id: str, row: dict[str, Any]) -> bool:
        if row.get("state") is None:  # expired: only its index entry is left
            return False
        if self.state is not None and row["state"] != self.state.value:
            return False
        template = row.get("template") or ""
        if self.template and self.template not in (template, template.partition("@")[0]):
            return False
        if self.schedule and row.get("schedule") != self.schedule:
            return False
        needle = (self.name or "").lower()
        return not needle or needle in (row.get("name") or "").lower() or needle in job_id.lower()


@dataclass
class JobPage:
    """A page of jobs, the cursor of the next (None at the end), how many jobs the time
    range holds, and how many ids were read (a filter that matched little stops early)."""

    jobs: list[JobStatus] = field(default_factory=list)
    next_cursor: str | None = None
    in_range: int = 0
    scanned: int = 0


def _bounds(flt: JobFilter, cursor: str | None) -> tuple[float, str | None]:
    """The highest score to read from and the id of the cursor's row (skip up to it)."""
    top = flt.until if flt.until is not None else math.inf
    match = _CURSOR.match(cursor or "")
    if match is None:
        return top, None
    return min(top, float(match.group(1))), match.group(2)


def _after_cursor(entries: list[tuple[str, float]], score: float, last_id: str | None) -> list[tuple[str, float]]:
    """Drop the entries at or before the cursor's row (same score, id not below it)."""
    if last_id is None:
        return entries
    return [(job_id, s) for job_id, s in entries if not (s == score and job_id >= last_id)]


def _read(store: StatusStore, key: str, top: float, bottom: float, offset: int, count: int) -> list[tuple[str, float]]:
    high = "+inf" if math.isinf(top) else repr(top)
    return store.redis.zrevrangebyscore(key, high, bottom, start=offset, num=count, withscores=True)


def _records(store: StatusStore, ids: list[str], org: str) -> list[JobStatus]:
    with store.redis.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hgetall(store.job_key(job_id))
        raws = pipe.execute()
    found = []
    for raw in raws:
        data = {k: json.loads(v) for k, v in raw.items()}
        if data and data.get("org") == org:
            found.append(JobStatus.model_validate(data))
    return found


def _fields(store: StatusStore, ids: list[str]) -> list[dict[str, Any]]:
    with store.redis.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hmget(store.job_key(job_id), _FIELDS)
        rows = pipe.execute()
    return [{n: (json.loads(v) if v is not None else None) for n, v in zip(_FIELDS, row)} for row in rows]


def page_of_jobs(store: StatusStore, org: str, flt: JobFilter, cursor: str | None = None,
                 limit: int = 50) -> JobPage:
    """One page of ``org``'s jobs matching ``flt``, newest first, after ``cursor``."""
    key = store.org_jobs_key(org)
    top, last_id = _bounds(flt, cursor)
    bottom = repr(flt.since) if flt.since is not None else "-inf"
    page = JobPage(in_range=store.redis.zcount(key, bottom, repr(flt.until) if flt.until is not None else "+inf"))
    chosen: list[tuple[str, float]] = []
    offset, exhausted, last_read = 0, False, None
    while len(chosen) <= limit and page.scanned < MAX_SCAN and not exhausted:
        size = CHUNK if flt.by_fields else limit + 1 - len(chosen) + (1 if last_id else 0)
        entries = _read(store, key, top, bottom, offset, size)
        offset += len(entries)
        page.scanned += len(entries)
        exhausted = len(entries) < size
        last_read = entries[-1] if entries else last_read
        entries = _after_cursor(entries, top, last_id)
        if flt.by_fields and entries:
            rows = _fields(store, [job_id for job_id, _ in entries])
            entries = [entry for entry, row in zip(entries, rows) if flt.matches(entry[0], row)]
        chosen.extend(entries)
    shown = chosen[:limit]
    page.jobs = _records(store, [job_id for job_id, _ in shown], org)
    if len(chosen) > limit:
        page.next_cursor = _cursor(*shown[-1])
    elif not exhausted and last_read is not None:  # stopped after MAX_SCAN ids: carry on from there
        page.next_cursor = _cursor(*last_read)
    return page


def _cursor(job_id: str, score: float) -> str:
    return f"{score!r}:{job_id}"
