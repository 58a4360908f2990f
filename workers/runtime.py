"""Per-process state of a worker: settings, the status store, and cached job specs.

A job's spec (template, params, timeouts) never changes once queued, so each worker
process reads it once per job instead of once per batch. Redis clients are created
lazily, after the prefork pool has forked, so no connection is shared across processes.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from collections import OrderedDict
from functools import cache, cached_property
from typing import Any

from celery import Celery
from pydantic import BaseModel

from runner.config import Settings, get_settings
from runner.errors import JobNotFound
from runner.lifecycle import Services
from runner.params import parse_section, piece_kind
from runner.registry import Template, get_template
from runner.storage import Storages
from runner.store import StatusStore
from workers.inputs import InputCache

__all__ = [
    "JobSpec", "configure", "settings", "store", "storages", "services", "input_cache", "job_spec", "job_facts",
    "deadline", "set_name", "worker_label",
]

_settings: Settings | None = None


@dataclass(frozen=True)
class JobSpec:
    """The immutable part of a queued job, as a worker needs it."""

    job_id: str
    template: Template
    params: dict[str, BaseModel | None]
    test: bool
    task_timeout: float
    max_retries: int
    retention_hours: float
    queue: str
    source: str
    destination: str
    inputs: dict[str, str]
    org: str = "default"
    priority: int = 5  # 0-9, higher first among a queue's held batches (runner/store/fair_share.py)

    @cached_property
    def piece_kind(self) -> str:
        """The template and a digest of the app's params (:func:`runner.params.piece_kind`):
        what a piece's time is known by (``workers/batching.py``), computed from the params'
        stored form so that the backlog metric finds it from the job's record."""
        app = self.params.get("app")
        return piece_kind(self.template.ref, app.model_dump(mode="json", by_alias=True) if app else {})


def _forget_clients() -> None:
    """Make this process create its own clients at their next use."""
    store.cache_clear()
    storages.cache_clear()
    input_cache.cache_clear()


_inherited: list[StatusStore] = []


def _after_fork() -> None:
    """In a pool process forked from the worker's main process (a replacement for one that
    died): drop the store client it inherited. The main process uses it from other threads
    (heartbeats, lease renewal); a fork can copy its connection pool with a lock such a
    thread held, and redis-py resets an inherited pool under that lock — the child would
    wait forever at its first call. The inherited client is kept referenced, never closed
    here: closing it would reset the same pool."""
    if store.cache_info().currsize:
        _inherited.append(store())
    _forget_clients()


def configure(new: Settings) -> None:
    """Use ``new`` in this process (the worker's command line may add to the environment)."""
    global _settings
    _settings = new
    _forget_clients()


os.register_at_fork(after_in_child=_after_fork)


def settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = get_settings()
    return _settings


@cache
def store() -> StatusStore:
    return StatusStore.from_settings(settings(), patient=True)


_name = ""  # this worker's node name, set at boot before the pool forks


def set_name(name: str) -> None:
    global _name
    _name = name


def worker_label() -> str:
    """How errors name this process: ``worker NAME`` (a file root refused here is fixed
    by a setting of this worker, not of the command that submitted the job)."""
    return f"worker {_name}" if _name else f"the worker on {socket.gethostname()} (pid {os.getpid()})"


@cache
def storages() -> Storages:
    return Storages(settings(), process=worker_label())


def services(celery: Celery) -> Services:
    """What ending a job needs, for this process and the worker's Celery app."""
    return Services(store(), storages(), settings(), celery)


@cache
def input_cache() -> InputCache:
    return InputCache(storages())


SPEC_FIELDS = ("template", "params", "test", "task_timeout", "max_retries", "retention_hours", "queue", "source",
               "destination", "inputs", "org", "priority")
_specs: OrderedDict[str, JobSpec] = OrderedDict()  # the newest 256 jobs' specs
FIRST_LIVE = ("state", "deadline", "partition_task")  # read along with a spec: what its task reads next
_first_live: dict[str, dict[str, Any]] = {}  # job -> FIRST_LIVE read with its spec, for this task only
_leased: set[str] = set()  # the lease of this task, taken with its job's spec (``workers/leases.py``)
_begun: dict[str, tuple[Any, int, float]] = {}  # batches started with their hand-out, by delivery


