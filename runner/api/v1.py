"""Runner's own routes (``/v1``): jobs and templates, as the ``Client`` sees them.

Bodies take the ``Client``'s arguments; a job reads as ``runner status --json`` shows it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from runner.api.deps import OrgClient
from runner.api.templates import template_view, template_views

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["runner"])


@router.get("/templates")
def list_templates(client: OrgClient) -> list[dict[str, Any]]:
    """Every template, with a JSON Schema of each kind's params."""
    return template_views(client)


@router.get("/templates/{ref}")
def get_template(ref: str, client: OrgClient) -> dict[str, Any]:
    """One template (``name@version``, or ``name`` for the newest)."""
    return template_view(client, ref)


@router.get("/jobs/{job_id}")
def get_job(job_id: str, client: OrgClient) -> dict[str, Any]:
    """A job of the caller's org, as ``runner status --json`` shows it; 404 for any other."""
    return client.get(job_id).status().model_dump(mode="json")
