"""What a Prediction-API job runs: the source version a setup names, and its role bindings
as the job's named inputs.

A setup names its version by id (``job.source_version_id``, ``source_version.id``) or its
source by id or name (``job.source_id``, ``source.id`` / ``name``,
``source_version.source_id``) at ``source_version.version``, else the source's newest
version. Objects the API returned are accepted as they were read back. A setup may also
create its records on the fly, as the tutorial's ``source`` / ``source_version`` allow: a
new source by ``name`` and a version with its roles, stored once everything is checked
(the same rules as ``POST /sources`` and ``/source_versions``). A fleet template
can still be named straight (``with-model``, ``with-model@1.0.0``): it is a source with
one output role, ``result``. Every name given must agree, else a 422 naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.api.problems import public
from runner.api.prediction_models import RESULT_ROLE, RoleBinding, SetupBody, SourceVersionBody
from runner.api.prediction_sources import (
    Loc, api_error, find_source, records, save_source, save_version, source_record, version_record,
)
from runner.client import Client
from runner.errors import SourceError, TemplateNotFound

__all__ = ["Target", "NewRecords", "target_of", "target_for_setup", "create_records", "bind_inputs", "Bound"]


@dataclass(frozen=True)
class Target:
    """A source version as a job needs it."""

    template: str  # the Runner template, name@version
    inputs: list[str]  # its input roles: the template's named inputs
    source_id: str
    source_name: str
    version_id: str
    version: str
    output_roles: list[str] = field(default_factory=lambda: [RESULT_ROLE])
    retention_hours: float | None = None  # the source's
    interval: int | None = None  # the source's expectedintervalminutes
    from_template: bool = False  # a fleet template named straight, no records

    @property
    def record(self) -> dict[str, Any]:
        """What the job's record keeps of it (``source_ref``)."""
        return {"source_id": self.source_id, "source_version_id": self.version_id, "output_roles": self.output_roles}


def _of_template(client: Client, ref: str, loc: Loc) -> Target:
    try:
        info = client.template(ref)
    except TemplateNotFound as exc:
        raise api_error(422, "unknown_source", loc, f"{exc.public}; or create the source with POST /api/v1/sources") from None
    return Target(info.ref, list(info.inputs), info.name, info.name, info.ref, info.version, from_template=True)


def target_of(client: Client, version: dict[str, Any], source: dict[str, Any] | None = None) -> Target:
    """The target of a stored version record (and its source's hints)."""
    source = source or records(client).source(client.org, version["source_id"]) or {}
    return Target(version["template"], [role["role"] for role in version["input_roles"]], version["source_id"],
                  source.get("name", version["source_id"]), version["id"], version["version"],
                  [role["role"] for role in version["output_roles"]], source.get("retention_hours"),
                  source.get("expectedintervalminutes"))


def _by_version(client: Client, ref: str, loc: Loc) -> Target:
    found = records(client).version(client.org, ref)
    if found is not None:
        return target_of(client, found)
    if "@" in ref:
        return _of_template(client, ref, loc)
    raise api_error(422, "unknown_source", loc, f"no source version {ref!r} in this organisation: give an id "
                    "from POST /api/v1/source_versions (or a template name@version)")


def _by_source(client: Client, ref: str, version: str | None, loc: Loc) -> Target:
    source = find_source(client, ref)
    if source is None:
        return _of_template(client, f"{ref}@{version}" if version else ref, ("source_version", "version") if version
                            else loc)
    store = records(client)
    if version:
        version_id = store.version_ids(client.org, source["id"]).get(version)
        if version_id is None:
            known = ", ".join(row["version"] for row in store.versions(client.org, source["id"])) or "none"
            raise api_error(422, "unknown_version", ("source_version", "version"), f"source {source['name']!r} "
                            f"has no version {version!r} (it has: {known}); POST /api/v1/source_versions first")
        return target_of(client, store.version(client.org, version_id) or {}, source)
    versions = store.versions(client.org, source["id"])
    if not versions:
        raise api_error(422, "no_version", loc, f"source {source['name']!r} has no version yet; "
                        "create one with POST /api/v1/source_versions")
    return target_of(client, versions[-1], source)


