"""The jobs list's query: one page of an org's jobs, newest first, filtered, by cursor.

Why not ``StatusStore.page_jobs``: it reads every job's state to count matches, a
round trip over the whole index that grows with it (100,000 jobs: ~100,000 reads per
page). Here a page walks the org's index (``P:org:{org}:jobs``, scored by creation
time) *from a cursor*, newest first: with no filter it reads exactly one page of ids
(``ZREVRANGEBYSCORE … LIMIT``) and their records; with filters it reads ids in chunks,
with only the fields filters need (one ``HMGET_MANY`` command per chunk), and stops when
the page is full or after ``MAX_SCAN`` ids, returning a cursor to carry on — so no page
costs more than a bounded amount, however large the index. The time range is the score
range itself. The reads are the store's (``store.dashboard``).

The cursor is ``<score>:<id>`` of the last row shown; ties on the score (jobs created
in the same microsecond) are ordered by id, as Redis orders them. Read-only: expired
ids left in the index are skipped, never written (``list_jobs`` prunes them).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from runner.models import JobState, JobStatus
from runner.store import StatusStore

__all__ = ["JobFilter", "JobPage", "page_of_jobs", "MAX_SCAN"]

CHUNK = 1000
MAX_SCAN = 10_000
_CURSOR = re.compile(r"^(-?[0-9.e+-]{1,32}):([A-Za-z0-9_.-]{1,64})$")


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

    @property
    def fields(self) -> tuple[str, ...]:
        """The record fields these filters read (``state`` always: an expired job has none)."""
        wanted = {"state": True, "template": self.template, "schedule": self.schedule, "name": self.name}
        return tuple(name for name, used in wanted.items() if used)

    def matches(self, job_id: str, row: dict[str, str | None]) -> bool:
        """Whether a job's raw (JSON-encoded) fields pass the filters; an expired job's
        index entry (no record left) never does."""
        if row.get("state") is None:
            return False
        if self.state is not None and row["state"] != json.dumps(self.state.value):
            return False
        template = json.loads(row.get("template") or '""')
        if self.template and self.template not in (template, template.partition("@")[0]):
            return False
        if self.schedule and json.loads(row.get("schedule") or "null") != self.schedule:
            return False
        needle = (self.name or "").lower()
        return not needle or needle in (json.loads(row.get("name") or "null") or "").lower() or needle in job_id.lower()


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


def _ties(store: StatusStore, org: str, score: float, last_id: str) -> list[str]:
    """Jobs with the cursor row's very score that come after it (Redis orders equal scores
    by id, descending, newest first): normally none."""
    return [job_id for job_id in store.dashboard.index_ties(org, score) if job_id < last_id]


def _chunks(store: StatusStore, org: str, flt: JobFilter, top: float, last_id: str | None,
            size: int) -> Iterator[list[str]]:
    """Ids newest first from the cursor (or the top of the range), ``size`` at a time;
    ids only, no scores: reading the index is most of a filtered page's cost."""
    high = "+inf" if math.isinf(top) else repr(top)
    if last_id is not None:
        yield _ties(store, org, top, last_id)
        high = f"({high}"
    low, offset = (repr(flt.since) if flt.since is not None else "-inf"), 0
    while True:
        ids = store.dashboard.index_ids(org, high, low, offset, size)
        offset += len(ids)
        yield ids
        if len(ids) < size:
            return


def _records(store: StatusStore, ids: list[str], org: str) -> list[JobStatus]:
    found = []
    for raw in store.dashboard.records(ids):
        data = {k: json.loads(v) for k, v in raw.items()}
        if data and data.get("org") == org:
            found.append(JobStatus.model_validate(data))
    return found


def page_of_jobs(store: StatusStore, org: str, flt: JobFilter, cursor: str | None = None,
                 limit: int = 50) -> JobPage:
    """One page of ``org``'s jobs matching ``flt``, newest first, after ``cursor``."""
    top, last_id = _bounds(flt, cursor)
    low, high = (repr(flt.since) if flt.since is not None else "-inf"), (repr(flt.until) if flt.until else "+inf")
    page = JobPage(in_range=store.dashboard.index_count(org, low, high))
    chosen: list[str] = []
    last_read, exhausted = None, True
    for ids in _chunks(store, org, flt, top, last_id, CHUNK if flt.by_fields else limit + 1):
        page.scanned += len(ids)
        last_read = ids[-1] if ids else last_read
        if flt.by_fields and ids:
            rows = store.dashboard.fields_many(ids, flt.fields)
            ids = [job_id for job_id, row in zip(ids, rows) if flt.matches(job_id, row)]
        chosen.extend(ids)
        if len(chosen) > limit or page.scanned >= MAX_SCAN:
            exhausted = False
            break
    shown = chosen[:limit]
    page.jobs = _records(store, shown, org)
    if len(chosen) > limit:
        page.next_cursor = _cursor(store, org, shown[-1])
    elif not exhausted and last_read is not None:  # stopped after MAX_SCAN ids: carry on from there
        page.next_cursor = _cursor(store, org, last_read)
    return page


def _cursor(store: StatusStore, org: str, job_id: str) -> str:
    score = store.dashboard.index_score(org, job_id)
    return f"{score!r}:{job_id}"
