"""Pydantic models rebuilt from the JSON Schemas a fleet publishes, for clients that never
imported the module defining a template.

Why rebuild a pydantic model instead of validating with a JSON Schema validator: the
rebuilt model goes through the very same :func:`runner.params.validate_params` as the
original, so a client without the module gives the same messages (``app.lowercase: Input
should be a valid boolean, …``), the same lax coercion (``"false"`` -> ``False``, ``1`` ->
``1.0``) and the same merged, JSON-ready output, defaults filled in, as one that imported
it — the worker sees identical params either way. A separate validator would word errors
differently and refuse inputs the pydantic path accepts.

The conversion covers the dialect pydantic itself emits (``type``, ``format``, numeric and
length constraints, ``enum``/``const``, ``anyOf``, ``$ref``/``$defs``, ``items``,
``prefixItems``, ``additionalProperties``, ``default``). Anything else becomes ``Any``:
the client lets it through and the worker's own model still validates it. A field with
no default in the schema that is not required (``default_factory``) is left out of the
output unless given, so the worker's model fills it in as it would have.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model, model_serializer

__all__ = ["model_from_schema"]

_FORMATS: dict[str, Any] = {
    "date": datetime.date, "date-time": datetime.datetime, "time": datetime.time,
    "duration": datetime.timedelta, "uuid": uuid.UUID,
}
_SCALARS: dict[str, Any] = {"integer": int, "number": float, "boolean": bool, "null": type(None)}
_CONSTRAINTS = {
    "minimum": "ge", "maximum": "le", "exclusiveMinimum": "gt", "exclusiveMaximum": "lt", "multipleOf": "multiple_of",
    "minLength": "min_length", "maxLength": "max_length", "pattern": "pattern",
    "minItems": "min_length", "maxItems": "max_length",
}


class SchemaModel(BaseModel):
    """Base of rebuilt models: leaves out unset fields that had no default to publish."""

    unpublished_defaults: ClassVar[frozenset[str]] = frozenset()  # aliases of such fields

    @model_serializer(mode="wrap")
    def _leave_out_unknown_defaults(self, handler: Any) -> Any:
        data = handler(self)
        fields = type(self).model_fields
        for name in fields.keys() - self.model_fields_set:
            if (fields[name].alias or name) in self.unpublished_defaults:
                data.pop(fields[name].alias or name, None)
        return data


def model_from_schema(schema: dict[str, Any], name: str = "Params") -> type[BaseModel]:
    """A pydantic model that validates what ``schema`` (a model's JSON Schema) describes."""
    defs = schema.get("$defs", {})
    if "$ref" in schema and "properties" not in schema:  # a model that refers to itself
        schema = defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
    return _Builder(defs).model(schema, name)


class _Builder:
    def __init__(self, defs: dict[str, Any]) -> None:
        self.defs = defs
        self.built: dict[str, Any] = {}

    def model(self, schema: dict[str, Any], name: str) -> type[BaseModel]:
        properties: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", []))
        extra = schema.get("additionalProperties")
        config = ConfigDict(extra="forbid" if extra is False else "allow" if extra is not None else "ignore")
        fields: dict[str, Any] = {}
        unpublished = set()
        for index, (prop, sub) in enumerate(properties.items()):
            annotation = self.type_of(sub)
            if prop in required:
                default, validate = ..., False
            elif "default" in sub:  # JSON: validating it gives it the type the original default had
                default, validate = sub["default"], True
            else:
                default, validate = None, False
                unpublished.add(prop)
            # generated names, the schema's names as aliases: any property name is allowed
            fields[f"f{index}"] = (annotation, Field(default, alias=prop, description=sub.get("description"),
                                                     validate_default=validate))
        base = type("SchemaModel", (SchemaModel,), {"model_config": config})
        model = create_model(schema.get("title", name), __base__=base, **fields)  # type: ignore[call-overload]
        model.unpublished_defaults = frozenset(unpublished)
        return model

    def type_of(self, schema: dict[str, Any]) -> Any:
        if "$ref" in schema:
            return self.ref(schema["$ref"])
        if "const" in schema:
            return Literal[schema["const"]]
        if "enum" in schema:
            return Literal[tuple(schema["enum"])]
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return Union[tuple(self.type_of(option) for option in schema[key])]
        if len(schema.get("allOf", [])) == 1:
            return self.type_of(schema["allOf"][0])
        kind = schema.get("type")
        if isinstance(kind, list):
            return Union[tuple(self.type_of({**schema, "type": k}) for k in kind)]
        return self.constrained(self.plain(kind, schema), schema)

    def plain(self, kind: str | None, schema: dict[str, Any]) -> Any:
        if kind == "string":
            return _FORMATS.get(schema.get("format", ""), str)
        if kind in _SCALARS:
            return _SCALARS[kind]
        if kind == "array":
            if "prefixItems" in schema:
                return tuple[tuple(self.type_of(item) for item in schema["prefixItems"])]  # type: ignore[misc]
            return list[self.type_of(schema.get("items", {}))]  # type: ignore[misc]
        if kind == "object":
            if "properties" in schema:
                return self.model(schema, schema.get("title", "Object"))
            values = schema.get("additionalProperties", {})
            return dict[str, self.type_of(values if isinstance(values, dict) else {})]  # type: ignore[misc]
        return Any

    def constrained(self, annotation: Any, schema: dict[str, Any]) -> Any:
        if schema.get("type") == "array" and "prefixItems" in schema:
            return annotation  # a tuple's length is its type
        limits = {_CONSTRAINTS[key]: value for key, value in schema.items() if key in _CONSTRAINTS}
        return Annotated[annotation, Field(**limits)] if limits else annotation

    def ref(self, ref: str) -> Any:
        name = ref.rsplit("/", 1)[-1]
        if name not in self.built:
            self.built[name] = Any  # a model that refers to itself: the worker validates the depth
            target = self.defs.get(name, {})
            self.built[name] = (self.model(target, name) if "properties" in target else self.type_of(target))
        return self.built[name]