@dataclass(frozen=True)
class NewRecords:
    """What a setup creates on the fly, after every check: a source (None: it exists) and a version."""

    source: dict[str, Any] | None
    version: dict[str, Any]


def _new_records(client: Client, body: SetupBody) -> NewRecords | None:
    """A setup creating its records on the fly: ``source_version`` with ``version`` and both
    role lists but no ``id``, of a source the org has (that lacks that version) or of a new
    ``source`` given by ``name`` alone. None when the setup names existing records."""
    src, ver, job = body.source, body.source_version, body.job
    if ver is None or ver.id or job.source_version_id or not ver.version or None in (ver.input_roles,
                                                                                     ver.output_roles):
        return None
    ref = job.source_id or (src and (src.id or src.name)) or ver.source_id
    source = find_source(client, ref) if ref else None
    new_source = None
    if source is None:
        if not (src and src.name and not src.id):
            return None  # the ordinary lookup names what is missing
        if "@" in src.name or "/" in src.name:
            raise api_error(422, "invalid_name", ("source", "name"), f"{src.name!r}: a source name has no '@' or '/'")
        new_source = source = source_record(src.model_dump(include={"name", "description", "expectedintervalminutes",
                                                                    "retention_hours"}))
    elif ver.version in records(client).version_ids(client.org, source["id"]):
        return None
    fields = ver.model_dump(include={"version", "description", "input_roles", "output_roles", "template"})
    version = version_record(client, SourceVersionBody(**fields, source_id=source["id"]), source, ("source_version",))
    return NewRecords(new_source, version)


def create_records(client: Client, new: NewRecords) -> Target:
    """Store a setup's new source and version (a racing identical one is taken as is)."""
    source = new.source
    if source is not None:
        source, _ = save_source(client, source, ("source",))
    version = {**new.version, "source_id": source["id"]} if source is not None else new.version
    stored, _ = save_version(client, version, ("source_version",))
    return target_of(client, stored, source)


def _named(client: Client, body: SetupBody, version_ids: list[tuple[Loc, str]],
           source_ids: list[tuple[Loc, str]]) -> Target:
    if version_ids:
        return _by_version(client, version_ids[0][1], version_ids[0][0])
    if source_ids:
        return _by_source(client, source_ids[0][1], body.source_version and body.source_version.version,
                          source_ids[0][0])
    raise api_error(422, "missing", ("job", "source_version_id"),
                    "field required: job.source_version_id, or job.source_id (newest version)")


def _check_agreement(target: Target, body: SetupBody, version_ids: list[tuple[Loc, str]],
                     source_ids: list[tuple[Loc, str]]) -> None:
    """Every id, name, version, template and role list the setup gives is the target's."""
    for loc, value in version_ids:
        if value != target.version_id:
            raise api_error(422, "conflict", loc, f"{value!r} disagrees with source version {target.version_id!r}")
    for loc, value in source_ids:
        if value not in (target.source_id, target.source_name):
            raise api_error(422, "conflict", loc, f"{value!r} disagrees with source {target.source_name!r}")
    src, ver = body.source, body.source_version
    if src is not None and not target.from_template:  # a template-named source's hours are the job's
        for name, value, actual in (("retention_hours", src.retention_hours, target.retention_hours),
                                    ("expectedintervalminutes", src.expectedintervalminutes, target.interval)):
            if value is not None and value != actual:
                raise api_error(422, "conflict", ("source", name), f"{value!r} disagrees with source "
                                f"{target.source_name!r}: {actual!r} (set the job's own in job.{name})")
    if ver is None:
        return
    given = {"version": ver.version, "template": ver.template,
             "input_roles": ver.input_roles and sorted(role.role for role in ver.input_roles),
             "output_roles": ver.output_roles and [role.role for role in ver.output_roles]}
    actual = {"version": target.version, "template": target.template, "input_roles": sorted(target.inputs),
              "output_roles": target.output_roles}
    for name, value in given.items():
        if value is not None and value != actual[name]:
            raise api_error(422, "conflict", ("source_version", name), f"{value!r} disagrees with version "
                            f"{target.version!r} of {target.source_name!r}: {actual[name]!r}")


