"""Prometheus metrics read from the store at each scrape, with prometheus_client.

Nothing is counted in process memory: a collector reads the store when scraped, so any
number of ``runner metrics`` servers (or the HTTP API's ``/metrics``, which mounts
:func:`render`) agree with each other and with ``runner jobs``. Flower's own
``/metrics`` (Celery task events) is left as it is.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric

from runner.backlog import DEFAULT_PIECE_SECONDS, read_backlog
from runner.config import Settings
from runner.schedules.sweep import last_success, overdue_since
from runner.store import StatusStore

__all__ = ["StoreCollector", "registry", "render", "serve", "CONTENT_TYPE", "DURATION_BUCKETS"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)


class StoreCollector:
    """Collects every Runner metric from the store (and the broker's queue lengths)."""

    def __init__(self, store: StatusStore, broker_url: str | None = None, org: str | None = None) -> None:
        self.store = store
        self.broker = store.broker(broker_url)
        self.org = org

    def collect(self) -> Iterator[Metric]:
        jobs = list(self._jobs())
        yield from self._job_metrics(jobs)
        yield from self._fleet_metrics()
        yield from self._schedule_metrics()
        if self.org is None:  # summed over every org's jobs: a fleet-wide scrape's only
            yield from self._backlog_metrics()

    def _jobs(self) -> Iterator[dict[str, Any]]:
        """Every job record still in the store, of every org or of ``org`` (the fields
        metrics need)."""
        names = ("org", "template", "state", "pieces_done", "pieces_failed", "queued_at", "finished_at")
        return (job for job in self.store.jobs.every_job(names) if self.org in (None, job["org"]))

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
        workers = self.store.fleet.live_workers()
        queues = sorted({q for w in workers.values() for q in w.queues})
        processes = GaugeMetricFamily("runner_worker_processes", "Live worker processes consuming each queue.",
                                      labels=["queue"])
        depth = GaugeMetricFamily("runner_queue_depth", "Messages waiting in each queue of the broker.",
                                  labels=["queue"])
        for queue in queues:
            processes.add_metric([queue], sum(w.concurrency for w in workers.values() if w.serves(queue)))
            depth.add_metric([queue], self.broker.depth(queue))
        yield processes
        yield depth

    def _backlog_metrics(self) -> Iterator[Metric]:
        """The autoscaling signal, per queue (``runner/backlog.py`` defines each number)."""
        families = (
            ("runner_queue_pieces_waiting", "Pieces of the queue's non-final jobs without a result yet (a job not "
             "partitioned yet counts as 1), in flight included.", lambda b: b.waiting),
            ("runner_queue_pieces_in_flight", "The part of runner_queue_pieces_waiting that belongs to running jobs "
             "(their batches are with the broker and the workers).", lambda b: b.in_flight),
            ("runner_queue_backlog_seconds", "Seconds of work the queue's remaining pieces need (each job's remaining "
             f"pieces x its recent piece time, {DEFAULT_PIECE_SECONDS:g} s when unknown) divided by the live processes "
             "serving it; with no process, the work seconds as if one, so a scaler from zero sees the demand.",
             lambda b: b.seconds),
            ("runner_queue_processes", "Live worker processes serving the queue (0 for a queue jobs wait on that no "
             "worker serves).", lambda b: b.processes),
        )
        backlog = read_backlog(self.store)
        for name, help_text, value in families:
            family = GaugeMetricFamily(name, help_text, labels=["queue"])
            for entry in backlog:
                family.add_metric([entry.queue], value(entry))
            yield family

    def _schedule_metrics(self) -> Iterator[Metric]:
        schedules = self.store.schedules
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
        if self.org is not None:
            return [self.org]
        return sorted(self.store.schedules.orgs() | self.store.jobs.orgs())


def registry(store: StatusStore, broker_url: str | None = None, org: str | None = None) -> CollectorRegistry:
    """A registry holding only Runner's store collector (of every org, or of ``org``)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StoreCollector(store, broker_url, org))
    return reg


def render(store: StatusStore, broker_url: str | None = None, org: str | None = None) -> bytes:
    """The metrics in Prometheus' text format (``CONTENT_TYPE``): what ``/metrics`` serves.
    With ``org``, jobs and schedules are that org's only (the fleet's workers and queue
    lengths are everyone's) and the backlog metrics (``runner_queue_pieces_*``,
    ``runner_queue_backlog_seconds``, ``runner_queue_processes``) are left out: they are
    summed over every org's jobs, so only a fleet-wide scrape (``RUNNER_METRICS_TOKEN``,
    ``runner metrics``) reads them. That is what an org's own access token may read."""
    return generate_latest(registry(store, broker_url, org))


def serve(settings: Settings, port: int, addr: str = "127.0.0.1") -> Any:
    """Serve ``/metrics`` on ``port`` in a background thread; returns prometheus_client's
    server. Loopback by default: the labels name orgs, templates and schedules."""
    store = StatusStore.from_settings(settings)
    server, _thread = start_http_server(port, addr=addr, registry=registry(store, settings.broker_url))
    return server
