"""Prediction-API-style routes (``/api/v1``): sources, source versions and job setup,
mapped onto Runner's templates and jobs (issue 11)."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["prediction"])
