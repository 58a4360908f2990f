"""The registry: decorators, template validation, immutability, lookup by newest version.

The registry is module-global and shared with ``tests/jobs.py`` and the examples, so
every name registered here carries a unique suffix.
"""

from __future__ import annotations

from pathlib import Path

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

import assemblers  # noqa: F401  (registers the built-ins)
import partitioners  # noqa: F401  (registers the built-ins)
from runner.errors import TemplateError, TemplateNotFound
from runner.registry import (
    Function,
    Template,
    app,
    assembler,
    get_function,
    get_template,
    load_plugins,
    partitioner,
    template,
    templates,
)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Knobs(BaseModel):
    level: int = 1


@pytest.fixture
def app_name() -> str:
    """A freshly registered app (no params) with a unique name."""
    name = unique("app")

    def process(piece: Any, ctx: Any) -> Any:
        return piece

    app(name)(process)
    return name


def register_template(name: str, version: str = "1.0.0", *, app: str, **overrides: Any) -> Template:
    """``name@version`` linking replicas -> ``app`` -> sum, with ``overrides``."""
    fields: dict[str, Any] = {"partitioner": "replicas", "app": app, "assembler": "sum", **overrides}
    return template(name, version, **fields)


# --- decorators -------------------------------------------------------------------------


def test_bare_app_decorator_registers_under_the_function_name_and_returns_it() -> None:
    name = unique("bare_app").replace("-", "_")

    def fn(piece: Any, ctx: Any) -> Any:
        return piece

    fn.__name__ = name
    returned = app(fn)

    assert returned is fn
    registered = get_function("app", name)
    assert registered == Function(kind="app", name=name, fn=fn, params=None)


def test_named_app_decorator_with_params_records_the_params_model() -> None:
    name = unique("named_app")

    @app(name, params=Knobs)
    def fn(piece: Any, ctx: Any) -> Any:
        return piece

    registered = get_function("app", name)
    assert registered.fn is fn
    assert registered.params is Knobs
    assert registered.kind == "app"
    assert registered.engine == "python"


def test_decorator_with_only_params_uses_the_function_name() -> None:
    def fn(piece: Any, ctx: Any) -> Any:
        return piece

    fn.__name__ = unique("params_only").replace("-", "_")
    app(params=Knobs)(fn)

    assert get_function("app", fn.__name__).params is Knobs


@pytest.mark.parametrize(
    ("decorator", "kind"), [(partitioner, "partitioner"), (assembler, "assembler"), (app, "app")]
)
def test_each_decorator_registers_its_own_kind_only(decorator: Callable[..., Any], kind: str) -> None:
    name = unique(kind)

    @decorator(name)
    def fn(x: Any, ctx: Any) -> Any:
        return x

    assert get_function(kind, name).fn is fn  # type: ignore[arg-type]
    for other in {"partitioner", "app", "assembler"} - {kind}:
        with pytest.raises(TemplateNotFound):
            get_function(other, name)  # type: ignore[arg-type]


def test_function_origin_names_source_file_and_qualname() -> None:
    name = unique("origin")

    @assembler(name)
    def fn(results: Any, ctx: Any) -> Any:
        return list(results)

    # the source file, not the module name: a script run as __main__ and imported by name is one definition
    assert get_function("assembler", name).origin == f"{Path(__file__).resolve()}:{fn.__qualname__}"


def test_params_that_are_not_a_pydantic_model_raise() -> None:
    name = unique("bad_params")
    with pytest.raises(TemplateError, match="params must be a pydantic BaseModel"):

        @app(name, params=dict)  # type: ignore[arg-type]
        def fn(piece: Any, ctx: Any) -> Any:
            return piece

    with pytest.raises(TemplateNotFound):
        get_function("app", name)


def test_decorating_something_not_callable_raises() -> None:
    with pytest.raises(TemplateError, match="must decorate a function"):
        app(unique("not_callable"))(42)


def test_reusing_a_function_name_for_a_different_function_raises() -> None:
    name = unique("taken")

    @app(name)
    def first(piece: Any, ctx: Any) -> Any:
        return piece

    with pytest.raises(TemplateError, match="already registered by") as excinfo:

        @app(name)
        def second(piece: Any, ctx: Any) -> Any:
            return piece

    assert first.__qualname__ in str(excinfo.value)
    assert get_function("app", name).fn is first


def test_registering_the_same_function_again_is_fine() -> None:
    name = unique("again")

    def fn(piece: Any, ctx: Any) -> Any:
        return piece

    app(name)(fn)
    app(name)(fn)

    assert get_function("app", name).fn is fn


def test_unknown_function_lookup_raises_template_not_found_naming_it() -> None:
    name = unique("missing")
    with pytest.raises(TemplateNotFound, match=name):
        get_function("app", name)


# --- template validation ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["partitioner", "app", "assembler"])
def test_template_with_an_unknown_function_raises_template_not_found_naming_it(kind: str, app_name: str) -> None:
    missing = unique(f"no_such_{kind}")
    fields = {"partitioner": "replicas", "app": app_name, "assembler": "sum", kind: missing}

    with pytest.raises(TemplateNotFound) as excinfo:
        template(unique("tmpl"), "1.0.0", **fields)

    assert f"unknown {kind} {missing!r}" in str(excinfo.value)


def test_template_not_found_is_a_template_error() -> None:
    assert issubclass(TemplateNotFound, TemplateError)


@pytest.mark.parametrize("version", ["", "one", "1.0.0-banana", "v1..2"])
def test_template_with_an_invalid_version_raises(version: str, app_name: str) -> None:
    name = unique("badver")
    with pytest.raises(TemplateError, match="not a valid version"):
        register_template(name, version, app=app_name)
    with pytest.raises(TemplateNotFound):
        get_template(name)


