"""Published templates: what a fleet tells clients about the templates it runs.

Every worker writes each template it registered to the store at boot (``P:templates``,
ref -> :class:`TemplateInfo` JSON): the function names, the JSON Schema of each params
model, the defaults and options, and a content hash. A client that never imported the
module defining a template lists it, shows its params and submits by name, validating
params against the published schemas (:mod:`runner.schemas`).

Immutability across the fleet: the first worker to publish ``name@version`` fixes what it
means (an atomic ``HSETNX``); a worker whose definition hashes differently refuses to
start, naming the template and the differing part. The hash covers function names,
schemas, defaults and options — never file paths, which differ from host to host — and not
the code itself, which a hash of names cannot see: change behaviour, change the version.
The schemas are pydantic's, so the hosts of one fleet should run one pydantic version: a
different one may word a schema differently, and its workers refuse to start, naming the
``params schema`` that differs.

Entries never expire. A template is immutable, so an entry is never stale in meaning;
jobs keep naming their template for their whole retention (``retry_failed`` included); and
an entry that expired while a fleet still ran would let a different definition take over
the same ``name@version`` — exactly what immutability forbids. Each entry is a few KB.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from functools import lru_cache
from typing import Any

from packaging.version import Version
from pydantic import BaseModel, ConfigDict, PrivateAttr, TypeAdapter

from runner.errors import TemplateError, TemplateNotFound
from runner.registry import KINDS, NOT_FOUND_HINT, Kind, Template, pick_version, template_versions, templates
from runner.schemas import model_from_schema
from runner.store import StatusStore

__all__ = [
    "TemplateInfo", "schema_of", "publish", "published", "find_template", "all_templates", "param_fields", "KINDS",
]

# a model whose schema cannot be generated (arbitrary types): the client lets every field
# through and the worker's own model validates
_OPEN_SCHEMA = {"type": "object", "additionalProperties": True, "description": "no JSON Schema could be made"}


def schema_of(model: type[BaseModel] | None) -> dict[str, Any] | None:
    """The JSON Schema of a params model, with ``default_factory`` defaults written in (so
    a client without the model fills them in as the model would)."""
    if model is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a default that is not JSON is left out: the worker fills it
            schema = model.model_json_schema()
    except Exception:
        return dict(_OPEN_SCHEMA)
    for name, field in model.model_fields.items():
        prop = schema.get("properties", {}).get(field.alias or name)
        if prop is not None and field.default_factory is not None and "default" not in prop:
            try:
                prop["default"] = TypeAdapter(field.annotation).dump_python(
                    field.get_default(call_default_factory=True, validated_data={}), mode="json")
            except Exception:
                pass  # a factory that needs other fields, or a value that is not JSON
    return schema


class TemplateInfo(BaseModel):
    """A template as the fleet publishes it; reads like :class:`runner.registry.Template`."""

    model_config = ConfigDict(frozen=True)

    ref: str
    name: str
    version: str
    partitioner: str
    app: str
    assembler: str
    params_schema: dict[str, dict[str, Any] | None]
    defaults: dict[str, dict[str, Any]] = {}
    task_timeout: float | None = None
    job_timeout: float | None = None
    max_retries: int | None = None
    queue: str | None = None
    test_pieces: int = 3
    batch_size: int | None = None
    inputs: list[str] = []
    description: str = ""
    min_success_ratio: float | None = None
    max_failed_pieces: int | None = None
    hash: str = ""

    _local: Template | None = PrivateAttr(None)

    @classmethod
    def from_template(cls, template: Template) -> "TemplateInfo":
        """The published form of a template this process registered (keeps its models)."""
        cached = _from_template.get(template.ref)
        if cached is not None and cached[0] is template:  # templates are immutable
            return cached[1]
        data: dict[str, Any] = {
            "ref": template.ref, "name": template.name, "version": template.version,
            "partitioner": template.partitioner, "app": template.app, "assembler": template.assembler,
            "params_schema": {kind: schema_of(template.params_model(kind)) for kind in KINDS},
            "defaults": template.params, "task_timeout": template.task_timeout,
            "job_timeout": template.job_timeout, "max_retries": template.max_retries, "queue": template.queue,
            "test_pieces": template.test_pieces, "batch_size": template.batch_size,
            "inputs": list(template.inputs), "description": template.description,
            "min_success_ratio": template.min_success_ratio, "max_failed_pieces": template.max_failed_pieces,
        }
        info = cls.model_validate({**data, "hash": _digest(cls.model_validate(data).model_dump(mode="json"))})
        info._local = template
        _from_template[template.ref] = (template, info)
        return info

    @property
    def params(self) -> dict[str, dict[str, Any]]:
        """The template's default params per section (``Template.params``)."""
        return self.defaults

    @property
    def is_local(self) -> bool:
        """Whether this process imported the template's module (its real models validate)."""
        return self._local is not None

    def params_model(self, kind: Kind) -> type[BaseModel] | None:
        """The params model of one section: the real one when imported here, else rebuilt
        from the published schema."""
        if self._local is not None:
            return self._local.params_model(kind)
        schema = self.params_schema.get(kind)
        return None if schema is None else _rebuilt_model(kind, json.dumps(schema))  # field order is error order

    def differences(self, other: "TemplateInfo") -> list[str]:
        """The parts in which two definitions differ, in words (``app params schema``)."""
        parts = []
        for field in type(self).model_fields:
            if field in ("hash", "ref", "name", "version"):
                continue
            if field == "params_schema":
                parts += [f"{kind} params schema" for kind in KINDS
                          if self.params_schema.get(kind) != other.params_schema.get(kind)]
            elif getattr(self, field) != getattr(other, field):
                parts.append(field.replace("_", " "))
        return parts


