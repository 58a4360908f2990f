"""The status store: every read and write Runner makes in its Redis, composed of one
small part per concept over ONE connection.

============================  =======================================================
``store.jobs``                job records: create, read, update, transition, org index, deadlines
``store.pieces``              pieces and results: piece lists, results, folded runs, failures
``store.journal``             logs, events, metrics and task ids of jobs
``store.metric_series``       each job's metrics summarized and as capped series, live
``store.fleet``               worker heartbeats, leases, piece times, published/imported templates
``store.api_keys``            the HTTP API's key records, token digests, rate counters, link secret
``store.schedules``           schedules: definitions, due times and their claims, firings
``store.sources``             the Prediction API's sources, source versions and registered inputs
``store.fair_share``          jobs' batches held and handed out fairly between jobs and orgs
``store.ui_sessions``         the dashboard's sessions (``runner/ui/``)
``store.org_quotas``          org quotas (``runner orgs``): limits, queued/running/waiting counts
``store.dashboard``           the dashboard's reads: job index by cursor, fields of many jobs, log tail…
``store.keys``                every key's builder (:mod:`runner.store.keyspace`: the key table)
``store.live()``              async reads for the HTTP API's event loop (events, state, ping)
``store.broker(url)``         the broker's queue lengths (metrics)
============================  =======================================================

Every Lua script is in :mod:`runner.store.scripts`. No module outside this package
touches the raw connection (``store.redis``; tests may, to look under the hood).

The store was one class before it was composed; its names still work (``store.create``
is ``store.jobs.create``; ``store.job_key`` is ``store.keys.job_key``), forwarded by the
table ``_FORWARDED`` below, so callers move to the parts at their own pace.
"""

from __future__ import annotations

from typing import Any

import redis

from runner.config import Settings
from runner.redis_connect import connect
from runner.store.api_key_records import ApiKeyRecords
from runner.store.fair_share import FairShare
from runner.store.fleet_records import RECENT_SECONDS, BrokerQueues, FleetRecords
from runner.store.job_records import JobRecords
from runner.store.journal import EVENTS_MAXLEN, Journal
from runner.store.keyspace import Keys
from runner.store.live_reads import LiveReads
from runner.store.metric_series import MetricSeries
from runner.store.org_quotas import OrgQuotas
from runner.store.piece_results import Failure, PieceResults, Progress
from runner.store.schedule_records import ScheduleRecords
from runner.store.source_records import SourceRecords
from runner.store.dashboard_reads import DashboardReads
from runner.store.ui_sessions import UiSessions

__all__ = ["StatusStore", "Progress", "Failure", "EVENTS_MAXLEN", "RECENT_SECONDS", "Keys", "BrokerQueues", "LiveReads"]


