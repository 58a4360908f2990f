"""Checks before a job is queued: a job that cannot do what it says is refused at
submit, with the reason, and nothing is written or queued — rather than failing after
all the work (a missing source at partition time, a prefix destination at assemble
time) or, worse, completing without writing the destination it was given.

Also :func:`source_report`, what ``runner check-source URI`` prints: what a job would
read from a source.
"""

from __future__ import annotations

from pydantic import BaseModel

from runner.errors import SourceError, TemplateNotFound
from runner.catalog import TemplateInfo
from runner.registry import Function, Kind, Template, get_function
from runner.storage import Storages, safe_uri, scheme_of

__all__ = ["check_job", "check_source", "check_destination", "SourceReport", "source_report"]


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
    (sources only), or any destination of an assembler that does not write one."""
    if scheme_of(destination) in ("http", "https"):
        raise SourceError(f"destination: http(s) URIs are sources only, {safe_uri(destination)} cannot be written; "
                          "write to file:///… or s3://bucket/key (or omit it); nothing was queued")
    assembler = _function(tmpl, "assembler")
    if scheme_of(destination) != "bypass" and assembler is not None and not assembler.writes:
        raise SourceError(f"template {tmpl.ref}'s assembler {assembler.name!r} does not write a destination, so "
                          f"{safe_uri(destination)} would stay empty; drop --destination and read the result with "
                          f"runner result JOB (or declare @assembler(..., writes='name')); nothing was queued")

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
