"""Prometheus metrics read from the store at each scrape, with prometheus_client.

Nothing is counted in process memory: a collector reads the store when scraped, so any
number of ``runner metrics`` servers (or the HTTP API's ``/metrics``, which mounts
:func:`render`) agree with each other and with ``runner jobs``. Flower's own
``/metrics`` (Celery task events) is left as it is.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric

from runner.config import Settings
from runner.schedule_store import ScheduleStore
from runner.scheduler import last_success, overdue_since
from runner.store import StatusStore

__all__ = ["StoreCollector", "registry", "render", "serve", "CONTENT_TYPE", "DURATION_BUCKETS"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)


class StoreCollector:
    """Collects every Runner metric from the store (and the broker's queue lengths)."""

    def __init__(self, store: StatusStore, broker_url: str | None = None) -> None:
        self.store = store
        self.broker = redis.Redis.from_url(broker_url, decode_responses=True) if broker_url else store.redis

    def collect(self) -> Iterator[Metric]:
        jobs = list(self._jobs())
        yield from self._job_metrics(jobs)
        yield from self._fleet_metrics()
        yield from self._schedule_metrics()

    def _jobs(self) -> Iterator[dict[str, Any]]:
        """Every job record still in the store, of every org (the fields metrics need),
        read in pipelined chunks: a scrape over 10,000 jobs is a few round trips."""
        names = ("org", "template", "state", "pieces_done", "pieces_failed", "queued_at", "finished_at")
        for key in self.store.redis.scan_iter(match=self.store.org_jobs_pattern(), count=500):
            ids = self.store.redis.zrange(key, 0, -1)
            for start in range(0, len(ids), 1000):
                with self.store.redis.pipeline(transaction=False) as pipe:
                    for job_id in ids[start:start + 1000]:
                        pipe.hmget(self.store.job_key(job_id), names)
                    rows = pipe.execute()
                for row in rows:
                    if row[2] is not None:  # expired jobs leave only their index entry
                        yield {n: json.loads(v) if v is not None else None for n, v in zip(names, row)}

    def _job_metrics(self, jobs: list[dict[str, Any]]) -> Iterator[Metric]:
        by_state = GaugeMetricFamily("runner_jobs", "Jobs in the store by org, template and state.",
                                     labels=["org", "template", "state"])
        for (org, template, state), n in sorted(Counter((j["org"], j["template"], j["state"]) for j in jobs).items()):
            by_state.add_metric([org, template, state], n)
        yield by_state
        done = GaugeMetricFamily("runner_pieces_done", "Pieces done, summed over the jobs in the store.",
                                 labels=["template"])
        failed = GaugeMetricFamily("runner_pieces_failed", "Pieces failed, summed over the jobs in the store.",
                                   labels=["template"])
        for template in sorted({j["template"] for j in jobs}):
            done.add_metric([template], sum(int(j["pieces_done"] or 0) for j in jobs if j["template"] == template))
            failed.add_metric([template], sum(int(j["pieces_failed"] or 0) for j in jobs if j["template"] == template))
        yield done
        yield failed
        yield self._durations(jobs)

    def _durations(self, jobs: list[dict[str, Any]]) -> HistogramMetricFamily:
        """Queued-to-finished seconds of finished jobs, by template."""
        histogram = HistogramMetricFamily("runner_job_duration_seconds", "Seconds from queued to finished.",
                                          labels=["template"])
        for template in sorted({j["template"] for j in jobs}):
            seconds = [float(j["finished_at"]) - float(j["queued_at"]) for j in jobs
                       if j["template"] == template and j["finished_at"] and j["queued_at"]]
            if not seconds:
                continue
            buckets = [(str(b), sum(1 for s in seconds if s <= b)) for b in DURATION_BUCKETS]
            histogram.add_metric([template], buckets + [("+Inf", len(seconds))], sum(seconds))
        return histogram

    def _fleet_metrics(self) -> Iterator[Metric]:
        workers = self.store.live_workers()
        queues = sorted({q for w in workers.values() for q in w.queues})
        processes = GaugeMetricFamily("runner_worker_processes", "Live worker processes consuming each queue.",
                                      labels=["queue"])
        depth = GaugeMetricFamily("runner_queue_depth", "Messages waiting in each queue of the broker.",
                                  labels=["queue"])
        for queue in queues:
            processes.add_metric([queue], sum(w.concurrency for w in workers.values() if w.serves(queue)))
            depth.add_metric([queue], self.broker.llen(self.store.broker_queue_key(queue)))
        yield processes
        yield depth

    def _schedule_metrics(self) -> Iterator[Metric]:
        schedules = ScheduleStore(self.store)
        overdue = GaugeMetricFamily("runner_schedule_overdue", "1 if no run of the schedule completed within its "
                                    "expected_interval.", labels=["org", "schedule"])
        success = GaugeMetricFamily("runner_schedule_last_success_timestamp_seconds",
                                    "When the schedule's newest completed run finished.", labels=["org", "schedule"])
        now_ms = round(time.time() * 1000)
        for org in self._schedule_orgs():
            for name in schedules.names(org):
                try:
                    spec, state = schedules.get(org, name)
                except Exception:  # deleted meanwhile
                    continue
                done = last_success(self.store, schedules, spec)
                overdue.add_metric([org, name], 1 if overdue_since(spec, state, done, now_ms) is not None else 0)
                if done is not None:
                    success.add_metric([org, name], done)
        yield overdue
        yield success

    def _schedule_orgs(self) -> list[str]:
        members = self.store.redis.zrange(self.store.schedules_due_key(), 0, -1)
        members += self.store.redis.zrange(self.store.schedules_checks_key(), 0, -1)
        orgs = {json.loads(m)[0] for m in members}
        orgs |= {self.store.org_of_jobs_key(k) for k in self.store.redis.scan_iter(match=self.store.org_jobs_pattern())}
        return sorted(orgs)


def registry(store: StatusStore, broker_url: str | None = None) -> CollectorRegistry:
    """A registry holding only Runner's store collector."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StoreCollector(store, broker_url))
    return reg


def render(store: StatusStore, broker_url: str | None = None) -> bytes:
    """The metrics in Prometheus' text format (``CONTENT_TYPE``): what ``/metrics`` serves."""
    return generate_latest(registry(store, broker_url))


def serve(settings: Settings, port: int, addr: str = "0.0.0.0") -> Any:
    """Serve ``/metrics`` on ``port`` in a background thread; returns prometheus_client's server."""
    store = StatusStore.from_settings(settings)
    server, _thread = start_http_server(port, addr=addr, registry=registry(store, settings.broker_url))
    return server