class StatusStore:
    """Job records, pieces and results, the journal, fleet records, API keys and
    schedules, each a part over this store's one Redis connection."""

    def __init__(self, url: str, prefix: str = "runner", log_max_lines: int = 10_000,
                 outage_seconds: float = 60.0, patient: bool = False, master_name: str = "mymaster") -> None:
        self.url = url
        self.master_name = master_name
        self.outage_seconds = outage_seconds
        self.keys = Keys(prefix)
        self.redis: redis.Redis = connect(url, master_name, outage_seconds, patient, decode_responses=True)
        self.journal = Journal(self.redis, self.keys, log_max_lines)
        self.metric_series = MetricSeries(self.redis, self.keys)
        self.jobs = JobRecords(self.redis, self.keys, self.journal)
        self.pieces = PieceResults(self.redis, self.keys)
        self.fleet = FleetRecords(self.redis, self.keys)
        self.api_keys = ApiKeyRecords(self.redis, self.keys)
        self.schedules = ScheduleRecords(self.redis, self.keys)
        self.sources = SourceRecords(self.redis, self.keys)
        self.ui_sessions = UiSessions(self.redis, self.keys)
        self.fair_share = FairShare(self.redis, self.keys)
        self.dashboard = DashboardReads(self.redis, self.keys)
        self.org_quotas = OrgQuotas(self.redis, self.keys)
        self._brokers: dict[str, BrokerQueues] = {}

    @classmethod
    def from_settings(cls, settings: Settings, patient: bool = False) -> "StatusStore":
        """The store of ``settings``; ``patient`` (workers) waits for a Redis not up yet."""
        return cls(settings.status_store_url, settings.key_prefix, settings.log_max_lines,
                   settings.redis_outage_seconds, patient, settings.redis_master_name)

    @property
    def log_max_lines(self) -> int:
        return self.journal.log_max_lines

    def broker(self, url: str | None = None) -> BrokerQueues:
        """The broker's queues at ``url`` (``RUNNER_BROKER_URL``; this store's Redis when
        ``None`` or the same URL), connected like every client, Sentinel included."""
        if url is None or url == self.url:
            return BrokerQueues(self.redis, self.keys)
        if url not in self._brokers:  # one client per broker URL, not one per scrape
            client = connect(url, self.master_name, self.outage_seconds, decode_responses=True)
            self._brokers[url] = BrokerQueues(client, self.keys)
        return self._brokers[url]

    def live(self) -> LiveReads:
        """Async reads of this store (events as they come, state, ping), for an event loop:
        call it in the loop that will use them."""
        return LiveReads(self.url, self.master_name, self.keys)

    def wind_up(self, job_id: str, org: str, line: dict[str, Any] | None, keep_seconds: float) -> None:
        """After a job's final transition, in one round trip: its deadline forgotten and its
        ending logged unless the move logged it (journal), its held batches and slots freed
        (fair share), and its org's running/queued/waiting counts left (quotas)."""
        with self.redis.pipeline(transaction=False) as pipe:
            self.journal.close_out(job_id, line, keep_seconds, pipe)
            self.fair_share.forget(job_id, pipe)
            self.org_quotas.leave(org, job_id, pipe)
            pipe.execute()

    def close(self) -> None:
        """Close the connections' pools (a process that forks closes them first)."""
        for broker in self._brokers.values():
            broker.redis.close()
        self.redis.close()


class _Forward:
    """A name of the store from before it was composed: reads it from the part owning it."""

    def __init__(self, part: str, name: str) -> None:
        self.part, self.name = part, name

    def __get__(self, store: StatusStore | None, owner: type | None = None) -> Any:
        if store is None:
            return self
        return getattr(getattr(store, self.part), self.name)


_FORWARDED: dict[str, tuple[str, ...]] = {
    "jobs": ("create", "get", "snapshot", "fields", "update", "transition", "state", "list_jobs", "page_jobs",
             "delete_job", "keep_for", "set_deadline", "forget_deadline", "overdue"),
    "pieces": ("store_pieces", "load_pieces", "record_results", "record_runs", "record_ranges", "runs", "result_runs",
               "done_pieces", "missing_pieces", "iter_results", "get_result", "record_failure", "count_attempt",
               "reset_failures", "failed_pieces"),
    "journal": ("add_logs", "logs", "add_event", "read_events", "add_tasks", "tasks", "add_metrics", "metrics",
                "begin_batch", "report", "close_out"),
    "fleet": ("heartbeat_worker", "lease", "drop_leases", "renew_leases", "stale_leases", "claim_lease",
              "forget_worker", "live_workers", "note_piece_seconds", "piece_seconds", "publish_template",
              "published_templates", "record_import", "imported_template"),
    # the prefix and every key builder (job_key, events_key, ..., org_jobs_pattern)
    "keys": ("prefix", *(name for name in vars(Keys) if not name.startswith("_"))),
}

for _part, _names in _FORWARDED.items():
    for _name in _names:
        setattr(StatusStore, _name, _Forward(_part, _name))
del _part, _names, _name
