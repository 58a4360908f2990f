"""Hostile or malformed input is refused before anything is written: every value a user
hands ``Client`` (and so the CLI and the HTTP API) is checked for type, size and
characters here, and a bad one raises :class:`InvalidParams` or :class:`SourceError`
naming the field — never a bare ``TypeError`` or ``ValueError`` from deep inside, and
never a half-written job.

What the template thinks of a value (param models, declared inputs, whether a source is
needed) is checked elsewhere (``params.py``, ``checks.py``); this module only makes sure
the value is something those checks can look at.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from urllib.parse import unquote
from typing import Any

from runner.errors import InvalidParams, SourceError
from runner.storage import Storages

__all__ = ["uri", "inputs", "name", "identifier", "ref", "params", "retention", "priority", "PRIORITIES"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAME = re.compile(r"[A-Za-z0-9._@-]{1,200}")
MAX_RETENTION_HOURS = 24 * 366
PRIORITIES = {"low": 2, "normal": 5, "high": 8}  # a job's priority by name; higher runs first
DEFAULT_PRIORITY = PRIORITIES["normal"]


def _bad(field: str, message: str) -> InvalidParams:
    return InvalidParams([(field, message)])


def uri(storages: Storages, field: str, value: Any) -> str:
    """``value`` as a checked URI (``bypass:`` for none): a string, without control
    characters, acceptable to the storage backends (scheme, roots, no credentials)."""
    if value is None:
        return "bypass:"
    if not isinstance(value, str):
        raise _bad(field, f"must be a URI string such as file:///data/in.txt, got {type(value).__name__}")
    if found := _CONTROL.search(value) or _CONTROL.search(unquote(value)):
        raise _bad(field, f"contains the control character {found.group()!r} (maybe %-encoded); URIs are "
                          "printable text")
    if value.startswith("/"):  # a bare absolute path: the URI it meant is certain
        raise SourceError(f"{field}: {value!r} is a path, not a URI; did you mean {Path(value).as_uri()}"
                          f"{'/' if value.endswith('/') else ''}?")
    try:
        return storages.check(value)
    except SourceError as exc:
        raise SourceError(f"{field}: {exc}").for_remote(f"{field}: {exc.public}") from None


def inputs(storages: Storages, value: Any, limit: int) -> dict[str, str]:
    """A job's named inputs: at most ``limit`` names of ``[A-Za-z0-9._@-]``, each a URI."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad("inputs", f"must be an object of name: URI, got {type(value).__name__}")
    if len(value) > limit:
        raise _bad("inputs", f"{len(value)} inputs, more than RUNNER_MAX_INPUTS={limit}")
    return {identifier("inputs", key): uri(storages, f"inputs.{key}", item) for key, item in value.items()}


def identifier(field: str, value: Any) -> str | None:
    """A template ref or input name: 1–200 of ``[A-Za-z0-9._@-]`` (they travel in URLs,
    Redis keys, environment variables and Flower's argument column)."""
    if value is None:
        return None
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        shown = value if isinstance(value, str) else type(value).__name__
        raise _bad(field, f"{shown[:60]!r} must be 1-200 letters, digits or . _ @ -")
    return value


def name(field: str, value: Any) -> str | None:
    """A job's display name: 1–200 printable characters (spaces allowed: hosted platforms'
    clients send names such as "Nightly report"), no control characters."""
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 200 or _CONTROL.search(value):
        shown = value if isinstance(value, str) else type(value).__name__
        raise _bad(field, f"{shown[:60]!r} must be 1-200 printable characters")
    return value


def ref(value: Any) -> str:
    """A template reference (``name``, ``name@1``, ``name@1.2.3``)."""
    checked = identifier("template", value)
    if checked is None:
        raise _bad("template", "required, e.g. wordcount@1.0.0")
    return checked


def params(value: Any, limit: int) -> dict[str, Any]:
    """Params as sent: an object of sections, plain JSON (no NaN), at most ``limit`` bytes."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad("params", f"must be an object with sections partitioner, app, assembler; got {type(value).__name__}")
    try:
        size = len(json.dumps(value, allow_nan=False, separators=(",", ":")).encode())
    except (TypeError, ValueError) as exc:
        raise _bad("params", f"must be plain JSON values: {exc}") from None
    except RecursionError:
        raise _bad("params", "nested too deeply") from None
    if size > limit:
        raise _bad("params", f"{size} bytes, over RUNNER_MAX_PARAMS_BYTES={limit}; pass big data as an input URI")
    return value


def retention(value: Any) -> float | None:
    """Hours a finished job is kept: a finite number in (0, one year]."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 < value <= MAX_RETENTION_HOURS:
        raise _bad("retention_hours", f"must be a number of hours in (0, {MAX_RETENTION_HOURS}], got {value!r}")
    return float(value)


def priority(value: Any) -> int:
    """A job's priority: 0-9 (higher first) or ``low``/``normal``/``high`` (2/5/8);
    ``normal`` when not given. A digit string is taken too (the command line's ``7``)."""
    if value is None:
        return DEFAULT_PRIORITY
    if isinstance(value, str) and value.strip().lower() in PRIORITIES:
        return PRIORITIES[value.strip().lower()]
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9:
        return value
    shown = value if isinstance(value, (str, int, float)) and not isinstance(value, bool) else type(value).__name__
    raise _bad("priority", f"must be 0-9 (higher runs first) or low, normal, high (2, 5, 8), got {str(shown)[:60]!r}")
