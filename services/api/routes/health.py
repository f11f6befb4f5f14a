"""Liveness and readiness: Temporal answers, the database answers, a worker polls the task
queue. ``/readyz`` answers 503 naming each check that failed."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from services.api.deps import Res, Resources
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
    checks["worker"] = await _worker_check(res, temporal_ok=checks["temporal"] == "ok")
    failed = [name for name, verdict in checks.items() if verdict != "ok"]
    if not failed:
        return {"status": "ready", "checks": checks}
    return problem_response(
        503,
        "not ready: " + "; ".join(f"{name}: {checks[name]}" for name in failed),
        "not-ready",
        checks=checks,
        failed=failed,
    )


async def _worker_check(res: Resources, *, temporal_ok: bool) -> str:
    """A worker polls the task queue: without one, no command or read of a run can finish."""
    if not temporal_ok:
        return "unknown: Temporal is unreachable"
    polled = await res.gateway.workers.polled()
    if polled is None:
        return "unknown: Temporal did not describe the task queue"
    if not polled:
        return f"no worker polls task queue '{res.settings.task_queue}'"
    return "ok"
