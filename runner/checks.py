"""Checks before a job is queued: a job that cannot do what it says is refused at
submit, with the reason, and nothing is written or queued — rather than failing after
all the work (a missing source at partition time, a prefix destination at assemble
time) or, worse, completing without writing the destination it was given.

Also :func:`source_report`, what ``runner check-source URI`` prints: what a job would
read from a source.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from runner.errors import SourceError, TemplateNotFound
from runner.catalog import TemplateInfo
from runner.registry import KINDS, Function, Kind, Template, get_function
from runner.storage import Storages, safe_uri, scheme_of
from runner.storage.file import path_of

__all__ = ["check_job", "check_source", "check_destination", "param_warnings", "is_open_schema", "SourceReport",
           "source_report"]


def _function(tmpl: Template | TemplateInfo, kind: Kind) -> Function | None:
    """The template's function, or None when this process does not have its code (a
    client submitting by name to the fleet a template of user functions): then the
    fleet's checks are the only ones. Built-ins are always here."""
    try:
        return get_function(kind, getattr(tmpl, kind))
    except TemplateNotFound:
        return None


def check_job(storages: Storages, tmpl: Template | TemplateInfo, source: str, destination: str) -> None:
    """Refuse a job whose source or destination cannot work with ``tmpl`` (both checks below)."""
    check_source(storages, tmpl, storages.check(source))
    check_destination(storages, tmpl, storages.check(destination))


def check_source(storages: Storages, tmpl: Template | TemplateInfo, source: str, needed: bool = True) -> None:
    """Raise :class:`SourceError` naming the reason and the fix for a partitioner that
    reads a source given none (when the source is ``needed`` now, not later as a draft's
    may be), or a ``file://`` source that does not exist."""
    partitioner = _function(tmpl, "partitioner")
    if needed and scheme_of(source) == "bypass" and partitioner is not None and partitioner.needs_source:
        raise SourceError(f"template {tmpl.ref} reads a source (partitioner {partitioner.name!r}) and none was "
                          f"given; pass --source URI (file:///…, s3://bucket/key, https://…); nothing was queued")
    if scheme_of(source) == "file":
        storages.backend(source).list(source)  # raises SourceError naming a missing or unreadable file


def check_destination(storages: Storages, tmpl: Template | TemplateInfo, destination: str) -> None:
    """Raise :class:`SourceError` for a destination nothing can write: an http(s) URI
    (sources only), an existing directory named without its trailing ``/``, or any
    destination of an assembler that does not write one."""
    if scheme_of(destination) in ("http", "https"):
        raise SourceError(f"destination: http(s) URIs are sources only, {safe_uri(destination)} cannot be written; "
                          "write to file:///… or s3://bucket/key (or omit it); nothing was queued")
    _check_directory_destination(destination)
    assembler = _function(tmpl, "assembler")
    if scheme_of(destination) != "bypass" and assembler is not None and not assembler.writes:
        raise SourceError(f"template {tmpl.ref}'s assembler {assembler.name!r} does not write a destination, so "
                          f"{safe_uri(destination)} would stay empty; drop --destination and read the result with "
                          f"runner result JOB (or declare @assembler(..., writes='name')); nothing was queued")


def _check_directory_destination(destination: str) -> None:
    """A ``file://`` destination naming an existing directory without the trailing ``/``
    would fail at assemble (the output replaces a directory): say so now, with the
    prefix it meant."""
    if scheme_of(destination) != "file" or destination.endswith("/"):
        return
    if path_of(destination).is_dir():
        raise SourceError(f"destination {destination} is an existing directory; did you mean {destination}/ "
                          f"(a prefix: the output goes under it)? nothing was queued")


def is_open_schema(schema: dict[str, Any] | None) -> bool:
    """Whether a published params schema takes anything (an engine without
    ``schema.json``): Runner cannot check those params, only warn."""
    return bool(schema) and schema.get("additionalProperties") is True and not schema.get("properties")


def param_warnings(tmpl: Template | TemplateInfo, params: dict[str, Any] | None) -> list[str]:
    """Params Runner cannot check, said instead of passed over in silence: a key the
    template's defaults do not name, for a function that publishes no schema (an engine
    without ``schema.json``) — likely a typo, which the engine may ignore."""
    info = tmpl if isinstance(tmpl, TemplateInfo) else TemplateInfo.from_template(tmpl)
    warnings = []
    for kind, section in (params or {}).items():
        if kind not in KINDS or not isinstance(section, dict) or not is_open_schema(info.params_schema.get(kind)):
            continue
        known = info.params.get(kind, {})
        unknown = [key for key in section if key not in known]
        if unknown:
            listed = ", ".join(sorted(known)) or "none"
            warnings += [f"{kind}.{key}: not a param the template names ({kind} {getattr(info, kind)} has no "
                         f"schema.json, so it is passed on unchecked; the template's {kind} params: {listed})"
                         for key in unknown]
    return warnings


class SourceReport(BaseModel):
    """What a job would read from ``uri``."""

    uri: str
    objects: int
    bytes: int
    first: list[str]


def source_report(storages: Storages, uri: str, first: int = 10) -> SourceReport:
    """Object count, total bytes and the first ``first`` names under ``uri`` (one
    object, a directory or an S3 prefix). Raises :class:`SourceError` when it does not
    exist or cannot be read."""
    uri = storages.check(uri)
    if scheme_of(uri) == "bypass":
        return SourceReport(uri=uri, objects=0, bytes=0, first=[])
    backend = storages.backend(uri)
    names = backend.list(uri)
    total = sum(backend.size(name) for name in names)
    return SourceReport(uri=safe_uri(uri), objects=len(names), bytes=total, first=[safe_uri(n) for n in names[:first]])
