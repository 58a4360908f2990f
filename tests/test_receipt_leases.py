"""A task is leased once its worker's main process receives it (``leases.received``),
written by a thread so that Celery hands the message to a pool process without waiting
for that round trip — and a task already over when the thread writes is not leased.

Celery's ``Request`` is stood in for by its four fields the lease reads; the worker's
registry of held requests (``celery.worker.state.requests``) is Celery's own.
"""

from __future__ import annotations

import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from celery.worker import state

from runner.dispatch import PARTITION
from runner.local import wait_until
from workers import leases, runtime

pytestmark = pytest.mark.timeout(60)


def request(job_id: str) -> Any:
    return SimpleNamespace(name=PARTITION, id=str(uuid.uuid4()), args=[job_id, "t@1.0.0"], eta=None)


def leased(redis_url: str, req: Any) -> bool:
    key = runtime.store().keys.leases_key()
    return redis.Redis.from_url(redis_url).zscore(key, leases.member(req.name, req.id, req.args)) is not None


def test_a_received_task_is_leased_by_the_main_process_thread(settings, redis_url: str) -> None:
    runtime.configure(settings)
    held = request(f"receipt-{uuid.uuid4().hex[:8]}")
    state.requests[held.id] = held  # reserved: waiting for a pool process
    try:
        leases.received(held)
        wait_until(lambda: leased(redis_url, held), "the received task's lease", timeout=10)
    finally:
        state.requests.pop(held.id, None)
        runtime.store().fleet.drop_leases([leases.member(held.name, held.id, held.args)])


def test_a_task_over_before_the_write_is_not_leased(settings, redis_url: str) -> None:
    runtime.configure(settings)
    over, held = request("receipt-over"), request("receipt-held")
    state.requests[held.id] = held
    try:
        leases.received(over)  # never held (Celery's task_ready took it out): nothing to vouch for
        leases.received(held)  # written in the same batch or after it: a barrier for the first
        wait_until(lambda: leased(redis_url, held), "the held task's lease", timeout=10)
        assert not leased(redis_url, over)
    finally:
        state.requests.pop(held.id, None)
        runtime.store().fleet.drop_leases([leases.member(r.name, r.id, r.args) for r in (over, held)])


def test_a_task_waiting_out_a_backoff_keeps_its_own_lease(settings, redis_url: str) -> None:
    runtime.configure(settings)
    later = SimpleNamespace(**{**vars(request("receipt-eta")), "eta": time.time() + 60})
    state.requests[later.id] = later
    barrier = request("receipt-barrier")
    state.requests[barrier.id] = barrier
    try:
        leases.received(later)
        leases.received(barrier)
        wait_until(lambda: leased(redis_url, barrier), "the barrier task's lease", timeout=10)
        assert not leased(redis_url, later)  # leases.expect gave it one at its due time, not this
    finally:
        for r in (later, barrier):
            state.requests.pop(r.id, None)
        runtime.store().fleet.drop_leases([leases.member(r.name, r.id, r.args) for r in (later, barrier)])
