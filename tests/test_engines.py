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


def test_imported_engines_write_the_zip_to_an_s3_prefix_with_their_params(client: Client, settings, s3, bucket,
                                                                         tmp_path: Path) -> None:
    ref = import_engines(settings, tmp_path, params={"partitioner": {"lines_per_chunk": 3}, "app": {"mode": "lower"},
                                                      "assembler": {"name": "lowered.zip"}})
    s3.client().put_object(Bucket=bucket, Key="in/a.txt", Body=b"ONE\nTWO\n")
    s3.client().put_object(Bucket=bucket, Key="in/b.txt", Body=b"THREE\nFOUR\n")
    job = client.submit(ref, source=f"s3://{bucket}/in/", destination=f"s3://{bucket}/out/")
    job.wait(timeout=60)
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket, Prefix="out/")["Contents"]]
    assert keys == ["out/lowered.zip"]
    data = s3.client().get_object(Bucket=bucket, Key="out/lowered.zip")["Body"].read()
    assert zip_members(data) == {"0_result.txt": b"one\ntwo\nthree\n", "1_result.txt": b"four\n"}


def test_a_name_only_one_piece_wrote_is_kept_and_passthrough_engines_copy_the_source(
        client: Client, settings, s3, bucket, tmp_path: Path) -> None:
    ref = import_engines(settings, tmp_path, partitioner="passthrough", assembler="passthrough", params={})
    (tmp_path / "in.txt").write_bytes(TEXT)
    job = client.submit(ref, source=(tmp_path / "in.txt").as_uri(), destination=f"s3://{bucket}/copy/")
    assert [f["name"] for f in job.wait(timeout=60)["files"]] == ["result.txt"]
    assert s3.client().get_object(Bucket=bucket, Key="copy/result.txt")["Body"].read() == TEXT.upper()


def test_chunks_are_pieces_in_order_data_files_first_then_other_names(client: Client, settings,
                                                                     tmp_path: Path) -> None:
    ref = import_engines(settings, tmp_path, assembler="passthrough",
                         params={"partitioner": {"lines_per_chunk": 4, "extra": ["b.txt", "a.txt"]}})
    (tmp_path / "in.txt").write_bytes(TEXT)
    out = tmp_path / "out"
    job = client.submit(ref, source=(tmp_path / "in.txt").as_uri(), destination=out.as_uri() + "/")
    job.wait(timeout=60)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {
        "0_result.txt": b"ALPHA ONE\nBETA TWO\nGAMMA THREE\nDELTA FOUR\n", "1_result.txt": b"EPSILON\n",
        "2_result.txt": b"A.TXT", "3_result.txt": b"B.TXT",
    }


def test_a_bypass_source_is_one_empty_dummy_file_and_no_chunks_make_zero_pieces(client: Client, settings,
                                                                                tmp_path: Path) -> None:
    ref = import_engines(settings, tmp_path)
    job = client.submit(ref)  # bypass: in and out
    summary = job.wait(timeout=60)
    assert job.status().pieces_total == 0
    assert any(line.msg == "sources: dummy; chunks: 0" for line in job.logs())
    assert [f["name"] for f in summary["files"]] == ["results.zip"]
    assert zip_members(job.read_artifact("output/results.zip")) == {}


def test_an_app_exiting_3_fails_the_job_naming_the_piece_with_stderrs_tail(client: Client, settings,
                                                                          tmp_path: Path) -> None:
    ref = import_engines(settings, tmp_path)
    (tmp_path / "in.txt").write_bytes(TEXT)
    job = client.submit(ref, source=(tmp_path / "in.txt").as_uri(), params={"app": {"exit": 3}}, max_retries=0)
    with pytest.raises(JobFailed) as failed:
        job.wait(timeout=60)
    error = job.status().error
    assert error["stage"] == "app" and error["piece"] in (0, 1, 2) and error["type"] == "EngineError"
    assert f"(piece {error['piece']}) exited with exit status 3" in error["message"]
    tail = error["message"].split("stderr:\n", 1)[1].splitlines()
    assert tail == [f"stderr line {i}" for i in range(10, 30)]
    assert "exit status 3" in str(failed.value)
    logged = [(line.level, line.msg) for line in job.logs(piece=error["piece"]) if line.source == "app"]
    assert ("WARNING", "stderr line 29") in logged and ("INFO", f"piece {error['piece']}: {[19, 23, 8][error['piece']]} bytes") in logged


def test_an_apps_stdout_and_stderr_are_in_its_pieces_logs(client: Client, settings, tmp_path: Path) -> None:
    ref = import_engines(settings, tmp_path)
    (tmp_path / "in.txt").write_bytes(TEXT)
    job = client.submit(ref, source=(tmp_path / "in.txt").as_uri())
    job.wait(timeout=60)
    assert [line.msg for line in job.logs(piece=1) if line.source == "app"] == ["piece 1: 23 bytes"]
    assert any(line.msg == "zipped 3 files" and line.source == "assembler" for line in job.logs())


def test_app_params_are_checked_against_schema_json_naming_every_bad_field(client: Client, settings,
                                                                          tmp_path: Path) -> None:
    from runner import InvalidParams

    ref = import_engines(settings, tmp_path)
    with pytest.raises(InvalidParams) as bad:
        client.submit(ref, params={"app": {"mode": "sideways", "exit": "soon"}})
    message = str(bad.value)
    assert "app.mode" in message and "app.exit" in message
    job = client.create(ref)
    with pytest.raises(InvalidParams, match="app.sleep"):
        job.set_params(app={"sleep": "long"})


def test_python_and_executable_kinds_mix(client: Client, settings, tmp_path: Path) -> None:
    """A Python partitioner's text pieces become data.bin; a Python assembler gets each
    executable piece's file list."""
    ref = import_engines(settings, tmp_path, partitioner="lines", assembler="json_list",
                         params={"partitioner": {"lines_per_piece": 2}})
    (tmp_path / "in.txt").write_bytes(TEXT)
    job = client.submit(ref, source=(tmp_path / "in.txt").as_uri())
    lists = job.wait(timeout=60)
    assert [[f["name"] for f in files] for files in lists] == [["result.txt"]] * 3
    storages = Storages(settings)
    texts = [storages.backend(files[0]["uri"]).open_read(files[0]["uri"]).read() for files in lists]
    assert b"".join(texts) == TEXT.upper()
