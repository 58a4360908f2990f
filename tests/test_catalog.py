"""Published templates: workers publish what they registered, clients that never imported
the module list, show, validate and submit by name, version tags resolve, and a worker
with a conflicting definition refuses to start.

Client processes here are real subprocesses (``python -c`` and the ``runner`` CLI) with
no include, so nothing but the store tells them about ``wordcount``.
"""

from __future__ import annotations

import datetime
import enum
import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version
from pydantic import BaseModel, ConfigDict, Field

import assemblers  # noqa: F401  (registers the built-ins)
import partitioners  # noqa: F401  (registers the built-ins)
from runner import Client, get_settings
from runner.catalog import TemplateInfo, find_template, param_fields, publish, published
from runner.errors import ClusterError, InvalidParams, TemplateError, TemplateNotFound
from runner.local import embedded_redis, stop_process, wait_until, worker_process
from runner.params import validate_params
from runner.registry import app, get_template, template
from runner.store import StatusStore

RUNNER = str(Path(sys.executable).with_name("runner"))


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def client_env(redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of a client process pointed at ``redis_url``: no include, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_") and k != "PYTHONPATH"}
    return {**env, "RUNNER_BROKER_URL": redis_url, **extra}


def run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Inner(BaseModel):
    depth: int = 1


class RichParams(BaseModel):
    prompt: str
    lowercase: bool = True
    temperature: float = Field(0.5, ge=0, le=2, description="Sampling temperature.")
    since: datetime.date = datetime.date(2024, 1, 1)
    colour: Colour = Colour.RED
    inner: Inner | None = None
    tags: list[str] = Field(default_factory=list)
    weights: dict[str, int] = {}
    max_tokens: int = Field(10, alias="maxTokens")


class StrictParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = 1


def make_template(model: type[BaseModel] | None, name: str | None = None, version: str = "1.0.0",
                  **options: Any):
    fn_name = unique("catalog_app")

    @app(fn_name, params=model)
    def process(piece: Any, ctx: Any) -> Any:
        return piece

    return template(name or unique("catalog_tmpl"), version, partitioner="lines", app=fn_name,
                    assembler="concat", **options)


def as_published(info: TemplateInfo) -> TemplateInfo:
    """What a process without the module sees: the JSON the fleet wrote, read back."""
    copy = TemplateInfo.model_validate_json(info.model_dump_json())
    assert not copy.is_local
    return copy


@pytest.fixture(scope="module")
def store(redis_url: str) -> StatusStore:
    return StatusStore.from_settings(get_settings(broker_url=redis_url))


# --- the published form ---------------------------------------------------------------------


def test_template_info_reads_like_the_template_it_describes() -> None:
    tmpl = make_template(RichParams, params={"app": {"prompt": "hi"}}, queue="gpu", inputs=["model"],
                         task_timeout=5, description="d")

    info = TemplateInfo.from_template(tmpl)

    for attr in ("ref", "name", "version", "partitioner", "app", "assembler", "queue", "description",
                 "test_pieces", "task_timeout", "job_timeout", "max_retries", "batch_size", "params"):
        assert getattr(info, attr) == getattr(tmpl, attr), attr
    assert info.inputs == ["model"]
    assert info.params_schema["app"]["properties"]["temperature"]["description"] == "Sampling temperature."
    assert info.params_schema["assembler"] is not None and "properties" in info.params_schema["assembler"]


def test_a_function_without_params_publishes_no_schema() -> None:
    info = TemplateInfo.from_template(make_template(None))

    assert info.params_schema["app"] is None
    assert validate_params(as_published(info), {})["app"] == {}


def test_the_hash_names_the_definition_not_where_it_lives() -> None:
    info = TemplateInfo.from_template(make_template(RichParams))

    assert as_published(info).hash == info.hash
    assert str(Path(__file__).parent) not in info.model_dump_json()  # hosts differ in paths


def test_param_fields_give_name_type_default_and_description_per_section() -> None:
    info = TemplateInfo.from_template(make_template(RichParams, params={"app": {"temperature": 1.5}}))

    rows = {row[0]: row[1:] for row in param_fields(info, "app")}

    assert rows["prompt"] == ("string", "required", "")
    assert rows["temperature"] == ("number >= 0 <= 2", "1.5", "Sampling temperature.")  # the template's default
    assert rows["colour"] == ('one of "red", "blue"', '"red"', "")
    assert rows["inner"][0] == "Inner | None" and rows["tags"] == ("list[string]", "[]", "")
    assert rows["maxTokens"][:2] == ("integer", "10")
    assert param_fields(TemplateInfo.from_template(make_template(None)), "app") == []


def test_differences_name_the_parts_that_differ() -> None:
    name = unique("diff")
    one = TemplateInfo.from_template(make_template(RichParams, name, params={"app": {"prompt": "a"}}))
    other = TemplateInfo.from_template(make_template(StrictParams, name, "2.0.0", queue="gpu"))

    assert one.hash != other.hash
    assert one.differences(other) == ["app", "app params schema", "defaults", "queue"]


# --- the same params either way ---------------------------------------------------------------


VALID = [
    {"app": {"prompt": "p"}},
    {"app": {"prompt": "p", "lowercase": "false", "temperature": "1.5", "since": "2025-02-03"}},
    {"app": {"prompt": "p", "colour": "blue", "inner": {"depth": "3"}, "tags": ["a"], "weights": {"x": 2}}},
    {"app": {"prompt": "p", "maxTokens": 5, "temperature": 1}, "partitioner": {"lines_per_piece": 7}},
]
INVALID = [
    {"app": {"lowercase": "notabool", "lowercse": True}},
    {"app": {"prompt": "p", "temperature": 9, "colour": "green", "inner": {"depth": "deep"}}},
    {"app": {"prompt": 3, "tags": "x", "since": "yesterday"}, "apps": {}},
    {"partitioner": {"lines_per_piece": 0, "lines_per_pice": 2}, "assembler": "no"},
]


@pytest.mark.parametrize("params", VALID)
def test_published_schemas_merge_params_exactly_as_the_models_do(params: dict[str, Any]) -> None:
    local = TemplateInfo.from_template(make_template(RichParams, params={"partitioner": {"lines_per_piece": 3}}))

    merged = validate_params(as_published(local), params)

    assert merged == validate_params(local, params)
    assert json.dumps(merged, sort_keys=True) == json.dumps(validate_params(local, params), sort_keys=True)
    assert merged["app"]["tags"] == validate_params(local, params)["app"]["tags"]  # default_factory filled in


@pytest.mark.parametrize("params", INVALID)
def test_published_schemas_report_every_bad_field_exactly_as_the_models_do(params: dict[str, Any]) -> None:
    local = TemplateInfo.from_template(make_template(RichParams))

    with pytest.raises(InvalidParams) as by_model:
        validate_params(local, params)
    with pytest.raises(InvalidParams) as by_schema:
        validate_params(as_published(local), params)

    assert by_schema.value.errors == by_model.value.errors
    assert len(by_schema.value.errors) >= 2


def test_a_forbidding_model_reports_a_misspelt_field_once_with_a_suggestion_either_way() -> None:
    local = TemplateInfo.from_template(make_template(StrictParams))

    for info in (local, as_published(local)):
        with pytest.raises(InvalidParams) as excinfo:
            validate_params(info, {"app": {"sise": 2}})
        assert excinfo.value.errors == [("app.sise", "unexpected field; did you mean size?")]


# --- version tags -----------------------------------------------------------------------------


VERSIONS = ["0.9.0", "1.0.0", "1.0.3", "1.2.0", "1.10.1", "2.0.0rc1"]
TAGS = {"": "1.10.1", "1": "1.10.1", "1.0": "1.0.3", "1.2": "1.2.0", "1.0.0": "1.0.0", "2": "2.0.0rc1",
        "1.10": "1.10.1"}


@pytest.mark.parametrize(("tag", "version"), TAGS.items())
def test_a_version_tag_resolves_to_the_newest_registered_match(tag: str, version: str) -> None:
    name = unique("tags")
    for v in VERSIONS:
        make_template(None, name, v)

    assert get_template(f"{name}@{tag}" if tag else name).version == version


def test_version_tags_resolve_among_published_templates(store: StatusStore) -> None:
    name = unique("pubtags")  # published only: this process registers nothing by that name
    for version in VERSIONS:
        info = TemplateInfo.from_template(make_template(None, version=version))
        publish(store, [info.model_copy(update={"name": name, "ref": f"{name}@{version}"})])

    for tag, version in TAGS.items():
        found = find_template(f"{name}@{tag}" if tag else name, store)
        assert (found.version, found.is_local) == (version, False)


def test_an_unknown_template_lists_the_known_ones_and_says_how_to_publish(store: StatusStore) -> None:
    known = TemplateInfo.from_template(make_template(None))
    publish(store, [known])
    ref = unique("ghost") + "@1"

    with pytest.raises(TemplateNotFound) as excinfo:
        find_template(ref, store)

    message = str(excinfo.value)
    assert repr(ref) in message and known.ref in message
    assert "--include MODULE" in message and "-I MODULE" in message


def test_an_unknown_version_of_a_published_template_is_not_found(store: StatusStore) -> None:
    info = TemplateInfo.from_template(make_template(None, version="1.4.0"))
    publish(store, [info])

    with pytest.raises(TemplateNotFound, match="--include MODULE"):
        find_template(f"{info.name}@2", store)


# --- immutability across the fleet --------------------------------------------------------------


def test_publishing_the_same_definition_again_is_fine(store: StatusStore) -> None:
    info = TemplateInfo.from_template(make_template(RichParams))

    publish(store, [info])
    publish(store, [as_published(info)])

    assert published(store)[info.ref].hash == info.hash


def test_publishing_a_different_definition_of_a_published_version_names_the_part(store: StatusStore) -> None:
    name = unique("clash")
    first = TemplateInfo.from_template(make_template(RichParams, name))
    publish(store, [first])
    other = first.model_copy(update={"defaults": {"app": {"prompt": "x"}}, "hash": "changed"})

    with pytest.raises(TemplateError) as excinfo:
        publish(store, [other])

    assert f"{name}@1.0.0" in str(excinfo.value) and "defaults" in str(excinfo.value)
    assert published(store)[first.ref].hash == first.hash


def test_a_client_whose_import_differs_from_the_published_definition_is_told(store: StatusStore) -> None:
    tmpl = make_template(StrictParams)
    fleet = TemplateInfo.from_template(tmpl).model_copy(update={"queue": "gpu", "hash": "fleet"})
    publish(store, [fleet])

    with pytest.raises(TemplateError, match="differs in: queue"):
        find_template(tmpl.ref, store)


def test_a_worker_with_a_conflicting_definition_refuses_to_start(
    worker: None, redis_url: str, tmp_path: Path
) -> None:
    module = unique("conflicting_wordcount")
    (tmp_path / f"{module}.py").write_text(textwrap.dedent("""
        from pydantic import BaseModel
        from runner import app, template

        class CountParams(BaseModel):
            lowercase: str = "yes"   # the published wordcount@1.0.0 says bool

        @app("wordcount", params=CountParams)
        def wordcount(piece, ctx):
            return {}

        template("wordcount", version="1.0.0", partitioner="lines", app="wordcount", assembler="merge_counts",
                 params={"partitioner": {"lines_per_piece": 1000}}, task_timeout=60, job_timeout=600,
                 description="Word frequencies of a text, N lines per piece.")
    """))

    with pytest.raises(ClusterError) as excinfo:
        with worker_process(redis_url, include=[module], concurrency=1, cwd=tmp_path,
                            env={"PYTHONPATH": ""}, log_path=tmp_path / "worker.log"):
            pass

    message = str(excinfo.value)
    assert "wordcount@1.0.0" in message and "app params schema" in message
    assert "Traceback" not in message


# --- a client that never imported the module ----------------------------------------------------


def test_a_process_without_the_module_lists_and_shows_published_templates(
    worker: None, redis_url: str, tmp_path: Path
) -> None:
    env = client_env(redis_url)

    listing = run([RUNNER, "templates"], env, tmp_path)
    shown = run([RUNNER, "templates", "wordcount@1"], env, tmp_path)
    as_json = run([RUNNER, "templates", "--json"], env, tmp_path)

    assert listing.returncode == 0, listing.stderr
    assert "wordcount@1.0.0" in listing.stdout
    assert shown.returncode == 0, shown.stderr
    for text in ("lowercase", "boolean", "min_length", "integer >= 1", "Ignore words shorter than this.",
                 "lines_per_piece", "1000", "inputs: none", "queue: default"):
        assert text in shown.stdout, text
    refs = {info["ref"]: info for info in json.loads(as_json.stdout)}
    assert refs["wordcount@1.0.0"]["params_schema"]["app"]["properties"]["min_length"]["default"] == 1


def test_templates_with_none_published_says_how_to_publish_one(tmp_path: Path) -> None:
    with embedded_redis() as url:
        done = run([RUNNER, "templates"], client_env(url), tmp_path)

    assert done.returncode == 0, done.stderr
    assert "no templates published yet" in done.stdout and "runner worker --include" in done.stdout


def test_a_process_without_the_module_submits_and_runs_staged_jobs_by_name(
    worker: None, redis_url: str, tmp_path: Path
) -> None:
    book = tmp_path / "book.txt"
    book.write_text("The cat sat.\nthe CAT ran, a cat!\n")
    script = textwrap.dedent(f"""
        import json, sys
        from runner import Client, InvalidParams
        client = Client()
        job = client.submit("wordcount@1.0.0", source={book.as_uri()!r}, params={{"app": {{"min_length": 2}}}})
        staged = client.create("wordcount@1").set_datasource(source={book.as_uri()!r})
        try:
            staged.set_params(app={{"min_lenght": 2}})
        except InvalidParams as exc:
            misspelt = exc.errors
        staged.set_params(app={{"min_length": 3, "lowercase": False}}).run()
        print(json.dumps({{"result": job.wait(timeout=90), "staged": staged.wait(timeout=90), "misspelt": misspelt,
                          "imported": [m for m in sys.modules if m.startswith("examples")]}}))
    """)

    done = run([sys.executable, "-c", script], client_env(redis_url, RUNNER_FILE_ROOTS=str(tmp_path)), tmp_path)

    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["imported"] == []
    assert answer["result"] == {"cat": 3, "the": 2, "sat": 1, "ran": 1}
    assert answer["staged"] == {"cat": 2, "The": 1, "sat": 1, "the": 1, "CAT": 1, "ran": 1}
    assert answer["misspelt"] == [["app.min_lenght", "unexpected field; did you mean min_length?"]]


def test_bad_params_from_a_process_without_the_module_name_every_field(
    worker: None, redis_url: str, tmp_path: Path
) -> None:
    env = client_env(redis_url)
    before = len(Client(settings=get_settings(broker_url=redis_url)).jobs(limit=10_000))

    done = run([RUNNER, "submit", "wordcount@1.0", "-p", "app.lowercase=notabool", "-p", "app.min_lenght=2",
                "-p", "partitioner.lines_per_piece=0"], env, tmp_path)

    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "app.lowercase: Input should be a valid boolean" in output
    assert "app.min_lenght: unexpected field; did you mean min_length?" in output
    assert "partitioner.lines_per_piece: Input should be greater than or equal to 1" in output
    assert "Traceback" not in output
    assert len(Client(settings=get_settings(broker_url=redis_url)).jobs(limit=10_000)) == before  # nothing queued


def test_client_templates_lists_published_and_imported_by_name_then_version(
    worker: None, settings, redis_url: str
) -> None:
    local = make_template(None, unique("aaa_local"))
    client = Client(settings=settings)

    found = client.templates()
    refs = [info.ref for info in found]

    assert "wordcount@1.0.0" in refs and local.ref in refs
    assert refs == [info.ref for info in sorted(found, key=lambda i: (i.name, Version(i.version)))]
    assert client.template("wordcount").is_local  # this process imported it (conftest's include)


# --- --include finds a module where the command runs -------------------------------------------


MYJOBS = """
from runner import app, template

@app("{name}_shout")
def shout(piece, ctx):
    return piece.upper()

template("{name}", version="1.0.0", partitioner="lines", app="{name}_shout", assembler="concat",
         params={{"partitioner": {{"lines_per_piece": 1}}}})
"""


def test_a_worker_started_beside_its_module_with_include_runs_its_jobs(tmp_path: Path) -> None:
    name = unique("myjobs")
    (tmp_path / f"{name}.py").write_text(MYJOBS.format(name=name))
    (tmp_path / "in.txt").write_text("one\ntwo\n")
    with embedded_redis() as url:
        env = client_env(url, RUNNER_FILE_ROOTS=str(tmp_path))
        log = (tmp_path / "worker.err").open("wb")
        hostname = f"{name}@localhost"
        proc = subprocess.Popen([RUNNER, "worker", "--include", name, "--concurrency", "1", "--hostname", hostname],
                                env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
        try:
            client = Client(settings=get_settings(broker_url=url, file_roots=[tmp_path]))
            wait_until(lambda: hostname in client.store.live_workers(), "worker", proc, tmp_path / "worker.err",
                       timeout=90)
            job = client.submit(name, source=(tmp_path / "in.txt").as_uri())

            assert job.wait(timeout=90) == "ONE\nTWO\n"
            assert name not in sys.modules  # the test process never imported it: the worker published it
        finally:
            stop_process(proc)
            log.close()


def test_a_client_command_imports_an_include_module_from_the_current_directory(
    redis_url: str, tmp_path: Path
) -> None:
    name = unique("localonly")
    (tmp_path / f"{name}.py").write_text(MYJOBS.format(name=name))

    done = run([RUNNER, "templates", f"{name}@1", "-I", name, "--json"], client_env(redis_url), tmp_path)

    assert done.returncode == 0, done.stderr
    assert [info["ref"] for info in json.loads(done.stdout)] == [f"{name}@1.0.0"]


def test_a_model_that_refers_to_itself_validates_from_its_published_schema() -> None:
    class Node(BaseModel):
        value: int
        children: list[Node] = []

    info = TemplateInfo.from_template(make_template(Node))
    params = {"app": {"value": "1", "children": [{"value": 2}]}}

    assert validate_params(as_published(info), params) == validate_params(info, params)
    with pytest.raises(InvalidParams) as excinfo:
        validate_params(as_published(info), {"app": {"valu": 1}})
    assert ("app.valu", "unexpected field; did you mean value?") in excinfo.value.errors


def test_a_schema_the_client_cannot_rebuild_lets_params_through_for_the_worker() -> None:
    info = TemplateInfo.from_template(make_template(StrictParams))
    odd = {"type": "object", "properties": {"code": {"type": "string", "pattern": "("}}}  # no regex engine takes it
    published_copy = as_published(info).model_copy(update={"params_schema": {**info.params_schema, "app": odd}})

    assert validate_params(published_copy, {"app": {"anything": 1}})["app"] == {"anything": 1}
