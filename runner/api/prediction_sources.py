"""Prediction-API sources, source versions and registered inputs (``/api/v1``): records of
the caller's org, kept by :class:`runner.store.source_records.SourceRecords`.

A *source* is a named model; a *source version* one immutable release of it, **bound to a
Runner template** — its ``template`` field, or by default the template named like the
source at that version — whose named inputs must be exactly its ``input_roles`` (422
naming the field otherwise). Posting an existing name or version with the same body
answers the stored one (200: retries are safe); a different body is a 409 naming the first
field that differs, since a version never changes. Another org's records are 404.

An *input* is a URI registered under an id (``POST /inputs {uri, kind}``); a role binding's
``input_id`` may name it instead of a URI.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from runner.api.deps import OrgClient
from runner.api.problems import ApiError, FieldError, public
from runner.api.prediction_models import (
    ERROR_RESPONSES, Input, InputBody, Source, SourceBody, SourceVersion, SourceVersionBody,
)
from runner.catalog import TemplateInfo
from runner.client import Client
from runner.errors import SourceError, TemplateNotFound
from runner.store.source_records import SourceRecords

__all__ = ["router", "records", "find_source", "api_error", "Loc", "source_record", "save_source", "version_record",
           "save_version"]

router = APIRouter(prefix="/api/v1", tags=["prediction"], responses=ERROR_RESPONSES)

Loc = tuple[str | int, ...]
RecordId = Annotated[str, Path(min_length=1, max_length=200)]
_EXISTED = {200: {"description": "it already existed with this body (nothing changed)"}}


def api_error(status: int, kind: str, loc: Loc, msg: str) -> ApiError:
    """An error in this family's shape, naming the field at ``loc``."""
    return ApiError(status, kind, msg, [FieldError(loc, msg, kind)])


def records(client: Client) -> SourceRecords:
    """The Prediction records of the client's store (every read and write goes through it)."""
    return client.store.sources


def new_id() -> str:
    return str(uuid.uuid4())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def find_source(client: Client, ref: str) -> dict[str, Any] | None:
    """The org's source with id ``ref``, else the one named ``ref``, else None."""
    store = records(client)
    return store.source(client.org, ref) or store.source_named(client.org, ref)


def _source_view(client: Client, record: dict[str, Any]) -> Source:
    versions = records(client).versions(client.org, record["id"])
    return Source(**record, versions=[version["version"] for version in versions])


def _first_difference(stored: dict[str, Any], wanted: dict[str, Any], fields: tuple[str, ...]) -> str | None:
    return next((name for name in fields if stored.get(name) != wanted.get(name)), None)


# -- sources --------------------------------------------------------------------------

def source_record(body: SourceBody | dict[str, Any]) -> dict[str, Any]:
    """A new source record of ``body`` (not stored yet)."""
    fields = body.model_dump() if isinstance(body, SourceBody) else body
    return {"id": new_id(), **fields, "created_at": _now()}


def save_source(client: Client, wanted: dict[str, Any], root: Loc = ()) -> tuple[dict[str, Any], bool]:
    """Store ``wanted`` unless its name is taken: ``(stored, created)``; 409 naming the
    field when a source of that name differs."""
    return _save(records(client).add_source(client.org, wanted), wanted, root,
                 ("description", "expectedintervalminutes", "retention_hours"),
                 lambda field, stored: f"source {wanted['name']!r} exists with {field} {stored.get(field)!r}, not "
                                       f"{wanted.get(field)!r}; sources keep their name")


def _save(stored: dict[str, Any], wanted: dict[str, Any], root: Loc, fields: tuple[str, ...],
          conflict: Callable[[str, dict[str, Any]], str]) -> tuple[dict[str, Any], bool]:
    """What a claim-by-name store call answered, as ``(stored, created)``: a record stored
    before with another value of one of ``fields`` is a 409 naming it (``conflict`` says why)."""
    if stored["id"] == wanted["id"]:
        return stored, True
    field = _first_difference(stored, wanted, fields)
    if field is not None:
        raise api_error(409, "conflict", (*root, field), conflict(field, stored))
    return stored, False


@router.post("/sources", status_code=201, response_model=Source, responses=_EXISTED)
def post_source(body: SourceBody, client: OrgClient, response: Response) -> Source:
    """Register a source (a model) under a name unique in the org; the same body again
    answers the stored source (200), a different one is a 409 naming the field."""
    stored, created = save_source(client, source_record(body))
    response.status_code = 201 if created else 200
    return _source_view(client, stored)


@router.get("/sources", response_model=list[Source])
def list_sources(client: OrgClient) -> list[Source]:
    """The org's sources, oldest first."""
    return [_source_view(client, record) for record in records(client).sources(client.org)]


@router.get("/sources/{source_id}", response_model=Source)
def get_source(source_id: RecordId, client: OrgClient) -> Source:
    """One source, by id or name."""
    record = find_source(client, source_id)
    if record is None:
        raise api_error(404, "not_found", ("source_id",), f"no source {source_id!r} in this organisation")
    return _source_view(client, record)


# -- source versions ------------------------------------------------------------------

