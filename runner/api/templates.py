"""How the API reads templates: through these functions only, from the catalog.

``Client.template`` / ``Client.templates`` read the templates the fleet publishes to the
store (``runner/catalog.py``), plus any this process imported (``--include``), so the API
needs no import of user code.
"""

from __future__ import annotations

from typing import Any

from runner.catalog import TemplateInfo
from runner.client import Client
from runner.params import validate_params

__all__ = ["template_view", "template_views", "check_params"]

# a kind that takes no params: an object with no fields
_NO_PARAMS = {"type": "object", "properties": {}, "additionalProperties": False}


def _view(info: TemplateInfo) -> dict[str, Any]:
    view = info.model_dump(mode="json")
    view["params_schema"] = {kind: schema or _NO_PARAMS for kind, schema in info.params_schema.items()}
    return view


def template_view(client: Client, ref: str) -> dict[str, Any]:
    """One template (``name@version``, ``name@1``, or a bare name for the newest) as JSON,
    with a JSON Schema of each kind's params. Raises TemplateNotFound."""
    return _view(client.template(ref))


def template_views(client: Client) -> list[dict[str, Any]]:
    """Every template the fleet published or the API imported, by name then version."""
    return [_view(info) for info in client.templates()]


def check_params(client: Client, ref: str, params: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``params`` validated against template ``ref`` (its published JSON Schemas, merged
    over its defaults), before anything is written. Raises InvalidParams or TemplateNotFound."""
    return validate_params(client.template(ref), params)
