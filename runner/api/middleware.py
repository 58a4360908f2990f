"""ASGI guards in front of every route: a request id, and the body-size limit.

Both are plain ASGI middleware (not ``BaseHTTPMiddleware``) so they cost little per
request and never buffer a streamed response such as server-sent events.

The size guard answers 413 from ``Content-Length`` alone, before reading any of the
body; for a body without a length (chunked) it counts while the app reads and stops at
the limit, so a client can never make the server hold more than the limit in memory.
"""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runner.api.problems import BodyTooLarge, Problem, render

__all__ = ["RequestId", "BodySizeLimit"]


class RequestId:
    """Give each request an id (``request.state.request_id``, ``X-Request-ID``) that
    error bodies quote, so a user's report finds the server log's traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"x-request-id" for name, _ in headers):
                    headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodySizeLimit:
    """413 for a body over ``max_bytes``, without reading the rest of it; an artifact
    upload (``PUT /v1/jobs/{id}/artifacts/{name}``, streamed to storage) has its own
    limit, ``artifact_max_bytes``, and so has a ByteNite file upload (``PUT`` under
    ``uploads[0]``, streamed to storage), ``uploads[1]``."""

    def __init__(self, app: ASGIApp, max_bytes: int, artifact_max_bytes: int | None = None,
                 uploads: tuple[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.artifact_max_bytes = artifact_max_bytes or max_bytes
        self.uploads = uploads

    def _limit(self, scope: Scope) -> tuple[int, str]:
        path = scope.get("path", "")
        if scope.get("method") == "PUT" and path.startswith("/v1/jobs/") and "/artifacts/" in path:
            return self.artifact_max_bytes, "RUNNER_ATTACH_MAX_ARTIFACT_BYTES"
        if self.uploads and scope.get("method") == "PUT" and path.startswith(self.uploads[0]):
            return self.uploads[1], "RUNNER_API_MAX_UPLOAD_BYTES"
        return self.max_bytes, "RUNNER_API_MAX_BODY_BYTES"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self._limit(scope)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            problem = Problem(413, "body_too_large",
                              f"request body of {length.decode(errors='replace')} bytes is over the limit of "
                              f"{limit} ({setting})", headers={"Connection": "close"})
            await render(Request(scope), problem)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(f"request body is over the limit of {limit} bytes ({setting})")
            return message

        await self.app(scope, counted, send)