def _bound_template(client: Client, body: SourceVersionBody, source: dict[str, Any], root: Loc) -> TemplateInfo:
    """The template the version runs: ``template`` if given, else ``<source name>@<version>``."""
    loc: Loc = (*root, "template") if body.template else (*root, "version")
    ref = body.template or f"{source['name']}@{body.version}"
    try:
        return client.template(ref)
    except TemplateNotFound as exc:
        hint = "" if body.template else "; name the template to run in 'template' (runner templates lists them)"
        raise api_error(422, "unknown_template", loc, f"{exc.public}{hint}") from None


def _check_roles(info: TemplateInfo, body: SourceVersionBody, root: Loc) -> None:
    """Input roles are exactly the template's named inputs (each required); roles unique."""
    for field in ("input_roles", "output_roles"):
        names = [role.role for role in getattr(body, field)]
        repeated = next((i for i, name in enumerate(names) if name in names[:i]), None)
        if repeated is not None:
            raise api_error(422, "duplicate_role", (*root, field, repeated, "role"),
                            f"role {names[repeated]!r} is named twice")
    if not body.output_roles:
        raise api_error(422, "missing", (*root, "output_roles"), "give at least one output role (e.g. 'prediction')")
    names = [role.role for role in body.input_roles]
    if sorted(names) != sorted(info.inputs):
        raise api_error(422, "roles_differ", (*root, "input_roles"), f"input_roles {names} differ from the named "
                        f"inputs of template {info.ref}: {list(info.inputs)}")
    for index, role in enumerate(body.input_roles):
        if not role.required:
            raise api_error(422, "required", (*root, "input_roles", index, "required"),
                            f"role {role.role!r}: every named input of template {info.ref} is required")


def version_record(client: Client, body: SourceVersionBody, source: dict[str, Any], root: Loc = ()) -> dict[str, Any]:
    """A new version record of ``source`` (not stored yet), its template and roles checked:
    422 naming ``root`` + the field."""
    info = _bound_template(client, body, source, root)
    _check_roles(info, body, root)
    return {"id": new_id(), **body.model_dump(mode="json"), "source_id": source["id"], "template": info.ref,
            "created_at": _now()}


def save_version(client: Client, wanted: dict[str, Any], root: Loc = ()) -> tuple[dict[str, Any], bool]:
    """Store ``wanted`` unless its version exists: ``(stored, created)``; 409 naming the
    field when the stored one differs (versions never change)."""
    return _save(records(client).add_version(client.org, wanted), wanted, root,
                 ("description", "input_roles", "output_roles", "template"),
                 lambda field, _: f"version {wanted['version']!r} of this source exists with another {field}; "
                                  "versions never change: post a new version")


@router.post("/source_versions", status_code=201, response_model=SourceVersion, responses=_EXISTED)
def post_source_version(body: SourceVersionBody, client: OrgClient, response: Response) -> SourceVersion:
    """Register an immutable version of a source, bound to a template; the same body again
    answers the stored version (200), a different one is a 409 naming the field."""
    source = find_source(client, body.source_id)
    if source is None:
        raise api_error(422, "unknown_source", ("source_id",), f"no source {body.source_id!r} in this "
                        "organisation; create it first with POST /api/v1/sources")
    stored, created = save_version(client, version_record(client, body, source))
    response.status_code = 201 if created else 200
    return SourceVersion(**stored)


@router.get("/source_versions", response_model=list[SourceVersion])
def list_source_versions(
    client: OrgClient, source_id: Annotated[str | None, Query(max_length=200)] = None,
) -> list[SourceVersion]:
    """The org's source versions (of one source, by id or name), oldest first."""
    if source_id is None:
        return [SourceVersion(**row) for row in records(client).versions(client.org)]
    source = find_source(client, source_id)
    if source is None:
        raise api_error(404, "not_found", ("source_id",), f"no source {source_id!r} in this organisation")
    return [SourceVersion(**row) for row in records(client).versions(client.org, source["id"])]


@router.get("/source_versions/{version_id}", response_model=SourceVersion)
def get_source_version(version_id: RecordId, client: OrgClient) -> SourceVersion:
    record = records(client).version(client.org, version_id)
    if record is None:
        raise api_error(404, "not_found", ("version_id",), f"no source version {version_id!r} in this organisation")
    return SourceVersion(**record)


# -- inputs ---------------------------------------------------------------------------

@router.post("/inputs", status_code=201, response_model=Input)
def post_input(body: InputBody, client: OrgClient) -> Input:
    """Register an input (a URI Runner can read) under a new id for role bindings."""
    try:
        uri = client.storages.check(body.uri)
    except (SourceError, ValueError) as exc:  # urlparse raises ValueError ("http://[::1")
        raise api_error(422, "invalid_uri", ("uri",), f"{body.uri!r}: {public(exc)}") from None
    if uri == "bypass:":
        raise api_error(422, "invalid_uri", ("uri",), "give the URI of the input (file://, s3://, https://)")
    record = {"id": new_id(), **body.model_dump(), "uri": uri, "created_at": _now()}
    records(client).add_input(client.org, record)
    return Input(**record)


@router.get("/inputs", response_model=list[Input])
def list_inputs(client: OrgClient) -> list[Input]:
    return [Input(**row) for row in records(client).inputs(client.org)]


@router.get("/inputs/{input_id}", response_model=Input)
def get_input(input_id: RecordId, client: OrgClient) -> Input:
    record = records(client).input(client.org, input_id)
    if record is None:
        raise api_error(404, "not_found", ("input_id",), f"no input {input_id!r} in this organisation")
    return Input(**record)
