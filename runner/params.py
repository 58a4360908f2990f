"""Validate a job's params against the template's three param models, all at once.

Users fix params faster when they see every problem in one message, so validation
never stops at the first bad section; each error is a path such as ``app.lowercase``.
Unknown fields are errors too: a typo in a field name otherwise silently runs a job with
the default value; the error suggests the closest real field (``did you mean min_length?``).

The template is a registered :class:`~runner.registry.Template` or a published
:class:`~runner.catalog.TemplateInfo`; both give each section's model through
``params_model(kind)`` — for a template this process never imported, a model rebuilt from
the published JSON Schema (:mod:`runner.schemas`), so errors and output are the same.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from runner.errors import InvalidParams
from runner.registry import KINDS, Template

if TYPE_CHECKING:
    from runner.catalog import TemplateInfo

__all__ = ["validate_params", "parse_section", "piece_kind"]


def _section_errors(kind: str, model: type[BaseModel] | None, data: Any) -> list[tuple[str, str]]:
    if not isinstance(data, dict):
        return [(kind, f"must be an object of fields, got {type(data).__name__}")]
    if model is None:
        return [(f"{kind}.{key}", "unexpected field: this function takes no params") for key in data]
    errors: list[tuple[str, str]] = []
    if model.model_config.get("extra") != "allow":
        by_name = model.model_config.get("populate_by_name") or model.model_config.get("validate_by_name")
        known = {f.alias if f.alias and not by_name else name for name, f in model.model_fields.items()}
        known |= {f.alias for f in model.model_fields.values() if f.alias}
        errors += [(f"{kind}.{key}", _unexpected(key, known)) for key in data if key not in known]
    try:
        model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            if error["type"] == "extra_forbidden":
                continue  # already reported above, once
            path = ".".join(str(part) for part in (kind, *error["loc"]))
            errors.append((path, error["msg"].replace("Field required", "field required")))
    return errors


def _unexpected(key: str, known: set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    return f"unexpected field; did you mean {close[0]}?" if close else "unexpected field"


def validate_params(template: Template | TemplateInfo, params: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The job's params merged over the template's defaults, validated and JSON-ready.

    Raises :class:`InvalidParams` listing every bad field as ``section.field: message``.
    """
    params = params or {}
    errors: list[tuple[str, str]] = []
    if not isinstance(params, dict):
        raise InvalidParams([("params", f"must be an object with sections {', '.join(KINDS)}")])
    errors += [(str(key), f"unknown section; expected one of {', '.join(KINDS)}") for key in params if key not in KINDS]
    merged: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        section = params.get(kind, {})
        data = {**template.params.get(kind, {}), **section} if isinstance(section, dict) else section
        model = template.params_model(kind)
        section_errors = _section_errors(kind, model, data)
        errors += section_errors
        if not section_errors:
            merged[kind] = model.model_validate(data).model_dump(mode="json", by_alias=True) if model else {}
    if errors:
        raise InvalidParams(errors)
    return merged


def parse_section(model: type[BaseModel] | None, data: dict[str, Any]) -> BaseModel | None:
    """The typed params a function sees as ``ctx.params`` (``None`` when it takes none)."""
    return model.model_validate(data) if model is not None else None


def piece_kind(template_ref: str, app_params: dict[str, Any] | None) -> str:
    """What the time of one of a job's pieces is known by: the template and a digest of the
    app's params in their stored form (validated, defaults filled). Workers note piece times
    under it (``workers/batching.py``) and the backlog metric reads them back from a job's
    record (``runner/backlog.py``), so both compute it here. The partitioner's params are
    left out (a new ``count`` would make every new size look unknown), and so are the
    assembler's."""
    encoded = json.dumps(app_params or {}, sort_keys=True)
    return f"{template_ref}#{hashlib.sha1(encoded.encode()).hexdigest()[:12]}"
