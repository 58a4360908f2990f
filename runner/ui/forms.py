"""A template's params as an HTML form, generated from its published JSON Schemas, and
a posted form read back into params.

Each field of each kind (``app``, ``partitioner``, ``assembler``) becomes one input named
``<kind>.<field>``, so the admission path's error paths (``app.seconds``) name the input
they belong to and show beside it. Scalars get typed inputs (number, checkbox, select
for an enum); anything else (lists, objects, unions) a JSON textarea. A value that does
not convert is passed on as typed, so the one validation (``validate_params``) words the
error, as it would for the API.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from runner.catalog import TemplateInfo
from runner.registry import KINDS

__all__ = ["Field", "form_fields", "read_params"]

_NUMBER = {"integer", "number"}


@dataclass(frozen=True)
class Field:
    """One input of the form."""

    name: str  # "<kind>.<field>"
    label: str
    widget: str  # text | number | integer | checkbox | select | json
    value: str  # what the input shows (the default, the template's value, or what was posted)
    description: str = ""
    options: tuple[str, ...] = ()
    required: bool = False


def _type_of(prop: dict[str, Any]) -> tuple[str | None, bool]:
    """The property's scalar type and whether null is allowed (``Optional[X]``)."""
    options = prop.get("anyOf") or prop.get("oneOf")
    if options:
        kinds = [o.get("type") for o in options]
        rest = [k for k in kinds if k != "null"]
        return (rest[0] if len(rest) == 1 and isinstance(rest[0], str) else None), "null" in kinds
    kind = prop.get("type")
    return (kind if isinstance(kind, str) else None), False


def _resolve(prop: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A property with its ``$ref`` (an enum or a model, in ``$defs``) read in."""
    ref = prop.get("$ref") or next((p.get("$ref") for p in prop.get("allOf", []) if "$ref" in p), None)
    if not isinstance(ref, str) or not ref.startswith("#/$defs/"):
        return prop
    target = (schema.get("$defs") or {}).get(ref.removeprefix("#/$defs/"), {})
    return {**target, **{k: v for k, v in prop.items() if k not in ("$ref", "allOf")}}


def _widget(prop: dict[str, Any]) -> str:
    kind, _ = _type_of(prop)
    if "enum" in prop:
        return "select"
    if kind == "boolean":
        return "checkbox"
    if kind in _NUMBER:
        return kind
    return "text" if kind == "string" else "json"


def _shown(widget: str, value: Any) -> str:
    if value is None:
        return ""
    if widget == "checkbox":
        return "on" if value else ""
    if widget == "json" or not isinstance(value, (str, int, float)):
        return json.dumps(value)
    return str(value)


def form_fields(tmpl: TemplateInfo, posted: dict[str, str] | None = None) -> dict[str, list[Field]]:
    """Per kind, its fields in schema order, showing ``posted`` values over the defaults."""
    fields: dict[str, list[Field]] = {}
    for kind in KINDS:
        schema = tmpl.params_schema.get(kind) or {}
        required = set(schema.get("required", []))
        fixed = tmpl.params.get(kind, {})
        for key, raw in (schema.get("properties") or {}).items():
            prop = _resolve(raw, schema)
            widget = _widget(prop)
            name = f"{kind}.{key}"
            default = fixed.get(key, prop.get("default"))
            value = posted.get(name, "") if posted is not None else _shown(widget, default)
            options = tuple(str(o) for o in prop.get("enum", ()))
            fields.setdefault(kind, []).append(Field(name, prop.get("title") or key, widget, value,
                                                     prop.get("description", ""), options, key in required))
    return fields


def _convert(widget: str, raw: str) -> Any:
    """The posted text as the field's type; left as text when it does not convert."""
    try:
        if widget == "integer":
            return int(raw)
        if widget == "number":
            return float(raw)
        if widget == "json":
            return json.loads(raw)
    except ValueError:
        return raw
    return raw


def read_params(tmpl: TemplateInfo, form: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The params a posted form sets; an empty input keeps the template's default."""
    params: dict[str, dict[str, Any]] = {}
    for kind, fields in form_fields(tmpl).items():
        for field in fields:
            key = field.name.partition(".")[2]
            if field.widget == "checkbox":
                params.setdefault(kind, {})[key] = form.get(field.name) == "on"
            elif form.get(field.name, "") != "":
                params.setdefault(kind, {})[key] = _convert(field.widget, form[field.name])
    return params
