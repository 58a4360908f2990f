"""Errors of the HTTP API, each rendered in its route family's own shape.

A handler raises :class:`ApiError` (or lets a Runner error through); one set of exception
handlers turns it into a :class:`Problem` and renders that by the request's path prefix:

- Runner (``/v1``): ``{ok: false, message, error: {code, message, description, fields,
  request_id}}`` — ByteNite's shape plus the field list, so ``/v1/auth`` suits both;
- ByteNite (``/v1/customer``): ``{ok: false, message, error: {code, message, description}}``;
- Prediction (``/api/v1``): FastAPI's ``{detail: [{loc, msg, type}]}``.

Client input never yields a 5xx; anything unexpected is a 500 carrying a request id (and
logged with its traceback server-side, never sent).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.status import HTTP_500_INTERNAL_SERVER_ERROR

from runner.api.keys import RateLimited, Unauthorized
from runner.errors import (
    IllegalTransition, InvalidParams, JobNotFound, QuotaExceeded, RunnerError, SourceError, TemplateNotFound,
)

__all__ = ["ApiError", "FieldError", "Problem", "BodyTooLarge", "family", "render", "install_error_handlers",
           "field_errors", "request_id", "public"]

log = logging.getLogger("runner.api")

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class FieldError:
    """One bad field: where (``("params", "partitioner", "n")``), what, and a type code."""

    loc: Loc
    msg: str
    type: str = "value_error"

    @property
    def path(self) -> str:
        """``partitioner.n``, ``role_bindings[0].role``: the dotted name users see."""
        out = ""
        for part in self.loc:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        return out


@dataclass
class Problem:
    status: int
    code: str
    message: str
    fields: list[FieldError] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # more members of Runner's ``error`` object


class ApiError(RunnerError):
    """Raised by route handlers: rendered as ``status`` in the family's error shape."""

    def __init__(self, status: int, code: str, message: str, fields: Sequence[FieldError] = (),
                 headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.problem = Problem(status, code, message, list(fields), dict(headers or {}), dict(extra or {}))


class BodyTooLarge(RunnerError):
    """A request body longer than ``RUNNER_API_MAX_BODY_BYTES`` (HTTP 413)."""


def family(path: str) -> str:
    """Which route family a path belongs to: ``runner``, ``bytenite`` or ``prediction``."""
    if path.startswith("/v1/customer"):
        return "bytenite"
    if path.startswith("/api/"):
        return "prediction"
    return "runner"


def public(exc: BaseException) -> str:
    """The message a remote caller sees: a Runner error's :attr:`~runner.errors.RunnerError.public`
    words (no server paths, no command-line advice), else the exception's own."""
    return exc.public if isinstance(exc, RunnerError) else str(exc)


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


def _runner_shape(problem: Problem, rid: str) -> dict[str, Any]:
    description = "; ".join(f"{f.path}: {f.msg}" for f in problem.fields) or problem.message
    return {"ok": False, "message": problem.message,
            "error": {"code": problem.code, "message": problem.message, "description": description,
                      "fields": [{"field": f.path, "message": f.msg, "type": f.type} for f in problem.fields],
                      "request_id": rid, **problem.extra}}


def _bytenite_shape(problem: Problem, rid: str) -> dict[str, Any]:
    description = "; ".join(f"{f.path}: {f.msg}" for f in problem.fields) or problem.message
    # ByteNite's ``error.code`` is an integer (the HTTP status); their typed clients parse it as one
    return {"ok": False, "message": problem.message,
            "error": {"code": problem.status, "message": problem.message, "description": description}}


def _prediction_shape(problem: Problem, rid: str) -> dict[str, Any]:
    if problem.fields:
        return {"detail": [{"loc": list(f.loc), "msg": f.msg, "type": f.type} for f in problem.fields]}
    return {"detail": [{"loc": [], "msg": problem.message, "type": problem.code}]}


SHAPES: dict[str, Callable[[Problem, str], dict[str, Any]]] = {
    "runner": _runner_shape, "bytenite": _bytenite_shape, "prediction": _prediction_shape,
}


def render(request: Request, problem: Problem) -> JSONResponse:
    """``problem`` as a JSON response in the shape of the request's route family."""
    rid = request_id(request)
    body = SHAPES[family(request.url.path)](problem, rid)
    return JSONResponse(body, status_code=problem.status, headers={**problem.headers, "X-Request-ID": rid})


def field_errors(errors: Sequence[dict[str, Any]], drop: tuple[str, ...] = ("body",)) -> list[FieldError]:
    """Pydantic / FastAPI validation errors as field errors (``body.`` taken off)."""
    out = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if loc and loc[0] in drop:
            loc = loc[1:]
        msg = str(error.get("msg", "invalid")).replace("Field required", "field required")
        out.append(FieldError(loc or ("body",), msg, str(error.get("type", "value_error"))))
    return out


def params_errors(exc: InvalidParams, root: Loc = ()) -> list[FieldError]:
    """InvalidParams' ``(path, message)`` pairs as field errors under ``root``."""
    return [FieldError((*root, *path.split(".")), message, "invalid_params") for path, message in exc.errors]


def to_problem(exc: Exception) -> Problem | None:
    """The HTTP meaning of an exception that reached the app's edge (None: a server fault)."""
    if isinstance(exc, ApiError):
        return exc.problem
    if isinstance(exc, RequestValidationError):
        fields = field_errors(exc.errors())
        return Problem(422, "invalid_request", "invalid request: " + "; ".join(f"{f.path}: {f.msg}" for f in fields),
                       fields)
    if isinstance(exc, StarletteHTTPException) and isinstance(exc.__cause__, BodyTooLarge):
        exc = exc.__cause__  # FastAPI wraps errors raised while it reads the body in a 400
    if isinstance(exc, StarletteHTTPException):
        return Problem(exc.status_code, f"http_{exc.status_code}", str(exc.detail), headers=dict(exc.headers or {}))
    if isinstance(exc, Unauthorized):
        return Problem(401, "unauthorized", str(exc), headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, RateLimited):
        return Problem(429, "rate_limited", str(exc), headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, QuotaExceeded):  # the org's quota (runner orgs), not the key's rate: its own code
        return Problem(429, "quota_exceeded", public(exc), headers={"Retry-After": str(exc.retry_after)},
                       extra={"quota": exc.quota})
    if isinstance(exc, BodyTooLarge):
        return Problem(413, "body_too_large", str(exc))
    if isinstance(exc, InvalidParams):
        return Problem(422, "invalid_params", str(exc), params_errors(exc))
    if isinstance(exc, (JobNotFound, TemplateNotFound)):
        return Problem(404, "not_found", public(exc))
    if isinstance(exc, IllegalTransition):
        return Problem(409, "conflict", str(exc), extra={"state": exc.state} if exc.state else {})
    if isinstance(exc, SourceError):
        return Problem(422, "invalid_uri", public(exc))
    return None


def _internal(request: Request) -> Problem:
    rid = request_id(request)
    return Problem(HTTP_500_INTERNAL_SERVER_ERROR, "internal_error",
                   f"internal error (request id {rid}); the server log has the details")


def install_error_handlers(app: FastAPI) -> None:
    """Route every error through :func:`to_problem` and :func:`render`."""

    async def known(request: Request, exc: Exception) -> JSONResponse:
        problem = to_problem(exc)
        if problem is None:  # a RunnerError no client input should cause (config, cluster…)
            log.error("request %s %s failed (request id %s): %r", request.method, request.url.path,
                      request_id(request), exc, exc_info=exc)
            problem = _internal(request)
        return render(request, problem)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # ServerErrorMiddleware re-raises afterwards, so uvicorn logs the traceback too
        return render(request, _internal(request))

    for kind in (RunnerError, RequestValidationError, StarletteHTTPException):
        app.add_exception_handler(kind, known)
    app.add_exception_handler(Exception, unexpected)
