"""Destinations do what they say: every built-in assembler writes the destination it is
given (an object, or ``result.json`` / ``result.txt`` under a prefix), on file and S3;
a job that could not is refused at submit with nothing queued. And ``check-source``."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from runner import Client, SourceError
from tests.cli import cli_env, one_line_error, run_cli

TEXT = "b a\nb c\n"

# template, params, whether it reads the source, expected output (parsed), output file under a prefix
CASES: dict[str, tuple[str, dict[str, Any], bool, Any, str]] = {
    "sum": ("squares", {"partitioner": {"count": 4}}, False, 14, "result.json"),
    "merge_counts": ("wordcount", {"partitioner": {"lines_per_piece": 1}}, True, {"b": 2, "a": 1, "c": 1},
                     "result.json"),
    "json_list": ("echo-list", {"partitioner": {"count": 3}}, False, [0, 1, 2], "result.json"),
    "concat": ("echo-lines", {"partitioner": {"lines_per_piece": 1}}, True, TEXT, "result.txt"),
    "single": ("train", {"app": {"lr": 0.5, "epochs": 1}}, False, None, "result.json"),
}


@pytest.fixture
def org_client(settings, worker) -> Client:
    return Client(settings=settings, org=f"dest-{uuid.uuid4().hex[:8]}")


def _read(uri: str, s3) -> str:
    if uri.startswith("s3://"):
        bucket, _, key = uri[5:].partition("/")
        return s3.client().get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return Path(uri.removeprefix("file://")).read_text()


@pytest.mark.parametrize("where", ["file", "file-prefix", "s3", "s3-prefix"])
@pytest.mark.parametrize("assembler", sorted(CASES))
def test_every_builtin_assembler_writes_its_destination(org_client: Client, tmp_path: Path, s3, bucket: str,
                                                        assembler: str, where: str) -> None:
    template, params, reads, expected, name = CASES[assembler]
    (tmp_path / "in.txt").write_text(TEXT)
    base = tmp_path.resolve().as_uri() + "/out/" if where.startswith("file") else f"s3://{bucket}/out/"
    destination = base if where.endswith("prefix") else base + "output.data"
    job = org_client.submit(template, params=params, destination=destination,
                            source=(tmp_path / "in.txt").as_uri() if reads else "bypass:")
    result = job.wait(timeout=60)
    written = _read(base + name if where.endswith("prefix") else destination, s3)
    if assembler == "concat":
        assert written == expected and result["destination"] == (base + name if where.endswith("prefix")
                                                                 else destination)
    elif assembler == "single":
        assert json.loads(written) == result and result["lr"] == 0.5
    elif assembler == "json_list":
        assert json.loads(written) == expected
    else:
        assert json.loads(written) == expected == result


def test_an_assembler_that_writes_nothing_refuses_a_destination(org_client: Client, tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"m")
    with pytest.raises(SourceError, match=r"assembler 'notes_and_list' does not write a destination.*nothing was "
                                          r"queued"):
        org_client.submit("with-model", destination=(tmp_path / "out.json").as_uri(),
                          inputs={"model": (tmp_path / "model.bin").as_uri()}, params={"partitioner": {"count": 1}})
    assert org_client.jobs() == []


def test_a_missing_file_source_is_refused_at_submit(org_client: Client, tmp_path: Path) -> None:
    missing = (tmp_path / "nope.txt").as_uri()
    with pytest.raises(SourceError, match=rf"source {missing} does not exist"):
        org_client.submit("wordcount", source=missing)
    assert org_client.jobs() == []


def test_a_partitioner_that_reads_a_source_is_refused_without_one(org_client: Client) -> None:
    with pytest.raises(SourceError, match=r"template wordcount@1.0.0 reads a source \(partitioner 'lines'\)"):
        org_client.submit("wordcount")
    assert org_client.jobs() == []


def test_the_staged_flow_refuses_at_run_and_the_job_stays_a_draft(org_client: Client) -> None:
    job = org_client.create("wordcount")
    with pytest.raises(SourceError, match="reads a source"):
        job.run()
    assert job.status().state.value == "draft" and [j.state.value for j in org_client.jobs()] == ["draft"]


def test_refusals_from_the_command_line_queue_nothing(redis_url, worker, file_roots, tmp_path: Path) -> None:
    env = cli_env(redis_url, file_roots, org=f"refuse-{uuid.uuid4().hex[:8]}")
    missing = (tmp_path / "missing.txt").as_uri()
    message = one_line_error(run_cli("submit", "wordcount", "--source", missing, env=env, status=2))
    assert message == f"error: source {missing} does not exist"
    assert "reads a source" in one_line_error(run_cli("submit", "wordcount", env=env, status=2))
    assert json.loads(run_cli("jobs", "--json", env=env).stdout) == []


def test_check_source_counts_objects_and_bytes_on_file_and_s3(settings, worker, tmp_path: Path, s3,
                                                             bucket: str) -> None:
    client = Client(settings=settings)
    folder = tmp_path / "data"
    folder.mkdir()
    for name, size in (("a.txt", 3), ("b.txt", 5), ("c.txt", 7)):
        (folder / name).write_bytes(b"x" * size)
    report = client.check_source(folder.as_uri(), first=2)
    assert (report.objects, report.bytes) == (3, 15)
    assert report.first == [(folder / "a.txt").resolve().as_uri(), (folder / "b.txt").resolve().as_uri()]
    for key, size in (("in/1.bin", 10), ("in/2.bin", 20)):
        s3.client().put_object(Bucket=bucket, Key=key, Body=b"y" * size)
    report = client.check_source(f"s3://{bucket}/in/")
    assert (report.objects, report.bytes, report.first) == (2, 30, [f"s3://{bucket}/in/1.bin", f"s3://{bucket}/in/2.bin"])


def test_runner_check_source_prints_the_listing_or_one_line(redis_url, worker, file_roots, tmp_path: Path) -> None:
    env = cli_env(redis_url, file_roots, org="check")
    (tmp_path / "one.txt").write_text("hello\n")
    out = run_cli("check-source", tmp_path.as_uri(), env=env).stdout
    assert f"{tmp_path.as_uri()}: 1 object(s), 6 bytes" in out and "one.txt" in out
    missing = one_line_error(run_cli("check-source", (tmp_path / "gone").as_uri(), env=env, status=2))
    assert missing == f"error: source {(tmp_path / 'gone').as_uri()} does not exist"