@pytest.mark.parametrize("name", ["", "has@at", "@"])
def test_template_name_must_be_non_empty_and_contain_no_at_sign(name: str, app_name: str) -> None:
    with pytest.raises(TemplateError, match="must be non-empty and contain no '@'"):
        register_template(name, app=app_name)


def test_template_params_with_an_unknown_section_raise(app_name: str) -> None:
    with pytest.raises(TemplateError, match="params sections must be") as excinfo:
        register_template(unique("sections"), app=app_name, params={"app": {}, "apps": {"x": 1}})
    assert "apps" in str(excinfo.value)


@pytest.mark.parametrize("test_pieces", [0, -1])
def test_template_test_pieces_below_one_raises(test_pieces: int, app_name: str) -> None:
    with pytest.raises(TemplateError, match="test_pieces must be >= 1"):
        register_template(unique("tp"), app=app_name, test_pieces=test_pieces)


@pytest.mark.parametrize("batch_size", [0, -5])
def test_template_batch_size_below_one_raises(batch_size: int, app_name: str) -> None:
    with pytest.raises(TemplateError, match="batch_size must be >= 1"):
        register_template(unique("bs"), app=app_name, batch_size=batch_size)


def test_template_returns_its_definition_with_ref_and_copies_params(app_name: str) -> None:
    name = unique("def")
    defaults = {"partitioner": {"count": 4}}

    tmpl = register_template(name, "2.1.0", app=app_name, params=defaults, batch_size=7, queue="gpu")
    defaults["partitioner"]["count"] = 99

    assert tmpl.ref == f"{name}@2.1.0"
    assert tmpl.params == {"partitioner": {"count": 4}}
    assert (tmpl.batch_size, tmpl.queue, tmpl.test_pieces) == (7, "gpu", 3)
    assert tmpl.function("app").name == app_name
    assert get_template(tmpl.ref) is tmpl


# --- immutability -----------------------------------------------------------------------


def test_registering_the_same_definition_again_is_fine(app_name: str) -> None:
    name = unique("same")
    first = register_template(name, app=app_name, params={"partitioner": {"count": 2}}, task_timeout=5)
    second = register_template(name, app=app_name, params={"partitioner": {"count": 2}}, task_timeout=5)

    assert second == first
    assert get_template(f"{name}@1.0.0") == first


@pytest.mark.parametrize(
    "change",
    [
        {"assembler": "json_list"},
        {"params": {"partitioner": {"count": 3}}},
        {"task_timeout": 6},
        {"queue": "other"},
        {"test_pieces": 4},
        {"description": "different words"},
    ],
)
def test_registering_a_different_definition_under_an_existing_version_raises(
    change: dict[str, Any], app_name: str
) -> None:
    name = unique("immutable")
    original = register_template(name, app=app_name, params={"partitioner": {"count": 2}}, task_timeout=5)
    changed = {"app": app_name, "params": {"partitioner": {"count": 2}}, "task_timeout": 5, **change}

    with pytest.raises(TemplateError, match="immutable"):
        register_template(name, **changed)

    assert get_template(f"{name}@1.0.0") is original


def test_a_different_definition_under_a_new_version_is_fine(app_name: str) -> None:
    name = unique("newver")
    register_template(name, "1.0.0", app=app_name)
    newer = register_template(name, "1.0.1", app=app_name, assembler="json_list")

    assert get_template(f"{name}@1.0.1") is newer
    assert get_template(f"{name}@1.0.0").assembler == "sum"


# --- lookup ------------------------------------------------------------------------------


def test_bare_name_returns_the_newest_version_by_version_ordering_not_by_string(app_name: str) -> None:
    name = unique("newest")
    for version in ["1.9.0", "1.10.0", "1.2.0", "0.99"]:
        register_template(name, version, app=app_name)

    assert get_template(name).version == "1.10.0"


def test_bare_name_prefers_a_release_over_its_prerelease(app_name: str) -> None:
    name = unique("pre")
    register_template(name, "2.0.0", app=app_name)
    register_template(name, "2.0.0rc1", app=app_name)

    assert get_template(name).version == "2.0.0"


def test_templates_lists_versions_in_version_order(app_name: str) -> None:
    name = unique("listing")
    for version in ["1.10.0", "1.9.0", "1.2.0"]:
        register_template(name, version, app=app_name)

    assert [t.version for t in templates() if t.name == name] == ["1.2.0", "1.9.0", "1.10.0"]


def test_unknown_template_error_names_it_and_mentions_runner_include() -> None:
    ref = unique("ghost") + "@1.0.0"
    with pytest.raises(TemplateNotFound) as excinfo:
        get_template(ref)

    message = str(excinfo.value)
    assert repr(ref) in message
    assert "RUNNER_INCLUDE" in message


def test_unknown_version_of_a_known_template_raises(app_name: str) -> None:
    name = unique("known")
    register_template(name, "1.0.0", app=app_name)

    with pytest.raises(TemplateNotFound, match="RUNNER_INCLUDE"):
        get_template(f"{name}@9.9.9")


def test_load_plugins_with_an_unimportable_module_raises_naming_it() -> None:
    with pytest.raises(TemplateError) as excinfo:
        load_plugins(["no_such_module_xyz"])

    assert "'no_such_module_xyz'" in str(excinfo.value)


def test_load_plugins_registers_the_built_ins() -> None:
    load_plugins([])

    for kind, name in [
        ("partitioner", "lines"), ("partitioner", "bytes"), ("partitioner", "jsonl"), ("partitioner", "replicas"),
        ("assembler", "concat"), ("assembler", "json_list"), ("assembler", "sum"), ("assembler", "merge_counts"),
    ]:
        assert get_function(kind, name).kind == kind  # type: ignore[arg-type]
