"""The context (``ctx``) handed to user code: who is running, with which params, where.

One class for all three kinds of function, so a helper written for an app also works in
a partitioner or assembler. User code never needs to import Celery.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import BaseModel

from runner.artifacts import ArtifactIO, artifact_prefix, check_name
from runner.storage import Destination, Source, Storages
from workers import runtime
from workers.inputs import Inputs
from workers.outbox import Outbox, outbox
from workers.runtime import JobSpec

__all__ = ["TaskContext", "JobLog", "job_context", "flush_records", "close"]


class JobLog(logging.LoggerAdapter):
    """``ctx.log``: a logger whose lines go to the worker's log *and* to the job's own
    log (``job.logs()``, ``runner logs JOB``), tagged with the piece being processed."""

    def __init__(self, ctx: "TaskContext") -> None:
        super().__init__(logging.getLogger(f"runner.job.{ctx.kind}"), {"job_id": ctx.job_id})
        self.ctx = ctx
        self.lines: list[dict[str, Any]] = []

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs.setdefault("extra", {}).update(job_id=self.ctx.job_id, piece=self.ctx.piece_index)
        return msg, kwargs

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if level >= logging.INFO or self.logger.isEnabledFor(level):
            text = str(msg) % args if args else str(msg)
            if kwargs.get("exc_info"):
                text += "\n" + "".join(traceback.format_exc()).rstrip()
            line = {"level": logging.getLevelName(level), "source": self.ctx.kind,
                    "piece": self.ctx.piece_index, "msg": text, "t": f"{time.time():.6f}"}
            if self.ctx.outbox is not None:
                self.ctx.outbox.add(self.ctx.job_id, line)  # in a worker: sent as written, in batches
            else:
                self.lines.append(line)
        super().log(level, msg, *args, **kwargs)

    def take(self) -> list[dict[str, Any]]:
        taken, self.lines = self.lines, []
        return taken


@dataclass
class TaskContext:
    """What a partitioner, app or assembler knows about the work in hand.

    - ``job_id``, ``template``, ``kind``, ``test``; ``piece_index`` for apps.
    - ``params``: the function's own validated param model (``None`` if it takes none).
    - ``inputs``: the job's named inputs as local paths (fetched once per process).
    - ``log``: a logger whose records carry the job id and piece.
    - ``temp_path(name)``: scratch space, removed after the piece (or task).
    - ``artifact_path(name)`` / ``io``: files persisted with the job's artifacts.
    - ``add_metric(name, value, step=None)``: live in the job's status with each batch's flush,
      summarized in ``output.json``.
    - ``failed_pieces``: for the assembler, the indices (ascending) of the pieces the job
      goes without — failed for good, within its ``min_success_ratio`` / ``max_failed_pieces``
      — whose results are missing from what it is given; ``[]`` when every piece succeeded.
    """

    job_id: str
    template: str
    kind: str
    params: BaseModel | None
    test: bool = False
    piece_index: int | None = None
    source: Source | None = None
    destination: Destination | None = None
    storages: Storages | None = None
    inputs: Mapping[str, Path] = field(default_factory=dict)
    io: ArtifactIO | None = None
    outbox: Outbox | None = None  # where log lines go as they are written (a worker's); else kept here
    failed_pieces: list[int] = field(default_factory=list)  # the assembler's: pieces without a result
    log: JobLog = field(init=False)
    _scratch: Path | None = field(default=None, init=False, repr=False)
    _staged: Path | None = field(default=None, init=False, repr=False)
    _metrics: list[dict[str, Any]] = field(default_factory=list, init=False, repr=False)
    metrics_added: int = field(default=0, init=False, repr=False)  # ever, by this context's code

    def __post_init__(self) -> None:
        self.log = JobLog(self)

    def with_piece(self, index: int) -> "TaskContext":
        """This context, for piece ``index`` (cheap: apps get one per piece)."""
        self.piece_index = index
        return self

    def _storages(self) -> Storages:
        return self.storages or runtime.storages()

    def read_range(self, piece: dict) -> bytes:
        """The bytes of a ``bytes``-partitioner piece (``{"uri", "start", "end"}``)."""
        return self._storages().read_range(piece)

    def open(self, piece: dict | str) -> BinaryIO:
        """A stream of the object a piece names (``{"uri": …}``, as ``objects`` emits) or
        of a URI; the same roots and address checks as the job's source apply."""
        uri = piece["uri"] if isinstance(piece, dict) else piece
        storages = self._storages()
        return storages.backend(storages.check(uri)).open_read(uri)

    def read(self, piece: dict | str) -> bytes:
        """The whole object a piece names, in memory (use :meth:`open` for big ones)."""
        with self.open(piece) as stream:
            return stream.read()

    def temp_path(self, name: str) -> Path:
        """A path in scratch space private to this piece (task); removed afterwards."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix=f"runner-{self.job_id}-"))
        path = self._scratch / check_name(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def artifact_path(self, name: str) -> Path:
        """A local path to write artifact ``name`` to; it is uploaded to the job's
        artifact location when the piece (task) ends, even if it then fails."""
        if self._staged is None:
            self._staged = Path(tempfile.mkdtemp(prefix=f"runner-{self.job_id}-artifacts-"))
        path = self._staged / check_name(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def add_metric(self, name: str, value: Any, step: int | None = None) -> None:
        """Record a metric value (a number, or any JSON value) at ``step`` (default: its
        count so far); in the job's status from the batch's next flush, and in output.json."""
        item = {"name": str(name), "value": value, "piece": self.piece_index, "t": time.time()}
        self._metrics.append(item if step is None else {**item, "step": step})
        self.metrics_added += 1

    def take_records(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The metrics and log lines gathered since the last call (to flush to the store)."""
        metrics, self._metrics = self._metrics, []
        return metrics, self.log.take()

    def close_piece(self) -> None:
        """Upload staged artifacts and remove scratch space (after each piece / task)."""
        if self._staged is not None:
            staged, self._staged = self._staged, None
            try:
                if self.io is not None:
                    for path in sorted(p for p in staged.rglob("*") if p.is_file()):
                        self.io.upload(path.relative_to(staged).as_posix(), path)
            finally:
                shutil.rmtree(staged, ignore_errors=True)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __repr__(self) -> str:
        return f"TaskContext(job={self.job_id}, template={self.template}, kind={self.kind}, piece={self.piece_index})"


def job_context(spec: JobSpec, kind: str, **extra: Any) -> TaskContext:
    """The ``ctx`` a worker hands to one of the job's functions."""
    storages = runtime.storages()
    return TaskContext(
        spec.job_id, spec.template.ref, kind, spec.params[kind], test=spec.test, storages=storages,
        inputs=Inputs(spec.inputs, runtime.input_cache()),
        io=ArtifactIO(storages, artifact_prefix(runtime.settings(), spec.job_id)), outbox=outbox, **extra,
    )


def flush_records(ctx: TaskContext) -> None:
    """Send the metrics and log lines user code produced to the store."""
    metrics, lines = ctx.take_records()
    runtime.store().metric_series.add(ctx.job_id, metrics)  # live: summary and series too
    runtime.store().journal.add_logs(ctx.job_id, lines)  # those of a context without an outbox
    if ctx.outbox is not None:
        ctx.outbox.send()


def close(ctx: TaskContext) -> None:
    """Persist the context's artifacts, metrics and logs, drop its scratch space."""
    try:
        ctx.close_piece()
    finally:
        flush_records(ctx)
