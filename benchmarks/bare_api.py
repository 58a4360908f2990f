"""The baseline of ``bench_api.py``: bare FastAPI routes with no Redis, auth or guards,
served by the same uvicorn settings as ``runner api``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

__all__ = ["create_app"]


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/bare/{item}")
    def read(item: str) -> dict[str, Any]:
        return {"id": item, "state": "completed"}

    @app.post("/bare", status_code=201)
    def write(body: dict[str, Any]) -> dict[str, Any]:
        return {"id": "0", "state": "queued", **body}

    return app
