"""``validate_params``: defaults merged, JSON-ready output, and every bad field reported
at once by path (``app.lowercase``)."""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

import assemblers  # noqa: F401  (registers the built-ins)
import partitioners  # noqa: F401  (registers the built-ins)
from runner.errors import InvalidParams
from runner.params import parse_section, validate_params
from runner.registry import Template, app, template


class PromptParams(BaseModel):
    prompt: str
    lowercase: bool = True
    temperature: float = Field(0.5, ge=0, le=2)
    since: date = date(2024, 1, 1)


class OpenParams(BaseModel):
    model_config = ConfigDict(extra="allow")
    size: int = 1


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def make_template(params_model: type[BaseModel] | None, defaults: dict[str, dict[str, Any]] | None = None,
                  assembler: str = "concat") -> Template:
    """A fresh template: lines -> a new app taking ``params_model`` -> ``assembler``."""
    name = unique("params_app")

    @app(name, params=params_model)
    def process(piece: Any, ctx: Any) -> Any:
        return piece

    return template(unique("params_tmpl"), "1.0.0", partitioner="lines", app=name, assembler=assembler,
                    params=defaults)


@pytest.fixture
def prompt_template() -> Template:
    return make_template(PromptParams, defaults={"partitioner": {"lines_per_piece": 10}})


def errors_of(tmpl: Template, params: Any) -> list[tuple[str, str]]:
    with pytest.raises(InvalidParams) as excinfo:
        validate_params(tmpl, params)
    return excinfo.value.errors


# --- valid params -------------------------------------------------------------------------


def test_valid_params_return_every_section_with_defaults_filled_in(prompt_template: Template) -> None:
    result = validate_params(prompt_template, {"app": {"prompt": "hi"}})

    assert result == {
        "partitioner": {"lines_per_piece": 10, "encoding": "utf-8", "by_reference": None,
                        "reference_threshold": 64 * 1024 * 1024},
        "app": {"prompt": "hi", "lowercase": True, "temperature": 0.5, "since": "2024-01-01"},
        "assembler": {"separator": "", "encoding": "utf-8"},
    }


def test_result_is_json_ready(prompt_template: Template) -> None:
    result = validate_params(prompt_template, {"app": {"prompt": "hi", "since": date(2025, 3, 4)}})

    assert json.loads(json.dumps(result)) == result
    assert result["app"]["since"] == "2025-03-04"


def test_job_params_override_template_defaults_field_by_field(prompt_template: Template) -> None:
    result = validate_params(prompt_template, {"partitioner": {"encoding": "latin-1"}, "app": {"prompt": "p"}})

    assert result["partitioner"]["lines_per_piece"] == 10 and result["partitioner"]["encoding"] == "latin-1"


def test_a_job_value_wins_over_the_template_default(prompt_template: Template) -> None:
    result = validate_params(prompt_template, {"partitioner": {"lines_per_piece": 3}, "app": {"prompt": "p"}})

    assert result["partitioner"]["lines_per_piece"] == 3


def test_template_defaults_can_supply_a_required_field() -> None:
    tmpl = make_template(PromptParams, defaults={"app": {"prompt": "from template"}})

    assert validate_params(tmpl, None)["app"]["prompt"] == "from template"


def test_values_are_coerced_by_the_model(prompt_template: Template) -> None:
    result = validate_params(prompt_template, {"app": {"prompt": "p", "lowercase": "false", "temperature": "1.5"}})

    assert result["app"]["lowercase"] is False
    assert result["app"]["temperature"] == 1.5


def test_a_function_without_params_gets_an_empty_section() -> None:
    tmpl = make_template(None, assembler="sum")

    assert validate_params(tmpl, {})["app"] == {}
    assert validate_params(tmpl, {})["assembler"] == {}


def test_a_model_allowing_extra_fields_keeps_them() -> None:
    tmpl = make_template(OpenParams)

    assert validate_params(tmpl, {"app": {"size": 2, "colour": "red"}})["app"] == {"size": 2, "colour": "red"}


def test_validate_params_does_not_change_the_template_defaults(prompt_template: Template) -> None:
    validate_params(prompt_template, {"partitioner": {"lines_per_piece": 1}, "app": {"prompt": "p"}})

    assert prompt_template.params == {"partitioner": {"lines_per_piece": 10}}


def test_parse_section_gives_the_typed_model_the_function_sees(prompt_template: Template) -> None:
    merged = validate_params(prompt_template, {"app": {"prompt": "p", "since": "2025-02-03"}})

    parsed = parse_section(PromptParams, merged["app"])

    assert parsed == PromptParams(prompt="p", since=date(2025, 2, 3))
    assert parse_section(None, {}) is None


# --- one bad field at a time ----------------------------------------------------------------


def test_a_bad_value_is_reported_by_section_and_field(prompt_template: Template) -> None:
    errors = errors_of(prompt_template, {"app": {"prompt": "p", "lowercase": "notabool"}})

    assert [path for path, _ in errors] == ["app.lowercase"]
    assert "boolean" in errors[0][1]


def test_a_missing_required_field_is_reported_as_field_required(prompt_template: Template) -> None:
    assert errors_of(prompt_template, {"app": {}}) == [("app.prompt", "field required")]