def target_for_setup(client: Client, body: SetupBody) -> tuple[Target, NewRecords | None]:
    """The version a setup names, and the records it creates on the fly (stored by
    :func:`create_records` once the job's inputs are checked too); 422 naming the field for
    an unknown or disagreeing one."""
    src, ver, job = body.source, body.source_version, body.job
    version_ids = [(loc, value) for loc, value in ((("job", "source_version_id"), job.source_version_id),
                                                   (("source_version", "id"), ver and ver.id)) if value]
    source_ids = [(loc, value) for loc, value in (
        (("job", "source_id"), job.source_id), (("source", "id"), src and src.id),
        (("source", "name"), src and src.name), (("source_version", "source_id"), ver and ver.source_id)) if value]
    new = _new_records(client, body)
    target = target_of(client, new.version, new.source) if new else _named(client, body, version_ids, source_ids)
    _check_agreement(target, body, version_ids, source_ids)
    return target, new


@dataclass
class Bound:
    """Role bindings as a job keeps them: URIs by role, and what reads them back."""

    inputs: dict[str, str] = field(default_factory=dict)  # role -> URI (the job's named inputs)
    types: dict[str, str] = field(default_factory=dict)  # role -> input_type
    ids: dict[str, str] = field(default_factory=dict)  # role -> registered input id, when bound by id


def _uri(client: Client, input_id: str, loc: Loc, bound: Bound, role: str) -> str:
    """A URI, or (no scheme) the URI of the org's input registered under that id."""
    if ":" not in input_id:
        found = records(client).input(client.org, input_id)
        if found is None:
            raise api_error(422, "unknown_input", loc, f"no input {input_id!r} in this organisation: register it "
                            "with POST /api/v1/inputs {uri, kind}, or give a URI")
        bound.ids[role] = input_id
        if found.get("kind"):
            bound.types.setdefault(role, found["kind"])
        return found["uri"]
    try:
        return client.storages.check(input_id)
    except (SourceError, ValueError) as exc:  # urlparse raises ValueError ("http://[::1")
        raise api_error(422, "invalid_uri", loc, f"{input_id!r}: {public(exc)}") from None


def bind_inputs(client: Client, target: Target, bindings: list[RoleBinding], root: Loc, complete: bool) -> Bound:
    """Role bindings as the job's ``inputs``; 422 naming ``role_bindings[i].role`` /
    ``.input_id`` for an unknown or repeated role or a bad URI or id, or ``role_bindings``
    for an unbound role when ``complete`` (the job is to run)."""
    bound = Bound()
    for index, binding in enumerate(bindings):
        if binding.role not in target.inputs:
            raise api_error(422, "unknown_role", (*root, index, "role"), f"unknown role {binding.role!r}; source "
                            f"version {target.version_id} has input roles: {', '.join(target.inputs) or 'none'}")
        if binding.role in bound.inputs:
            raise api_error(422, "duplicate_role", (*root, index, "role"), f"role {binding.role!r} is bound twice")
        if binding.input_type:
            bound.types[binding.role] = binding.input_type
        bound.inputs[binding.role] = _uri(client, binding.input_id, (*root, index, "input_id"), bound, binding.role)
    missing = [role for role in target.inputs if role not in bound.inputs]
    if complete and missing:
        raise api_error(422, "missing_role", root, f"required input roles not bound: {', '.join(missing)}")
    return bound
