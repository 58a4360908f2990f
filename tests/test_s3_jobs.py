"""Jobs reading and writing S3 on a real SeaweedFS server, and inputs over HTTP."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import pytest

from runner import Client, JobFailed
from tests.httpserver import http_server


def put(s3, bucket: str, key: str, data: bytes) -> str:
    s3.client().put_object(Bucket=bucket, Key=key, Body=data)
    return f"s3://{bucket}/{key}"


def test_the_object_report_example_reads_a_prefix_and_writes_its_report_to_s3(client: Client, s3, bucket) -> None:
    objects = {f"logs/2026/{i:03d}.log": b"".join(b"line %d of %d\n" % (j, i) for j in range(i % 7)) for i in range(120)}
    for key, data in objects.items():
        put(s3, bucket, key, data)
    put(s3, bucket, "other/not-me.log", b"x\n")
    job = client.submit("object-report", source=f"s3://{bucket}/logs/", destination=f"s3://{bucket}/reports/logs.csv")
    summary = job.wait(timeout=120)
    assert summary == {"destination": f"s3://{bucket}/reports/logs.csv", "objects": 120,
                       "bytes": sum(map(len, objects.values())), "lines": sum(d.count(b"\n") for d in objects.values())}
    report = s3.client().get_object(Bucket=bucket, Key="reports/logs.csv")["Body"].read().decode()
    rows = list(csv.DictReader(io.StringIO(report)))
    assert [r["uri"] for r in rows] == [f"s3://{bucket}/{key}" for key in sorted(objects)]
    assert all(r["sha256"] == hashlib.sha256(objects[r["uri"].split("/", 3)[3]]).hexdigest() for r in rows)


def test_byte_range_pieces_read_only_their_range_of_an_s3_object(client: Client, s3, bucket) -> None:
    data = bytes(range(256)) * 4000
    uri = put(s3, bucket, "blob.bin", data)
    job = client.submit("byte-length", source=uri, params={"partitioner": {"piece_size": 100_000}})
    assert job.wait(timeout=60) == len(data)
    assert job.status().pieces_total == 11


def test_lines_by_reference_from_s3(client: Client, s3, bucket) -> None:
    text = "".join(f"row {i}: {'x' * (i % 50)}\n" for i in range(3000))
    uri = put(s3, bucket, "big.txt", text.encode())
    job = client.submit("lines-by-ref", source=uri, params={"partitioner": {"lines_per_piece": 250}})
    assert job.wait(timeout=60) == text


def test_a_large_output_goes_to_s3_as_a_multipart_upload(client: Client, s3, bucket, tmp_path: Path) -> None:
    text = "".join(f"{i:09d} {'payload' * 12}\n" for i in range(130_000))  # ~12 MiB: two 8 MiB parts
    (tmp_path / "in.txt").write_text(text)
    job = client.submit("echo-lines", source=(tmp_path / "in.txt").as_uri(), destination=f"s3://{bucket}/out/copy.txt",
                        params={"partitioner": {"lines_per_piece": 5000}})
    assert job.wait(timeout=120)["bytes"] == len(text)
    head = s3.client().head_object(Bucket=bucket, Key="out/copy.txt")
    assert head["ETag"].strip('"').endswith("-2")  # a multipart upload of two parts
    assert s3.client().get_object(Bucket=bucket, Key="out/copy.txt")["Body"].read().decode() == text


def test_a_missing_s3_source_fails_the_job_naming_the_uri(client: Client, bucket) -> None:
    job = client.submit("echo-lines", source=f"s3://{bucket}/no/such.txt")
    with pytest.raises(JobFailed, match=rf"\[partition\] SourceError: s3://{bucket}/no/such.txt does not exist"):
        job.wait(timeout=60)


def test_artifacts_can_live_on_s3(settings, s3, bucket, redis_url, file_roots) -> None:
    """A fleet whose RUNNER_ARTIFACTS_URL is an S3 prefix: tasks write there, the client reads there.

    A worker of its own (own control queue, so the session fleet, whose artifacts are
    files, takes none of this job's tasks) runs the job.
    """
    from tests.conftest import TEST_MODULES, s3_env
    from runner.local import worker_process

    artifacts = f"s3://{bucket}/artifacts"
    client = Client(settings=settings.model_copy(update={"artifacts_url": artifacts, "control_queue": "s3art-control",
                                                          "org": "s3-artifacts"}))
    env = {**s3_env(s3), "RUNNER_ARTIFACTS_URL": artifacts, "RUNNER_CONTROL_QUEUE": "s3art-control"}
    with worker_process(redis_url, include=TEST_MODULES, concurrency=1, queues=["s3art"], env=env,
                        file_roots=file_roots):
        model = put(s3, bucket, "models/m.txt", b"from-s3")
        job = client.submit("s3-artifacts", params={"partitioner": {"count": 2}}, inputs={"model": model})
        assert [r["model"] for r in job.wait(timeout=60)] == ["from-s3", "from-s3"]
    assert "output.json" in job.artifacts() and job.read_artifact("pieces/1.txt") == b"piece 1 saw from-s3"
    keys = {o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket, Prefix="artifacts/")["Contents"]}
    assert {f"artifacts/{job.id}/output.json", f"artifacts/{job.id}/notes/summary.txt"} <= keys


def test_a_named_input_is_fetched_once_per_worker_process(client: Client, tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_text("weights-http")
    with http_server(tmp_path) as server:
        job = client.submit("with-model", params={"partitioner": {"count": 40}},
                            inputs={"model": server.url_for("model.bin")})
        assert {r["model"] for r in job.wait(timeout=60)} == {"weights-http"}
        fetches = [r for r in server.requests if r.method == "GET" and r.path == "/model.bin"]
    assert 1 <= len(fetches) <= 2  # the test fleet has two worker processes
