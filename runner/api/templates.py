"""How the API reads templates: through these two functions only.

Today they read ``runner.registry`` (the process imports the templates' modules via
``--include``); they are the one place to switch to the catalog the fleet publishes to
the store, so that the API needs no import of user code.
"""

from __future__ import annotations

from typing import Any

from runner.client import Client
from runner.params import validate_params
from runner.registry import KINDS, Template, get_template

__all__ = ["template_view", "template_views", "check_params"]


def _view(tmpl: Template) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for kind in KINDS:
        model = tmpl.function(kind).params
        schemas[kind] = model.model_json_schema() if model is not None else {"type": "object", "properties": {},
                                                                             "additionalProperties": False}
    return {
        "ref": tmpl.ref, "name": tmpl.name, "version": tmpl.version, "description": tmpl.description,
        "partitioner": tmpl.partitioner, "app": tmpl.app, "assembler": tmpl.assembler,
        "params_schema": schemas, "defaults": tmpl.params, "inputs": list(tmpl.inputs), "queue": tmpl.queue,
        "task_timeout": tmpl.task_timeout, "job_timeout": tmpl.job_timeout, "max_retries": tmpl.max_retries,
        "test_pieces": tmpl.test_pieces,
    }


def template_view(client: Client, ref: str) -> dict[str, Any]:
    """One template (``name@version``, or a bare name for the newest) as JSON, with a
    JSON Schema of each kind's params. Raises TemplateNotFound."""
    return _view(get_template(ref))


def template_views(client: Client) -> list[dict[str, Any]]:
    """Every template the API knows, by name then version."""
    return [_view(tmpl) for tmpl in client.templates()]


def check_params(client: Client, ref: str, params: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``params`` validated against template ``ref``'s param models (merged over its
    defaults), before anything is written. Raises InvalidParams or TemplateNotFound."""
    return validate_params(get_template(ref), params)
