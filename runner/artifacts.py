"""A job's artifacts: files its tasks persist under ``<RUNNER_ARTIFACTS_URL>/<job id>/``,
and ``output.json``, the job's own report, written when it ends in any state.

Artifacts go through the same storage backends as sources and destinations, so a
fleet whose artifact location is an S3 prefix needs no shared filesystem.
"""

from __future__ import annotations

import json
import logging
import shutil
import statistics
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from runner.config import Settings
from runner.errors import SourceError
from runner.models import JobStatus
from runner.storage import Storages
from runner.store import StatusStore

__all__ = [
    "ArtifactIO", "artifact_prefix", "check_name", "summarize_metrics", "write_output", "OUTPUT_NAME",
]

OUTPUT_NAME = "output.json"
log = logging.getLogger("runner.artifacts")


def artifact_prefix(settings: Settings, job_id: str) -> str:
    return f"{settings.artifacts_root}/{job_id}"


def check_name(name: str) -> str:
    """``name`` as a safe relative artifact path; raises ValueError for ``..``, absolute
    paths or empty names, which could escape the job's artifact location."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or name.endswith("/"):
        raise ValueError(f"artifact name {name!r} must be a relative path such as 'plots/loss.png' (no '..')")
    return str(path)


class ArtifactIO:
    """Reads and writes one job's artifacts (``ctx.io`` in user code, ``job.artifacts()``)."""

    def __init__(self, storages: Storages, prefix: str) -> None:
        self.storages = storages
        self.prefix = prefix.rstrip("/")

    def uri(self, name: str) -> str:
        return f"{self.prefix}/{check_name(name)}"

    def write_file(self, name: str, data: bytes | str) -> str:
        """Store ``data`` as artifact ``name``; returns its URI."""
        uri = self.uri(name)
        with self.storages.backend(uri).open_write(uri) as out:
            out.write(data.encode() if isinstance(data, str) else data)
        return uri

    def upload(self, name: str, path: Path) -> str:
        """Store the local file ``path`` as artifact ``name``, streamed."""
        uri = self.uri(name)
        with path.open("rb") as src, self.storages.backend(uri).open_write(uri) as out:
            shutil.copyfileobj(src, out, 1024 * 1024)
        return uri

    def open_read(self, name: str) -> BinaryIO:
        """A stream of artifact ``name`` (never all in memory); SourceError if absent."""
        uri = self.uri(name)
        return self.storages.backend(uri).open_read(uri)

    def open_write(self, name: str) -> BinaryIO:
        """A stream whose content becomes artifact ``name`` on a clean close (an abort,
        or leaving a ``with`` by an exception, publishes nothing)."""
        uri = self.uri(name)
        return self.storages.backend(uri).open_write(uri)

    def read_file(self, name: str) -> bytes:
        uri = self.uri(name)
        with self.storages.backend(uri).open_read(uri) as stream:
            return stream.read()

    def delete_all(self) -> int:
        """Delete every artifact (a deleted job leaves nothing behind); returns how many."""
        names = self.list()
        for name in names:
            uri = self.uri(name)
            self.storages.backend(uri).delete(uri)
        return len(names)

    def list(self) -> list[str]:
        """Names of every artifact, sorted (empty when the job has none yet)."""
        base = self.prefix + "/"
        try:
            uris = self.storages.backend(base).list(base)
        except SourceError:
            return []
        return sorted(uri[len(base):] for uri in uris if uri.startswith(base))


def summarize_metrics(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per metric name: count, sum, min, max, mean and last value (numbers), or the values."""
    by_name: dict[str, list[Any]] = {}
    for item in items:
        by_name.setdefault(item["name"], []).append(item["value"])
    summary: dict[str, dict[str, Any]] = {}
    for name, values in by_name.items():
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(numbers) == len(values):
            summary[name] = {"count": len(values), "sum": sum(numbers), "min": min(numbers), "max": max(numbers),
                             "mean": statistics.fmean(numbers), "last": values[-1]}
        else:
            summary[name] = {"count": len(values), "values": values[:1000], "last": values[-1]}
    return summary


def write_output(
    store: StatusStore, storages: Storages, settings: Settings, job_id: str,
    report: tuple[JobStatus | None, list[dict[str, Any]]] | None = None, **ending: Any
) -> str | None:
    """Write the job's ``output.json`` (settings, template, state, ``partial``, counters, timings, metrics),
    with ``ending`` (state, finished_at, error …) applied over the stored record (or over
    ``report``, the record and metrics the caller read). Never raises: a job's end must
    not depend on its report being written."""
    try:
        status, metrics = report or store.journal.report(job_id)
        if status is None:
            return None
        if ending:
            status = status.model_validate({**status.model_dump(), **ending})
        document = {
            "job": status.model_dump(mode="json", exclude={"error", "result_summary", "metrics"}),
            "template": status.template,
            "state": status.state.value,
            "partial": status.partial,  # completed without pieces_failed pieces, as the job allowed
            "counters": {"pieces_total": status.pieces_total, "pieces_done": status.pieces_done,
                         "pieces_failed": status.pieces_failed, "batches_total": status.batches_total},
            "timings": {"queued_at": _iso(status.queued_at), "started_at": _iso(status.started_at),
                        "finished_at": _iso(status.finished_at), "duration_s": status.duration},
            "metrics": summarize_metrics(metrics),
            "error": status.error,
            "result_summary": status.result_summary,
        }
        io = ArtifactIO(storages, artifact_prefix(settings, job_id))
        return io.write_file(OUTPUT_NAME, json.dumps(document, indent=2, default=str))
    except Exception:
        log.exception("could not write %s of job %s", OUTPUT_NAME, job_id)
        return None


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None