def test_no_params_at_all_still_reports_the_missing_required_field(prompt_template: Template) -> None:
    assert errors_of(prompt_template, None) == [("app.prompt", "field required")]


def test_an_unexpected_field_is_reported_not_silently_ignored(prompt_template: Template) -> None:
    assert errors_of(prompt_template, {"app": {"prompt": "p", "lowercse": False}}) == [
        ("app.lowercse", "unexpected field; did you mean lowercase?")
    ]


def test_an_unexpected_field_like_no_real_one_gets_no_suggestion(prompt_template: Template) -> None:
    assert errors_of(prompt_template, {"app": {"prompt": "p", "zebra": 1}}) == [("app.zebra", "unexpected field")]


def test_an_unknown_section_is_reported(prompt_template: Template) -> None:
    errors = errors_of(prompt_template, {"app": {"prompt": "p"}, "apps": {"prompt": "p"}})

    assert len(errors) == 1
    path, message = errors[0]
    assert path == "apps"
    assert "unknown section" in message
    assert "partitioner, app, assembler" in message


@pytest.mark.parametrize("section", [["prompt"], "prompt=hi", 3, None])
def test_a_section_that_is_not_an_object_is_reported(prompt_template: Template, section: Any) -> None:
    errors = errors_of(prompt_template, {"app": section})

    assert errors == [("app", f"must be an object of fields, got {type(section).__name__}")]


def test_params_for_a_function_that_takes_none_are_each_reported() -> None:
    tmpl = make_template(None, assembler="sum")

    errors = errors_of(tmpl, {"assembler": {"a": 1, "b": 2}})

    assert errors == [
        ("assembler.a", "unexpected field: this function takes no params"),
        ("assembler.b", "unexpected field: this function takes no params"),
    ]


def test_params_that_are_not_an_object_are_reported() -> None:
    tmpl = make_template(None, assembler="sum")

    assert [path for path, _ in errors_of(tmpl, ["app"])] == ["params"]


def test_a_bad_template_default_is_reported_by_its_path() -> None:
    tmpl = make_template(PromptParams, defaults={"app": {"prompt": "p", "temperature": 9}})

    assert [path for path, _ in errors_of(tmpl, {})] == ["app.temperature"]


# --- every bad field at once ----------------------------------------------------------------


def test_errors_from_every_section_are_reported_in_one_exception(prompt_template: Template) -> None:
    params = {
        "partitioner": {"lines_per_piece": 0, "encoding": "no-such-codec"},
        "app": {"lowercase": "notabool", "lowercse": True},
        "assembler": "not a dict",
        "extra": {},
    }

    with pytest.raises(InvalidParams) as excinfo:
        validate_params(prompt_template, params)

    paths = sorted(path for path, _ in excinfo.value.errors)
    assert paths == sorted([
        "extra",
        "partitioner.lines_per_piece",
        "partitioner.encoding",
        "app.lowercse",
        "app.lowercase",
        "app.prompt",
        "assembler",
    ])
    assert all(isinstance(message, str) and message for _, message in excinfo.value.errors)
    assert ("app.lowercse", "unexpected field; did you mean lowercase?") in excinfo.value.errors
    assert ("app.prompt", "field required") in excinfo.value.errors


def test_the_message_lists_every_error_one_per_line(prompt_template: Template) -> None:
    with pytest.raises(InvalidParams) as excinfo:
        validate_params(prompt_template, {"app": {"lowercase": "notabool", "lowercse": 1}})

    message = str(excinfo.value)
    lines = message.splitlines()
    assert lines[0] == "invalid params (3 errors):"
    assert "  app.prompt: field required" in lines
    assert "  app.lowercse: unexpected field; did you mean lowercase?" in lines
    assert any(line.startswith("  app.lowercase: ") for line in lines)
    assert len(lines) == 4


def test_an_unexpected_field_is_reported_once_even_when_the_model_forbids_extras() -> None:
    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid")
        size: int = 1

    tmpl = make_template(Strict)

    assert errors_of(tmpl, {"app": {"sise": 2}}) == [("app.sise", "unexpected field; did you mean size?")]


def test_nested_fields_are_reported_with_a_dotted_path() -> None:
    class Inner(BaseModel):
        depth: int

    class Outer(BaseModel):
        inner: Inner

    tmpl = make_template(Outer)

    assert [path for path, _ in errors_of(tmpl, {"app": {"inner": {"depth": "deep"}}})] == ["app.inner.depth"]


# --- aliased fields ------------------------------------------------------------------------


class AliasedParams(BaseModel):
    max_tokens: int = Field(10, alias="maxTokens")


def test_validated_params_of_an_aliased_field_reach_the_function_unchanged() -> None:
    tmpl = make_template(AliasedParams)

    merged = validate_params(tmpl, {"app": {"maxTokens": 5}})
    parsed = parse_section(AliasedParams, merged["app"])

    assert parsed is not None and parsed.max_tokens == 5  # type: ignore[attr-defined]


def test_a_field_name_given_for_an_aliased_field_is_used_or_reported() -> None:
    tmpl = make_template(AliasedParams)

    try:
        merged = validate_params(tmpl, {"app": {"max_tokens": 5}})
    except InvalidParams as exc:
        assert [path for path, _ in exc.errors] == ["app.max_tokens"]
    else:
        assert 5 in merged["app"].values()
