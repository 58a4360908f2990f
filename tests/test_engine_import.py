"""``runner template import`` and ``runner engine new`` as a user runs them: real
processes against the session's Redis and workers, which were started before any import
and run imported templates without a restart."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from runner import Client, EngineError, JobFailed
from runner.engines import import_template
from runner.storage import Storages
from runner.store import StatusStore
from tests.cli import cli_env, run_cli
from tests.test_engines import ENGINES, import_engines

pytestmark = pytest.mark.usefixtures("worker")


def write_template(path: Path, **fields) -> Path:
    path.write_text(json.dumps({"id": f"imp-{uuid.uuid4().hex[:10]}", "partitioner": "fanout", "app": "caseconv",
                                "assembler": "zipper", "params": {"partitioner": {"lines_per_chunk": 1}},
                                "config": {"taskTimeout": 30, "jobTimeout": 300, "isTestJob": True},
                                "dataSource": {"dataSourceDescriptor": "bypass"}, **fields}))
    return path


def test_an_import_reaches_workers_started_before_it(client: Client, redis_url, file_roots, tmp_path: Path) -> None:
    template = write_template(tmp_path / "template.json")
    env = cli_env(redis_url, file_roots, "default")
    done = run_cli("template", "import", str(template), "--engines", str(ENGINES), "--version", "2.1", env=env)
    ref = done.stdout.strip()
    assert ref.endswith("@2.1") and "ignored (give them per job instead): config.isTestJob\n" in done.stderr
    assert "kept as each job's defaults (a client's own win): dataSource" in done.stderr
    assert "container 'python:latest' is not used" in done.stderr  # fanout's manifest names one
    listed = run_cli("templates", "--json", env=env)
    assert ref in [info["ref"] for info in json.loads(listed.stdout)]
    (tmp_path / "in.txt").write_bytes(b"x\ny\n")
    job = client.submit(ref, source=(tmp_path / "in.txt").as_uri(), destination=(tmp_path / "out.zip").as_uri())
    job.wait(timeout=60)
    assert (tmp_path / "out.zip").stat().st_size > 0
    assert job.status().task_timeout == 30


def test_the_same_import_again_is_a_no_op_and_different_content_is_refused(redis_url, file_roots,
                                                                          tmp_path: Path) -> None:
    engines = tmp_path / "engines"
    shutil.copytree(ENGINES, engines)
    template = write_template(tmp_path / "template.json")
    env = cli_env(redis_url, file_roots, "default")
    first = run_cli("template", "import", str(template), "--engines", str(engines), env=env)
    again = run_cli("template", "import", str(template), "--engines", str(engines), env=env)
    assert again.stdout == first.stdout and "already imported, unchanged" in again.stderr
    main = engines / "caseconv" / "app" / "main.py"
    main.write_text(main.read_text() + "\n# changed\n")
    refused = run_cli("template", "import", str(template), "--engines", str(engines), env=env, status=1)
    ref = first.stdout.strip()
    assert f"template {ref} is already imported with different content (differs in: app)" in refused.stderr
    assert "--version" in refused.stderr and "Traceback" not in refused.stderr


def test_an_engine_new_trio_imported_as_one_template_runs_unchanged(client: Client, redis_url, file_roots,
                                                                   tmp_path: Path) -> None:
    env = cli_env(redis_url, file_roots, "default")
    for name, kind in (("split", "partitioner"), ("copy", "app"), ("gather", "assembler")):
        assert run_cli("engine", "new", name, "--type", kind, "--dir", str(tmp_path), env=env).stdout.strip() == \
            str(tmp_path / name)
    template = tmp_path / "template.json"
    template.write_text(json.dumps({"id": f"trio-{uuid.uuid4().hex[:8]}", "partitioner": "split", "app": "copy",
                                    "assembler": "gather", "params": {"partitioner": {}, "app": {}, "assembler": {}}}))
    ref = run_cli("template", "import", str(template), env=env).stdout.strip()
    source = tmp_path / "in"
    source.mkdir()
    files = {"a.bin": bytes(range(256)) * 3, "b.bin": b"second file\n"}
    for name, data in files.items():
        (source / name).write_bytes(data)
    out = tmp_path / "out"
    job = client.submit(ref, source=source.as_uri(), destination=out.as_uri() + "/")
    job.wait(timeout=60)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {"0_result.bin": files["a.bin"],
                                                              "1_result.bin": files["b.bin"]}
    assert any(line.msg == "2 chunks" for line in job.logs())


def test_engine_new_refuses_an_existing_folder_and_a_bad_name(redis_url, file_roots, tmp_path: Path) -> None:
    env = cli_env(redis_url, file_roots, "default")
    run_cli("engine", "new", "dup", "--type", "app", "--dir", str(tmp_path), env=env)
    assert "already exists" in run_cli("engine", "new", "dup", "--type", "app", "--dir", str(tmp_path), env=env,
                                       status=1).stderr
    assert "letters, digits" in run_cli("engine", "new", "bad name!", "--type", "app", "--dir", str(tmp_path),
                                        env=env, status=1).stderr


def test_tags_pick_the_highest_matching_version_and_gpu_apps_go_to_the_gpu_queue(settings, tmp_path: Path) -> None:
    engines = tmp_path / "engines"
    shutil.copytree(ENGINES, engines)
    manifest = json.loads((engines / "caseconv" / "manifest.json").read_text())
    manifest["device_requirements"]["gpu"] = ["nvidia"]
    (engines / "caseconv" / "manifest.json").write_text(json.dumps(manifest))
    store, storages = StatusStore.from_settings(settings), Storages(settings)
    template = write_template(tmp_path / "template.json", app="caseconv@1")
    report = import_template(template, store, storages, settings, engine_dirs=[engines])
    assert report.functions["app"].startswith("caseconv@1.2#") and report.queue == "gpu"
    other = write_template(tmp_path / "other.json", app="caseconv@1")
    assert import_template(other, store, storages, settings, engine_dirs=[engines], queue="cpu").queue == "cpu"
    missing = write_template(tmp_path / "missing.json", app="caseconv@2")
    with pytest.raises(EngineError, match=r"app 'caseconv@2': no engine folder .* \(versions found: 1.2\)"):
        import_template(missing, store, storages, settings, engine_dirs=[engines])
    wrong = write_template(tmp_path / "wrong.json", app="zipper")
    with pytest.raises(EngineError, match="is a assembler, not a app"):
        import_template(wrong, store, storages, settings, engine_dirs=[engines])


def test_secrets_reach_the_process_and_a_missing_one_fails_the_piece_naming_it(
        client: Client, settings, redis_url, file_roots, s3, tmp_path: Path) -> None:
    from runner.local import worker_process
    from tests.conftest import TEST_MODULES, s3_env

    (tmp_path / "in.txt").write_text("one\n")
    source = (tmp_path / "in.txt").as_uri()
    missing = import_engines(settings, tmp_path, app="secretive", assembler="passthrough")
    job = client.submit(missing, source=source, max_retries=0)
    with pytest.raises(JobFailed, match="secret 'ENGINE_TOKEN' is not set on this worker"):
        job.wait(timeout=60)
    ref = import_engines(settings, tmp_path, app="secretive", assembler="passthrough", queue="engine-secrets")
    env = {**s3_env(s3), "ENGINE_TOKEN": "t0ken-value"}
    with worker_process(redis_url, include=TEST_MODULES, concurrency=1, queues=["engine-secrets"], env=env,
                        file_roots=file_roots):
        out = tmp_path / "out"
        client.submit(ref, source=source, destination=out.as_uri() + "/").wait(timeout=60)
    seen = json.loads((out / "secret.json").read_text())
    assert seen == {"sha256": hashlib.sha256(b"t0ken-value").hexdigest(), "runner_vars": []}
    assert all("t0ken-value" not in line.msg for line in job.logs())


def test_the_bytenite_example_counts_words_as_python_does(client: Client, settings, tmp_path: Path) -> None:
    import collections

    from tests.conftest import REPO

    report = import_template(REPO / "examples" / "bytenite" / "template.json", StatusStore.from_settings(settings),
                             Storages(settings), settings)
    book = REPO / "examples" / "data" / "book.txt"
    out = tmp_path / "counts"
    job = client.submit(report.ref, source=book.as_uri(), destination=out.as_uri() + "/",
                        params={"partitioner": {"lines_per_chunk": 5}})
    job.wait(timeout=60)
    expected = collections.Counter(book.read_text().lower().split())
    assert json.loads((out / "counts.json").read_text()) == dict(expected)
    assert sorted(p.name for p in out.iterdir()) == ["counts.json", "top.txt"]
    assert job.status().pieces_total == -(-len(book.read_text().splitlines()) // 5)


def test_an_import_keeps_the_templates_data_defaults_and_default_params(settings, tmp_path: Path) -> None:
    from runner.engines.imports import imported_record

    store, storages = StatusStore.from_settings(settings), Storages(settings)
    template = write_template(tmp_path / "template.json", params={"partitioner": {"lines_per_chunk": 1}},
                              default_params={"partitioner": {"lines_per_chunk": 9}, "assembler": {"name": "a.zip"}},
                              dataDestination={"dataSourceDescriptor": "bucket"})
    report = import_template(template, store, storages, settings, engine_dirs=[ENGINES])
    assert report.kept == ["dataSource", "dataDestination"] and report.ignored == ["config.isTestJob"]
    record = imported_record(store, report.ref)
    assert record.data_source == {"dataSourceDescriptor": "bypass", "params": {}}
    assert record.data_destination == {"dataSourceDescriptor": "bucket", "params": {}}
    assert record.params == {"partitioner": {"lines_per_chunk": 1}, "assembler": {"name": "a.zip"}}  # params win
    bad = write_template(tmp_path / "bad.json", dataDestination="bucket")
    with pytest.raises(EngineError, match="dataDestination: .*dataSourceDescriptor"):
        import_template(bad, store, storages, settings, engine_dirs=[ENGINES])


def test_a_record_from_before_the_data_defaults_reimports_as_unchanged(settings, tmp_path: Path) -> None:
    from runner.engines.imports import ImportRecord

    store, storages = StatusStore.from_settings(settings), Storages(settings)
    template = write_template(tmp_path / "template.json")
    template.write_text(json.dumps({k: v for k, v in json.loads(template.read_text()).items() if k != "dataSource"}))
    report = import_template(template, store, storages, settings, engine_dirs=[ENGINES])
    encoded = store.imported_template(report.ref)
    assert "data_source" not in json.loads(encoded)  # the record's format as before
    assert ImportRecord.model_validate_json(encoded).encoded() == encoded
    assert import_template(template, store, storages, settings, engine_dirs=[ENGINES]).created is False


def test_importing_the_engines_package_installs_no_template_loader() -> None:
    # Workers find imported templates because their boot installs the loader
    # (workers/boot.create_app; the tests above run imported templates on real workers),
    # not as a side effect of some module importing runner.engines.
    code = ("import runner.engines, partitioners.passthrough, assemblers.passthrough\n"
            "from runner import registry\n"
            "print(len(registry._loaders))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["0"]
