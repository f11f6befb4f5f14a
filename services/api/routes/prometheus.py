"""``GET /metrics``: the API's Prometheus metrics (services/observability.py defines them).

Open by default, as scrape endpoints usually are behind the network boundary; with
``RELEASEGATE_METRICS_TOKEN`` set the scraper must send it as a bearer token.
"""

from __future__ import annotations

import asyncio
import hmac
import logging

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from services import observability
from services.api.deps import Res, Resources
from services.api.problems import Problem
from services.store.blocked import BlockedRepository

log = logging.getLogger("releasegate.api")
BLOCKED_QUERY_TIMEOUT_S = 2.0

router = APIRouter(tags=["observability"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, res: Res) -> Response:
    token = res.settings.metrics_token
    if token is not None:
        sent = request.headers.get("authorization", "").partition(" ")[2].strip()
        if not hmac.compare_digest(sent.encode(), token.get_secret_value().encode()):
            raise Problem(401, "a valid metrics bearer token is required", code="unauthenticated")
    await _count_blocked_ledgers(res)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


async def _count_blocked_ledgers(res: Resources) -> None:
    """``releasegate_ledger_blocked`` from the table the worker writes (another process)."""
    try:
        async with asyncio.timeout(BLOCKED_QUERY_TIMEOUT_S), res.sessionmaker() as session:
            blocked = await BlockedRepository(session).count()
    except (SQLAlchemyError, OSError, TimeoutError):
        # the database's own outage shows in /readyz; a scrape still answers
        log.warning("could not count blocked ledgers for /metrics", exc_info=True)
        return
    observability.LEDGER_BLOCKED.set(blocked)
