"""Whether a task waits on the control queue, watched by the worker's main process for
all of its pool processes.

Under fair share a running batch stops for a newcomer — a newly submitted job's
partition waiting on the control queue — so it starts within a few tens of milliseconds
instead of after the whole batch (``workers/batch.py``), and a chain of batches does
not start another one while a newcomer waits (``workers/chain.py``). Finding out is one
read of the queue's length. Read by the batch between pieces every 20 ms, the piece loop
waited for it; read by a thread of the pool process, the piece loop waited for that
thread to get the interpreter lock. Either way, on a machine whose every core runs
pieces, each wait is one for the scheduler — about a millisecond, not a tenth — and it
cost tiny pieces several percent of their throughput (the 2-core machine, issue 24).

So the main process, which runs no pieces, reads the length every ``NEWCOMER_SECONDS``
and writes what it saw, with when, into memory it shares with its pool processes (mapped
before they fork). A batch reads that memory between pieces: no round trip, no lock. A
process whose worker does not look out (the lookout has not written for a while: a
worker not started by ``runner worker``, or a stalled main process) reads the queue
itself, as before.
"""

from __future__ import annotations

import mmap
import struct
import threading
import time

from workers import runtime

__all__ = ["NEWCOMER_SECONDS", "newcomer_waits", "start"]

NEWCOMER_SECONDS = 0.02  # how often the control queue's length is read
STALE_SECONDS = 10 * NEWCOMER_SECONDS  # a sighting older than this is not trusted
_LAYOUT = struct.Struct("=dq")  # when (time.monotonic(), the same clock in every process), tasks waiting
_shared = mmap.mmap(-1, _LAYOUT.size)  # anonymous and shared: pool processes forked later see the writes
_LAYOUT.pack_into(_shared, 0, 0.0, 0)


def newcomer_waits(now: float | None = None) -> bool:
    """Whether a task waits on the control queue: as the main process last saw it, or
    read here when that sighting is stale."""
    seen_at, waiting = _LAYOUT.unpack_from(_shared, 0)
    if (now if now is not None else time.monotonic()) - seen_at <= STALE_SECONDS:
        return waiting > 0
    return _depth() > 0


def start(stopping: threading.Event) -> threading.Thread:
    """Look out for the whole worker (main process) until ``stopping`` is set."""
    def loop() -> None:
        while not stopping.wait(NEWCOMER_SECONDS):
            try:
                waiting = _depth()
            except Exception:  # the broker may be restarting: the sighting goes stale, batches read themselves
                continue
            _LAYOUT.pack_into(_shared, 0, time.monotonic(), waiting)

    thread = threading.Thread(target=loop, name="runner-lookout", daemon=True)
    thread.start()
    return thread


def _depth() -> int:
    settings = runtime.settings()
    return runtime.store().broker(settings.broker_url).depth(settings.control_queue)
