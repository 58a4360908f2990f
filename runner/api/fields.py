"""Input checks every route family shares: each refuses with a 422 naming the field in
the caller's terms (``source``, ``dataSource.params.url``, ``role_bindings[0].input_id``),
before anything is written or queued."""

from __future__ import annotations

from runner.api.problems import ApiError, FieldError, Loc
from runner.catalog import TemplateInfo
from runner.client import Client
from runner.errors import SourceError, TemplateNotFound

__all__ = ["check_uris", "find_template"]


def check_uris(client: Client, fields: dict[Loc, str | None]) -> None:
    """Raise one 422 naming every URI the storages refuse (unknown scheme, outside the
    file roots, credentials in it); ``None`` values are skipped."""
    problems = []
    for loc, uri in fields.items():
        if uri is None:
            continue
        try:
            client.storages.check(uri)
        except SourceError as exc:
            problems.append(FieldError(loc, exc.public, "invalid_uri"))
    if problems:
        raise ApiError(422, "invalid_uri", "; ".join(f"{p.path}: {p.msg}" for p in problems), problems)


def find_template(client: Client, ref: str, loc: Loc = ("template",)) -> TemplateInfo:
    """The template ``ref`` (bare name: the newest), published by the fleet or imported
    here; a 422 naming ``loc`` if unknown."""
    try:
        return client.template(ref)
    except TemplateNotFound as exc:
        raise ApiError(422, "unknown_template", exc.public, [FieldError(loc, exc.public, "unknown_template")]) from None
