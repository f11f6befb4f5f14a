"""``GET /metrics``: the API's Prometheus metrics (services/observability.py defines them).

Open by default, as scrape endpoints usually are behind the network boundary; with
``RELEASEGATE_METRICS_TOKEN`` set the scraper must send it as a bearer token.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from services.api.deps import Res
from services.api.problems import Problem

router = APIRouter(tags=["observability"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, res: Res) -> Response:
    token = res.settings.metrics_token
    if token is not None:
        sent = request.headers.get("authorization", "").partition(" ")[2].strip()
        if not hmac.compare_digest(sent.encode(), token.get_secret_value().encode()):
            raise Problem(401, "a valid metrics bearer token is required", code="unauthenticated")
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
