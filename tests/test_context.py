"""What user code gets: named inputs, scratch space, artifacts, metrics, output.json,
single-task jobs — and the file roots that confine every file:// URI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner import Client, InvalidParams, JobFailed, SourceError
from tests.simple_jobs import Train, TrainSettings

REPO = Path(__file__).resolve().parent.parent


def test_named_inputs_artifacts_metrics_and_scratch_space_end_to_end(client: Client, tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_text("weights-v1")
    job = client.submit("with-model", params={"partitioner": {"count": 6}},
                        inputs={"model": (tmp_path / "model.bin").as_uri()})
    results = job.wait(timeout=60)
    assert [r["model"] for r in results] == ["weights-v1"] * 6
    assert all(r["scratch_existed"] and not Path(r["scratch"]).exists() for r in results)  # removed after use

    names = job.artifacts()
    assert names == sorted([*(f"pieces/{i}.txt" for i in range(6)), "notes/summary.txt", "output.json"])
    assert job.read_artifact("pieces/4.txt") == b"piece 4 saw weights-v1"

    output = json.loads(job.read_artifact("output.json"))
    assert output["state"] == "completed" and output["template"] == "with-model@1.0.0"
    assert output["counters"]["pieces_done"] == 6 and output["timings"]["duration_s"] > 0
    assert output["job"]["inputs"] == {"model": (tmp_path / "model.bin").as_uri()}
    score = output["metrics"]["score"]
    assert (score["count"], score["sum"], score["min"], score["max"]) == (6, 22.5, 0.0, 7.5)
    assert output["metrics"]["label"]["values"] == [f"p{i}" for i in range(6)] or \
        sorted(output["metrics"]["label"]["values"]) == sorted(f"p{i}" for i in range(6))
    assert output["metrics"]["assembled"]["count"] == 1

    copies = job.download_artifacts(tmp_path / "downloaded")
    assert (tmp_path / "downloaded" / "notes" / "summary.txt").read_text() == "assembled"
    assert len(copies) == len(names)


def test_output_json_is_written_whatever_the_final_state(client: Client) -> None:
    job = client.submit("exploding", params={"partitioner": {"after": 1}})
    with pytest.raises(JobFailed):
        job.wait(timeout=30)
    output = json.loads(job.read_artifact("output.json"))
    assert output["state"] == "failed" and "bad header" in output["error"]["message"]

    cancelled = client.submit("sleepy", params={"partitioner": {"count": 2}, "app": {"seconds": 30}})
    cancelled.cancel()
    assert json.loads(cancelled.read_artifact("output.json"))["state"] == "cancelled"


def test_missing_and_unknown_inputs_are_refused_before_queueing(client: Client, tmp_path: Path) -> None:
    with pytest.raises(InvalidParams) as caught:
        client.submit("with-model", inputs={"modle": (tmp_path / "m").as_uri()})
    assert [p for p, _ in caught.value.errors] == ["inputs.model", "inputs.modle"]
    assert "required input missing" in str(caught.value) and "declares: model" in str(caught.value)


def test_objects_makes_one_piece_per_file_under_a_directory(client: Client, tmp_path: Path) -> None:
    for name, size in {"a.csv": 3, "b/c.csv": 5, "b/d.txt": 7}.items():
        (tmp_path / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / name).write_bytes(b"x" * size)
    job = client.submit("object-sizes", source=(tmp_path / "data").as_uri())
    assert job.wait(timeout=60) == [["a.csv", 3], ["c.csv", 5], ["d.txt", 7]]
    only_csv = client.submit("object-sizes", source=(tmp_path / "data").as_uri(),
                             params={"partitioner": {"suffix": ".csv"}})
    assert only_csv.wait(timeout=60) == [["a.csv", 3], ["c.csv", 5]]


def test_lines_by_reference_reach_the_app_as_text(client: Client, tmp_path: Path) -> None:
    text = "".join(f"línea {i}\n" for i in range(2345)) + "no newline at the end"
    (tmp_path / "in.txt").write_text(text)
    job = client.submit("lines-by-ref", source=(tmp_path / "in.txt").as_uri(),
                        params={"partitioner": {"lines_per_piece": 100}})
    assert job.wait(timeout=60) == text
    stored = client.store.load_pieces(job.id, 0, 1)[0]
    assert stored["$piece"]["as_"] == "text" and stored["$piece"]["start"] == 0  # a range, not the text


def test_a_single_task_job_runs_from_python(client: Client) -> None:
    job = Train.submit(client, settings=TrainSettings(lr=0.5, tags={"run": "py"}))
    result = job.wait(timeout=60)
    assert result["lr"] == 0.5 and result["tags"] == {"run": "py"} and result["job"] == job.id
    assert job.status().pieces_total == 1 and job.status().job_timeout == 120
    assert job.read_artifact("model.txt") == b"sgd:0.5"
    assert json.loads(job.read_artifact("output.json"))["metrics"]["loss"]["count"] == 2


def test_a_single_task_job_runs_from_its_command_line_with_dot_notation(redis_url: str, worker, file_roots) -> None:
    env = {**os.environ, "RUNNER_BROKER_URL": redis_url, "RUNNER_FILE_ROOTS": ",".join(map(str, file_roots)),
           "PYTHONPATH": str(REPO)}
    args = ["--lr", "0.1", "--optimizer.name", "adam", "--optimizer.betas", "[0.8, 0.9]", "--tags", '{"team": "ml"}']
    done = subprocess.run([sys.executable, str(REPO / "tests" / "simple_jobs.py"), *args],
                          env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["lr"] == 0.1 and result["optimizer"] == {"name": "adam", "betas": [0.8, 0.9]}
    assert result["tags"] == {"team": "ml"}
    bad = subprocess.run([sys.executable, str(REPO / "tests" / "simple_jobs.py"), "--lrr", "1"],
                         env=env, capture_output=True, text=True, timeout=90)
    assert bad.returncode != 0 and "--lrr" in bad.stderr


def test_file_uris_outside_the_roots_are_refused(client: Client, tmp_path: Path) -> None:
    root = client.settings.file_roots[0]
    for uri in ("file:///etc/passwd", f"{root.as_uri()}/../../etc/passwd"):
        with pytest.raises(SourceError, match="outside the allowed file roots"):
            client.submit("echo-lines", source=uri)
    (tmp_path / "escape").symlink_to("/etc")
    with pytest.raises(SourceError, match="outside the allowed file roots"):
        client.submit("echo-lines", source=(tmp_path / "escape" / "hostname").as_uri())
    (tmp_path / "in.txt").write_text("x\n")  # a good source: the destination is what is refused
    with pytest.raises(SourceError, match="outside the allowed file roots"):
        client.submit("echo-lines", source=(tmp_path / "in.txt").as_uri(), destination="file:///etc/evil.txt")
    with pytest.raises(SourceError, match="carries credentials"):
        client.submit("echo-lines", source="https://user:hunter2@example.invalid/x.txt")


def test_the_worker_confines_file_uris_too(settings, worker, tmp_path: Path) -> None:
    """A client with laxer roots than the fleet still cannot make a worker read outside
    them: the workers' roots (from their heartbeats) refuse it before anything is queued,
    naming the worker. (A worker refusing at partition time, when no worker was live at
    submit: tests/test_first_hour_fleet.py.)"""
    lax = Client(settings=settings.model_copy(update={"file_roots": []}))
    with pytest.raises(SourceError, match=r"source: file:///etc/hostname is outside the allowed file roots of "
                                          r"worker runner-\d+@"):
        lax.submit("echo-lines", source="file:///etc/hostname")
