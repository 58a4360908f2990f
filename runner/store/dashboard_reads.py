"""What the dashboard (``runner/ui/``) reads that no other part offers: an org's job index
by score range and cursor, a few fields of many records in one command, both ends of a
job's event stream, a bounded sample of failed pieces, the log tail, the stored result
as text, and which org each of some jobs is in. Read-only.
"""

from __future__ import annotations

from typing import Any

from runner.store.part import Part
from runner.store.scripts import HMGET_MANY

__all__ = ["DashboardReads"]


class DashboardReads(Part):
    """The dashboard's reads; every write goes through the other parts (and the Client)."""

    # -- an org's job index, newest first ----------------------------------------------------
    def index_count(self, org: str, low: str, high: str) -> int:
        return int(self.redis.zcount(self.keys.org_jobs_key(org), low, high))

    def index_ids(self, org: str, high: str, low: str, offset: int, count: int) -> list[str]:
        """Job ids scored ``high`` down to ``low`` (Redis range syntax), ``count`` from ``offset``."""
        return self.redis.zrevrangebyscore(self.keys.org_jobs_key(org), high, low, start=offset, num=count)

    def index_ties(self, org: str, score: float) -> list[str]:
        """The ids with exactly ``score``, in index order (newest first: ids descending)."""
        return sorted(self.redis.zrangebyscore(self.keys.org_jobs_key(org), repr(score), repr(score)), reverse=True)

    def index_score(self, org: str, job_id: str) -> float | None:
        return self.redis.zscore(self.keys.org_jobs_key(org), job_id)

    def records(self, job_ids: list[str]) -> list[dict[str, str]]:
        """Each job's record as stored (empty for one that is gone), one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(self.keys.job_key(job_id))
            return pipe.execute()

    def fields_many(self, job_ids: list[str], names: tuple[str, ...]) -> list[dict[str, str | None]]:
        """``names`` of each record as stored (JSON; ``None`` when missing), in one command."""
        script = self.redis.register_script(HMGET_MANY)
        flat = script(keys=[self.keys.job_key(job_id) for job_id in job_ids], args=list(names))
        values = [v if isinstance(v, str) else None for v in flat]  # a missing field: false or nil
        return [dict(zip(names, values[i:i + len(names)])) for i in range(0, len(values), len(names))]

    def orgs_of(self, job_ids: list[str]) -> list[str | None]:
        """Each job's org as stored (JSON), ``None`` for one that is gone."""
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(self.keys.job_key(job_id), "org")
            return pipe.execute()

    # -- one job ---------------------------------------------------------------------------
    def event_ends(self, job_id: str, count: int) -> tuple[list[Any], list[Any]]:
        """The first and the last ``count`` events of the job (the last newest first)."""
        key = self.keys.events_key(job_id)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.xrange(key, "-", "+", count=count)
            pipe.xrevrange(key, "+", "-", count=count)
            first, last = pipe.execute()
        return first, last

    def failed(self, job_id: str, whole_up_to: int, sample: int) -> tuple[int, dict[str, str]]:
        """How many pieces failed, and their errors: all when at most ``whole_up_to``, else
        a sample of about ``sample`` (``HSCAN``), so a huge failure costs little."""
        key = self.keys.failed_key(job_id)
        count = int(self.redis.hlen(key))
        if count <= whole_up_to:
            return count, self.redis.hgetall(key)
        return count, dict(self.redis.hscan(key, 0, count=sample)[1])

    def log_tail(self, job_id: str, count: int | None) -> list[tuple[str, dict[str, str]]]:
        """The newest ``count`` log lines (all when ``None``), newest first."""
        return self.redis.xrevrange(self.keys.logs_key(job_id), "+", "-", count=count)

    def newest_log_id(self, job_id: str) -> str:
        newest = self.redis.xrevrange(self.keys.logs_key(job_id), "+", "-", count=1)
        return newest[0][0] if newest else "0-0"

    def raw_result(self, job_id: str) -> str | None:
        """The assembled result as stored (JSON text), to show or send unchanged."""
        return self.redis.get(self.keys.result_key(job_id))
