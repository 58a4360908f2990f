"""A job's artifacts page (``/ui/jobs/{id}/artifacts``, Brevetti's model-page address):
each artifact with its size and a download link, and an inline preview of one —
images, text, JSON pretty-printed, CSV as a table.

Artifacts are user content served from the dashboard's origin, so a file response never
runs in it: only raster images display inline, everything else is an attachment, and
every file carries ``nosniff`` and a sandboxing CSP (an HTML or SVG artifact cannot
script the dashboard). Downloads are the stored bytes, unchanged.
"""

from __future__ import annotations

import csv
import io
import json
import mimetypes
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from runner.artifacts import ArtifactIO, artifact_prefix
from runner.errors import SourceError
from runner.ui.fmt import pretty
from runner.ui.web import CurrentViewer, UiError, Viewer, job_or_404, render

__all__ = ["router", "preview"]

router = APIRouter(prefix="/ui", include_in_schema=False)
JobId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
LISTED = 1000
PREVIEW_BYTES = 256 * 1024
CSV_ROWS = 200
IMAGES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
TEXT = (".txt", ".log", ".md", ".py", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".out", ".err", ".tsv")
FILE_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox; default-src 'none'",
                "Cache-Control": "private, no-store"}


def _io(who: Viewer, job_id: str) -> ArtifactIO:
    return ArtifactIO(who.client.storages, artifact_prefix(who.client.settings, job_id))


def _sizes(artifacts: ArtifactIO, names: list[str]) -> list[dict[str, Any]]:
    rows = []
    for name in names[:LISTED]:
        uri = artifacts.uri(name)
        try:
            size = artifacts.storages.backend(uri).size(uri)
        except SourceError:  # deleted between list and stat
            continue
        rows.append({"name": name, "size": size, "kind": mimetypes.guess_type(name)[0] or ""})
    return rows


def preview(name: str, data: bytes) -> dict[str, Any]:
    """How an artifact shows inline: ``image``, ``json``, ``csv`` (header + rows), ``text``,
    or ``none`` (binary or too large: download it)."""
    kind = mimetypes.guess_type(name)[0] or ""
    if kind in IMAGES:
        return {"type": "image"}
    if len(data) > PREVIEW_BYTES:
        return {"type": "none", "why": f"larger than {PREVIEW_BYTES // 1024} KiB"}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {"type": "none", "why": "not text"}
    if name.endswith(".json"):
        try:
            return {"type": "json", "text": pretty(json.loads(text))}
        except ValueError:
            return {"type": "text", "text": text}
    if name.endswith(".csv"):
        rows = list(csv.reader(io.StringIO(text)))
        return {"type": "csv", "header": rows[0] if rows else [], "rows": rows[1:CSV_ROWS + 1],
                "more": max(0, len(rows) - 1 - CSV_ROWS)}
    if kind.startswith("text/") or name.endswith(TEXT) or "\x00" not in text:
        return {"type": "text", "text": text}
    return {"type": "none", "why": "not text"}


@router.get("/jobs/{job_id}/artifacts")
def artifacts_page(job_id: JobId, request: Request, who: CurrentViewer,
                   show: Annotated[str | None, Query(max_length=1000)] = None) -> Response:
    """The job's artifacts with sizes and links; ``?show=NAME`` previews one inline."""
    job = job_or_404(who, job_id)
    artifacts = _io(who, job.id)
    names = artifacts.list()
    shown = None
    if show is not None:
        if show not in names:
            raise UiError(404, f"Job {job_id} has no artifact {show!r}.")
        shown = {"name": show, **preview(show, artifacts.read_file(show))}
    return render(request, "artifacts.html", {"job": job.status(), "artifacts": _sizes(artifacts, names),
                                              "total": len(names), "listed": LISTED, "shown": shown}, who=who)


@router.get("/jobs/{job_id}/artifacts/file/{name:path}")
def artifact_file(job_id: JobId, name: str, who: CurrentViewer, download: bool = False) -> Response:
    """One artifact's bytes: inline for raster images, else (or with ``download``) an attachment."""
    job = job_or_404(who, job_id)
    try:
        data = _io(who, job.id).read_file(name)
    except ValueError as exc:
        raise UiError(400, str(exc)) from None
    except SourceError:
        raise UiError(404, f"Job {job_id} has no artifact {name!r}.") from None
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    inline = kind in IMAGES and not download
    filename = "".join(c for c in name.rsplit("/", 1)[-1] if c.isascii() and c.isprintable() and c not in '"\\;')
    disposition = "inline" if inline else f'attachment; filename="{filename}"'
    return Response(data, media_type=kind if inline else "application/octet-stream",
                    headers={**FILE_HEADERS, "Content-Disposition": disposition})
