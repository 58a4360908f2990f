"""Executable (ByteNite-style) engines run unchanged by the real fleet: a fan-out
partitioner, a case-converting app and a zip assembler written here (tests/engines/),
imported with ``import_template`` while the session's workers run, outputs checked byte
for byte on the filesystem and on SeaweedFS."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest

from runner import Client, JobFailed, Settings
from runner.engines import import_template
from runner.storage import Storages
from runner.store import StatusStore

ENGINES = Path(__file__).resolve().parent / "engines"


def import_engines(settings: Settings, tmp_path: Path, *, partitioner: str = "fanout", app: str = "caseconv",
                   assembler: str = "zipper", params: dict[str, Any] | None = None,
                   config: dict[str, Any] | None = None, **options: Any) -> str:
    """Import a template of the test engines under a fresh name; returns its ref."""
    path = tmp_path / f"template-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps({
        "id": f"eng-{uuid.uuid4().hex[:10]}", "partitioner": partitioner, "app": app, "assembler": assembler,
        "params": params if params is not None else {"partitioner": {"lines_per_chunk": 2}, "app": {}, "assembler": {}},
        "config": config or {},
    }))
    report = import_template(path, StatusStore.from_settings(settings), Storages(settings), settings,
                             engine_dirs=[ENGINES], **options)
    return report.ref


def zip_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


TEXT = b"alpha one\nbeta two\ngamma three\ndelta four\nepsilon\n"


def test_imported_engines_write_the_zip_to_a_file_directory(client: Client, settings, tmp_path: Path) -> None:
    ref = import_engines(settings, tmp_path)
    (tmp_path / "in.txt").write_bytes(TEXT)
    out = tmp_path / "out"
    job = client.submit(ref, source=(tmp_path / "in.txt").as_uri(), destination=out.as_uri() + "/")
    summary = job.wait(timeout=60)
    assert sorted(p.name for p in out.iterdir()) == ["results.zip"]
    assert zip_members((out / "results.zip").read_bytes()) == {
        "0_result.txt": b"ALPHA ONE\nBETA TWO\n", "1_result.txt": b"GAMMA THREE\nDELTA FOUR\n",
        "2_result.txt": b"EPSILON\n",
    }
    assert summary["files"] == [{"name": "results.zip", "uri": (out / "results.zip").as_uri(),
                                 "bytes": (out / "results.zip").stat().st_size}]
    assert job.status().pieces_total == 3
