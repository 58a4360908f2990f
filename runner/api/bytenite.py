"""ByteNite's customer API (``/v1/customer``), mapped onto Runner's jobs (issue 11)."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(prefix="/v1/customer", tags=["bytenite"])
