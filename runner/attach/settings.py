"""An attached job's settings: :class:`JobSettings`, and the command line overlaid on
the settings stored with the job.

Argv uses dot notation for nested settings (``--custom.custom_param 5``), in either
spelling — ``custom_param`` or ``custom-param`` — since the guides users bring write
underscores and Runner's other commands write dashes. A field typed ``dict``, ``list``,
a model or a dataclass takes JSON. A key the settings class does not know is dropped
with the warning ``Invalid config keys: …`` and the job goes on (the platform's
behaviour); a bad value is an :class:`~runner.errors.InvalidParams` naming the option.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import types
import typing
from typing import Any, Union

from pydantic import BaseModel, TypeAdapter, ValidationError

from runner.errors import InvalidParams

__all__ = ["JobSettings", "split_argv", "build_settings"]

log = logging.getLogger("runner.attach")

JOB_OPTIONS = ("job_id", "api_key")
_JSON_TYPES = (dict, list, tuple, set, frozenset)


class JobSettings(BaseModel):
    """Base of an attached job's settings: subclass it with your fields (which may be
    models, pydantic dataclasses or dataclasses, nested)."""

    def get_config(self) -> dict[str, Any]:
        """The settings as plain data (what ``output.json`` records)."""
        return self.model_dump()


def split_argv(argv: list[str]) -> tuple[dict[str, str], list[tuple[list[str], str]]]:
    """``--job_id``/``--api_key`` values, and every other ``--a.b value`` (or
    ``--a.b=value``) as its path (dashes read as underscores) and text. Tokens that are
    not ``--`` options (a notebook kernel's ``-f file``) are skipped."""
    options: dict[str, str] = {}
    settings: list[tuple[list[str], str]] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        index += 1
        if not token.startswith("--") or token == "--":
            continue
        name, eq, value = token[2:].partition("=")
        if not eq:
            if index < len(argv) and not argv[index].startswith("--"):
                value, index = argv[index], index + 1
            else:
                value = "true"  # a bare flag
        path = [part.replace("-", "_") for part in name.split(".")]
        if len(path) == 1 and path[0] in JOB_OPTIONS:
            options[path[0]] = value
        else:
            settings.append((path, value))
    return options, settings


def _unwrap(tp: Any) -> Any:
    """``X`` of ``Optional[X]`` / ``X | None`` / ``Annotated[X, …]``."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (Union, types.UnionType):
        args = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else tp
    return tp


def _fields(tp: Any) -> dict[str, Any] | None:
    """The fields of a model or dataclass type and their types; None for anything else."""
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return {name: field.annotation for name, field in tp.model_fields.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        try:
            hints = typing.get_type_hints(tp)
        except NameError:  # a string annotation naming a class local to a function
            hints = {f.name: f.type for f in dataclasses.fields(tp) if not isinstance(f.type, str)}
        return {field.name: hints.get(field.name, Any) for field in dataclasses.fields(tp)}
    return None


def _takes_json(tp: Any) -> bool:
    tp = _unwrap(tp)
    return (typing.get_origin(tp) or tp) in _JSON_TYPES or _fields(tp) is not None


def _prune(tp: Any, data: dict[str, Any], prefix: str, unknown: list[str]) -> dict[str, Any]:
    """``data`` without the keys ``tp`` does not know (noted in ``unknown``), nested."""
    fields = _fields(tp)
    if fields is None:
        return data
    kept = {}
    for key, value in data.items():
        if key not in fields:
            unknown.append(prefix + key)
        elif isinstance(value, dict) and _fields(fields[key]) is not None:
            kept[key] = _prune(fields[key], value, f"{prefix}{key}.", unknown)
        else:
            kept[key] = value
    return kept


def _overlay(tp: Any, data: dict[str, Any], path: list[str], text: str, unknown: list[str]) -> None:
    """Set ``path`` in ``data`` to ``text`` (JSON-decoded for structured fields)."""
    fields, target = _fields(tp), data
    for depth, part in enumerate(path):
        if fields is None or part not in fields:
            unknown.append(".".join(path))
            return
        if depth == len(path) - 1:
            target[part] = _decode(fields[part], text, path)
            return
        if not isinstance(target.get(part), dict):
            target[part] = {}
        target, fields = target[part], _fields(fields[part])


def _decode(tp: Any, text: str, path: list[str]) -> Any:
    if not _takes_json(tp):
        return text  # pydantic converts "5" to 5 for an int field, and so on
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidParams([(f"--{'.'.join(path)}", f"takes JSON ({exc.msg} at character {exc.pos}), "
                                                      f"got {text!r}")]) from None


def build_settings(model: Any, stored: dict[str, Any] | None, argv: list[tuple[list[str], str]]) -> Any:
    """An instance of ``model``: the job's ``stored`` settings, ``argv`` over them.
    Unknown keys are warned about and dropped; raises InvalidParams for bad values."""
    unknown: list[str] = []
    data = _prune(model, dict(stored or {}), "", unknown)
    for path, text in argv:
        _overlay(model, data, path, text, unknown)
    if unknown:
        log.warning("Invalid config keys: %s", ", ".join(unknown))
    try:
        return TypeAdapter(model).validate_python(data)
    except ValidationError as exc:
        raise InvalidParams([(".".join(map(str, e["loc"])), f"{e['msg']}, got {e.get('input')!r}")
                             for e in exc.errors()]) from None