def job_spec(job_id: str) -> JobSpec:
    """The job's spec, read from the store once per process."""
    spec, _ = job_facts(job_id)
    if spec is None:
        raise JobNotFound(f"no job {job_id!r} (it may have expired)")
    return spec


def job_facts(job_id: str, *live: str, lease: str | None = None) -> tuple[JobSpec | None, dict[str, Any]]:
    """The job's spec (read once per process) and the record fields ``live`` (read each
    time), in one round trip. The spec is ``None`` when the record is gone. ``lease``: the
    calling task's, taken in that round trip when there is one (see :func:`lease_taken`)."""
    spec, first = _specs.get(job_id), _first_live.pop(job_id, None) if live else None
    if spec is not None and first is not None and set(live) <= set(first):
        return spec, {name: first[name] for name in live}  # read with the spec, in this same task
    raw: dict[str, Any] = {}
    if live or not spec:
        now, taking = time.time(), lease is not None
        raw = store().fields(job_id, *(live if spec else SPEC_FIELDS + FIRST_LIVE + live),
                             before=(lambda pipe: store().fleet.lease(lease, now, pipe)) if taking else None)
        if taking:
            _leased.add(lease)
    if spec is None:  # at most one job's: a process that runs no tasks keeps nothing
        _first_live.clear()
        _first_live[job_id] = {name: raw.get(name) for name in FIRST_LIVE}
    if spec is None and raw.get("template") is not None:
        spec = _specs[job_id] = _build_spec(job_id, raw)
        while len(_specs) > 256:
            _specs.popitem(last=False)
    return spec, {name: raw.get(name) for name in live}


def forget_first_live() -> None:
    """Drop the live fields read along with a spec, and the lease taken with it: a task
    ends (or starts) here, and only the task that read them may use them (``routing.routed``)."""
    _first_live.clear()
    _leased.clear()
    _begun.clear()


def batch_start(task_id: str, start: int, stop: int, host: str | None) -> tuple[str, dict[str, Any]]:
    """A batch's start, as the journal notes it: its delivery (what counts its starts) and its event."""
    return f"{task_id}:{start}", {"task": task_id, "start": start, "stop": stop,
                                  "host": host or socket.gethostname(), "pid": os.getpid()}


def note_begun(delivery: str, begun: tuple[Any, int, float]) -> None:
    """A batch this task was handed started with the hand-out (``TAKE_WHOLE``): what
    ``Journal.begin_batch`` would have returned, for the batch to read instead of starting again."""
    _begun[delivery] = begun


def begun(delivery: str) -> tuple[Any, int, float] | None:
    """:func:`note_begun`'s record of ``delivery``, once."""
    return _begun.pop(delivery, None)


def lease_taken(lease: str) -> bool:
    """Whether ``lease`` was taken just now, with its job's spec (once: it is forgotten)."""
    if lease in _leased:
        _leased.discard(lease)
        return True
    return False


def _build_spec(job_id: str, raw: dict[str, Any]) -> JobSpec:
    template = get_template(raw["template"], store=store(), storages=storages())  # loaders: imported templates
    params = {
        kind: parse_section(template.function(kind).params, (raw["params"] or {}).get(kind, {}))  # type: ignore[arg-type]
        for kind in ("partitioner", "app", "assembler")
    }
    return JobSpec(
        job_id=job_id, template=template, params=params, test=bool(raw["test"]),
        task_timeout=float(raw["task_timeout"]), max_retries=int(raw["max_retries"]),
        retention_hours=float(raw["retention_hours"]), queue=raw["queue"], source=raw["source"], destination=raw["destination"],
        inputs=dict(raw["inputs"] or {}), org=raw["org"] or "default",
        priority=int(raw["priority"] if raw["priority"] is not None else 5),
    )


def deadline(job_id: str) -> float:
    """The job's deadline (not cached: ``retry_failed`` gives a job a new one)."""
    return float(store().fields(job_id, "deadline")["deadline"] or 0)

