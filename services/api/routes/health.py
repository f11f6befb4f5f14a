"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from services.api.deps import Res
from services.api.problems import problem_response

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(res: Res) -> JSONResponse | dict[str, object]:
    checks: dict[str, str] = {}
    try:
        await res.gateway.ping()
        checks["temporal"] = "ok"
    except Exception as exc:  # any failure means not ready; the detail says which
        checks["temporal"] = f"unreachable: {exc.__class__.__name__}"
    try:
        async with res.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {exc.__class__.__name__}"
    if all(v == "ok" for v in checks.values()):
        return {"status": "ready", "checks": checks}
    return problem_response(
        503,
        "not ready: " + ", ".join(f"{k} {v}" for k, v in checks.items()),
        "not-ready",
        checks=checks,
    )