_from_template: dict[str, tuple[Template, TemplateInfo]] = {}


@lru_cache(maxsize=512)
def _rebuilt_model(kind: str, schema: str) -> type[BaseModel]:
    """One rebuilt model per published schema (every submit of a template reuses it); a
    schema it cannot express lets every field through, for the worker's model to check."""
    try:
        return model_from_schema(json.loads(schema), f"{kind}_params")
    except Exception:
        return model_from_schema(_OPEN_SCHEMA, f"{kind}_params")


# Fields added after templates were first published: hashed only when set, so a template
# that does not use them keeps the hash its published entry has (a fleet upgrades in place).
_HASHED_WHEN_SET = ("min_success_ratio", "max_failed_pieces")


def _digest(data: dict[str, Any]) -> str:
    data = {key: value for key, value in data.items()
            if key != "hash" and not (key in _HASHED_WHEN_SET and value is None)}
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _conflict(info: TemplateInfo, existing: TemplateInfo, whose: str) -> TemplateError:
    differs = ", ".join(info.differences(existing)) or "hash"
    return TemplateError(
        f"template {info.ref}: {whose} definition differs from the one the fleet published "
        f"(differs in: {differs}); templates are immutable: give the changed definition a new version"
    )


def publish(store: StatusStore, infos: list[TemplateInfo]) -> None:
    """Publish templates; the same definition again is fine. Raises :class:`TemplateError`
    naming the template and the differing part when ``name@version`` means something else."""
    for info in infos:
        current = TemplateInfo.model_validate_json(store.fleet.publish_template(info.ref, info.model_dump_json()))
        if current.hash != info.hash:
            raise _conflict(info, current, "this worker's")


def published(store: StatusStore) -> dict[str, TemplateInfo]:
    """Every template the fleet published, by ref."""
    return {ref: TemplateInfo.model_validate_json(raw) for ref, raw in store.fleet.published_templates().items()}


