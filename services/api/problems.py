"""RFC 9457 problem details: every error the API returns is ``application/problem+json``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.commands.errors import (
    CommandError,
    CommandRefused,
    EvidenceChangedSince,
    IdempotencyKeyReused,
    InvalidOwners,
    KeyConflict,
    Outage,
    PreconditionRequired,
    ReplayUnresolved,
    RunNotFound,
    SeenEvidence,
    Unavailable,
    WorkflowRejected,
)
from services.store.blocked import LedgerBlocked
from workflows.model import Refusal

PROBLEM_JSON = "application/problem+json"

REFUSAL_STATUS: dict[Refusal, int] = {
    Refusal.NOT_ELIGIBLE: 403,
    Refusal.INVALID: 422,
    Refusal.WRONG_STAGE: 409,
    Refusal.GATE_NOT_OPEN: 409,
    Refusal.RUN_CLOSED: 409,
    Refusal.ALREADY_DECIDED: 409,
    Refusal.EVIDENCE_MISSING: 409,
    Refusal.EVIDENCE_CHANGED: 409,
    # beyond a per-run cap of the policy's ``limits``; too many in its window (Retry-After)
    Refusal.OVER_LIMIT: 422,
    Refusal.RATE_LIMITED: 429,
    # the run could not verify the API's own signature: a key configuration fault, not the
    # caller's (RELEASEGATE_COMMAND_KEYS differs between API and worker)
    Refusal.UNAUTHENTICATED: 503,
}

TITLES: dict[int, str] = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    428: "Precondition required",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


# Every 503 says when to try again (the contract). Seconds, by problem type; the default
# suits outages that heal by themselves (a restart, a failover).
RETRY_AFTER_S = 5
LEDGER_BLOCKED = "ledger-blocked"
RETRY_AFTER: dict[str, int] = {
    Outage.NO_WORKER.value: 10,
    # somebody has to fix the workflow code or the data: come back much later
    Outage.WORKFLOW_TASK_FAILING.value: 60,
    LEDGER_BLOCKED: 300,
}


class Problem(Exception):  # noqa: N818 - it is a problem document, not an error class name
    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        retry_after: int | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code or TITLES.get(status, "error").lower().replace(" ", "-")
        self.retry_after = retry_after
        self.headers = headers
        self.extra = extra

    @classmethod
    def refused(cls, refusal: Refusal, detail: str, retry_after: int | None = None) -> Problem:
        return cls(
            REFUSAL_STATUS[refusal],
            detail,
            code=refusal.value.replace("_", "-"),
            retry_after=retry_after,
        )


# the command layer's errors other than refusals (those map through REFUSAL_STATUS)
COMMAND_ERROR_STATUS: dict[type[CommandError], int] = {
    WorkflowRejected: 409,
    RunNotFound: 404,
    KeyConflict: 409,
    InvalidOwners: 422,
    IdempotencyKeyReused: 422,
    # an approval that names no evidence, or an If-Match that is not the current evidence's
    PreconditionRequired: 428,
    EvidenceChangedSince: 412,
    ReplayUnresolved: 409,
    Unavailable: 503,
    CommandError: 409,
}


def problem_of(exc: CommandError) -> Problem:
    """The problem document for a command-layer error (same status and type as always)."""
    if isinstance(exc, CommandRefused):
        return Problem.refused(exc.refusal, exc.detail, exc.retry_after)
    status = next(COMMAND_ERROR_STATUS[t] for t in type(exc).__mro__ if t in COMMAND_ERROR_STATUS)
    if isinstance(exc, SeenEvidence):
        # the current set, to review and approve again (its ETag also as the header)
        return Problem(
            status,
            exc.detail,
            code=exc.code,
            headers={"ETag": exc.etag},
            evidence_digests=exc.evidence_digests,
            etag=exc.etag,
        )
    extra = exc.facts if isinstance(exc, Unavailable) else {}
    return Problem(status, exc.detail, code=exc.code, **extra)


def ledger_blocked(exc: LedgerBlocked) -> Problem:
    """A run whose ledger the store refused for good: its chain stops before ``event_id`` and
    will until an operator fixes the cause (the database's own words are in the worker's log
    and in ``ledger_blocked``, not here)."""
    return Problem(
        503,
        f"the ledger of {exc.workflow_id} stops before event {exc.event_id}: the store refused "
        f"that entry for good ({exc.reason}); an operator must fix the cause",
        code=LEDGER_BLOCKED,
        workflow_id=exc.workflow_id,
        blocked_before_seq=exc.event_id,
        reason=exc.reason,
        blocked_at=exc.since.isoformat(),
    )


def problem_response(
    status: int,
    detail: str,
    code: str,
    headers: dict[str, str] | None = None,
    *,
    retry_after: int | None = None,
    **extra: Any,
) -> JSONResponse:
    """The problem document; a 503 or 429 always carries ``Retry-After`` (``retry_after``
    seconds, else the problem type's, else ``RETRY_AFTER_S``)."""
    if status in (429, 503) and not any(h.lower() == "retry-after" for h in headers or {}):
        seconds = retry_after if retry_after is not None else RETRY_AFTER.get(code, RETRY_AFTER_S)
        headers = {**(headers or {}), "Retry-After": str(seconds)}
    body = {
        "type": f"urn:releasegate:problem:{code}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        headers.update(exc.headers or {})
        return problem_response(
            exc.status, exc.detail, exc.code, headers, retry_after=exc.retry_after, **exc.extra
        )

    @app.exception_handler(CommandError)
    async def _command(request: Request, exc: CommandError) -> JSONResponse:
        return await _problem(request, problem_of(exc))

    @app.exception_handler(LedgerBlocked)
    async def _blocked(request: Request, exc: LedgerBlocked) -> JSONResponse:
        return await _problem(request, ledger_blocked(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "loc": [str(p) for p in err.get("loc", ())],
                "msg": err.get("msg", ""),
                "type": err.get("type", ""),
            }
            for err in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        loc = ".".join(first["loc"])
        detail = f"{loc}: {first['msg']}" if loc else str(first["msg"])
        return problem_response(422, detail, "invalid-request", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "error")
        code = TITLES.get(exc.status_code, "error").lower().replace(" ", "-")
        return problem_response(exc.status_code, detail, code, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        import logging

        logging.getLogger("releasegate.api").exception("unhandled error", exc_info=exc)
        return problem_response(500, "unexpected error; it has been logged", "internal")
