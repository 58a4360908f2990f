"""The templates pages: every published template with its versions, and one version's
params as a form that submits a job through the one admission path (``Client.submit``),
showing each field's error beside it when the submission is refused.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response

from runner.catalog import TemplateInfo
from runner.errors import InvalidParams, SourceError, TemplateNotFound
from runner.ui.forms import form_fields, read_params
from runner.ui.web import OrgViewer, Posted, UiError, Viewer, posted_viewer, render

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)
Ref = Annotated[str, Path(max_length=200, pattern=r"^[A-Za-z0-9_.@+-]{1,200}$")]
_JOB_FIELDS = ("name", "source", "destination")


@router.get("/templates")
def templates_page(request: Request, who: OrgViewer) -> Response:
    """Each template once, newest version first, with its older versions."""
    by_name: dict[str, list[TemplateInfo]] = defaultdict(list)
    for info in who.client.templates():
        by_name[info.name].append(info)
    rows = [{"name": name, "versions": list(reversed(infos))} for name, infos in sorted(by_name.items())]
    return render(request, "templates.html", {"rows": rows}, who=who)


def _template(who: Viewer, ref: str) -> TemplateInfo:
    try:
        return who.client.template(ref)
    except TemplateNotFound as exc:
        raise UiError(404, str(exc)) from None


def _form_page(request: Request, who: Viewer, tmpl: TemplateInfo, posted: dict[str, str] | None = None,
               errors: dict[str, list[str]] | None = None, status: int = 200) -> Response:
    versions = [info for info in who.client.templates() if info.name == tmpl.name]
    job = {name: (posted or {}).get(name, "bypass:" if name != "name" else "") for name in _JOB_FIELDS}
    inputs = {name: (posted or {}).get(f"inputs.{name}", "") for name in tmpl.inputs}
    return render(request, "template.html", {
        "tmpl": tmpl, "versions": list(reversed(versions)), "fields": form_fields(tmpl, posted),
        "job_fields": job, "inputs": inputs, "errors": errors or {}}, status=status, who=who)


@router.get("/templates/{ref}")
def template_page(ref: Ref, request: Request, who: OrgViewer) -> Response:
    """One template version: what it runs, its params form, its other versions."""
    return _form_page(request, who, _template(who, ref))


def _field_errors(exc: InvalidParams) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = defaultdict(list)
    for path, message in exc.errors:
        errors[path].append(message)
    return dict(errors)


def _submit(who: Viewer, tmpl: TemplateInfo, form: dict[str, str]) -> str:
    """Queue the job as the form describes it; returns its id. Raises InvalidParams (with
    field paths) or SourceError, before anything is written or queued."""
    inputs = {name: form[f"inputs.{name}"] for name in tmpl.inputs if form.get(f"inputs.{name}")}
    job = who.client.submit(tmpl.ref, params=read_params(tmpl, form), inputs=inputs or None,
                            name=form.get("name") or None, source=form.get("source") or "bypass:",
                            destination=form.get("destination") or "bypass:")
    return job.id


@router.post("/templates/{ref}")
def submit(ref: Ref, form: Posted, request: Request) -> Response:
    """Submit a job of this template; refused input re-shows the form with every error."""
    who = posted_viewer(request)
    tmpl = _template(who, ref)
    errors: dict[str, Any]
    try:
        job_id = _submit(who, tmpl, form)
    except InvalidParams as exc:
        errors = _field_errors(exc)
    except SourceError as exc:
        errors = {"source": [str(exc)]}
    else:
        return RedirectResponse(f"/ui/jobs/{job_id}", status_code=303)
    return _form_page(request, who, tmpl, form, errors, status=422)