def find_template(ref: str, store: StatusStore) -> TemplateInfo:
    """The template ``ref`` names (``name``, ``name@1``, ``name@1.2``, ``name@1.2.3``) among
    the published ones and those this process registered; a registered one keeps its
    pydantic models.

    Raises :class:`TemplateNotFound` listing the known refs with a hint, or
    :class:`TemplateError` when this process's definition differs from the published one.
    """
    name, _, tag = ref.partition("@")
    local = template_versions(name)
    exact = _published_exact.get((store.url, store.keys.prefix, ref))
    remote, version = ({tag: exact}, tag) if exact is not None else ({}, None)
    for recent in (True, False) if exact is None else ():  # one published a moment ago is looked for again
        remote = {r.partition("@")[2]: raw for r, raw in store.fleet.published_templates(recent).items()
                  if r.partition("@")[0] == name}
        version = pick_version(tag, {*local, *remote})
        if version is not None:
            break
    if version is None:
        known = ", ".join(info.ref for info in all_templates(store)) or "none"
        missing = f"unknown template {ref!r} (published or imported: {known})"
        raise TemplateNotFound(f"{missing}; {NOT_FOUND_HINT}").for_remote(
            f"{missing}; a worker publishes a template when it starts with the module that defines it")
    if version == tag and version in remote:  # an exact published ref means the same forever
        _published_exact[(store.url, store.keys.prefix, ref)] = remote[version]
    if version not in local:
        return _parsed(remote[version])
    info = TemplateInfo.from_template(local[version])
    if version in remote:
        fleet = _parsed(remote[version])
        if fleet.hash != info.hash:
            raise _conflict(info, fleet, "this process's")
    return info


# Published templates are immutable per ref (``publish`` refuses a different definition),
# so an exact ref once found is not read again: a schedule's firing or a submit naming
# ``name@1.2.3`` costs no round trip for it. A partial ref (``name@1``) may come to mean
# a newer version, so it is looked up each time (from a read at most RECENT_SECONDS old).
_published_exact: dict[tuple[str, str, str], str] = {}


@lru_cache(maxsize=512)
def _parsed(raw: str) -> TemplateInfo:
    """A published template's JSON, parsed once (a frozen model: safe to share)."""
    return TemplateInfo.model_validate_json(raw)


def all_templates(store: StatusStore) -> list[TemplateInfo]:
    """The published templates and those this process registered, by name then version."""
    found = published(store)
    found.update({t.ref: TemplateInfo.from_template(t) for t in templates()})
    return sorted(found.values(), key=lambda info: (info.name, Version(info.version)))


def param_fields(info: TemplateInfo, kind: Kind) -> list[tuple[str, str, str, str]]:
    """One section's fields as (name, type, default, description) rows; the default is the
    template's own when it sets one, ``required`` when there is none."""
    schema = info.params_schema.get(kind) or {}
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        if name in info.defaults.get(kind, {}):
            default = json.dumps(info.defaults[kind][name])
        else:
            default = json.dumps(prop["default"]) if "default" in prop else "required" if name in required else "-"
        rows.append((name, _type_name(prop, schema.get("$defs", {})), default, prop.get("description", "")))
    # the template's own defaults for fields no schema describes (an engine without schema.json)
    rows += [(name, "any", json.dumps(value), "template default; not checked (no schema)")
             for name, value in info.defaults.get(kind, {}).items() if name not in schema.get("properties", {})]
    return rows


_LIMITS = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<",
           "minLength": "len >=", "maxLength": "len <=", "minItems": "len >=", "maxItems": "len <="}


def _type_name(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    """A short readable type for a JSON Schema property: ``integer >= 1``, ``list[string]``,
    ``one of "red", "blue"`` (an enum, even behind a ``$ref``)."""
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return _type_name(defs[name], defs) if "enum" in defs.get(name, {}) else name
    if "enum" in prop:
        return "one of " + ", ".join(json.dumps(v) for v in prop["enum"])
    if "const" in prop:
        return json.dumps(prop["const"])
    if "anyOf" in prop:
        return " | ".join(_type_name(option, defs) for option in prop["anyOf"]).replace("null", "None")
    kind = prop.get("type", "any")
    if kind == "array":
        name = f"list[{_type_name(prop.get('items', {}), defs)}]"
    elif kind == "object" and isinstance(prop.get("additionalProperties"), dict):
        name = f"dict[string, {_type_name(prop['additionalProperties'], defs)}]"
    else:
        name = prop.get("format", kind)
    limits = [f"{sign} {prop[key]}" for key, sign in _LIMITS.items() if key in prop]
    return " ".join([name, *limits])
