"""Flow metrics of the release path: ``GET /v1/metrics/flow``.

Read from the ledger and the registry (never by scanning Temporal) through
``services.store.flow.FlowRepository``; the arithmetic lives in ``services.flow``, which has
no I/O. This module only parses the window and hands over.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.deps import Commands, CurrentPerson, DbSession, Res, Resources
from services.api.problems import Problem
from services.controls.service import portfolio_coverage
from services.flow import FlowMetrics, compute_flow, sla_table
from services.store.flow import FlowRepository
from workflows.model import RiskTier

router = APIRouter(prefix="/v1/metrics", tags=["metrics"])


def parse_instant(name: str, value: str | None) -> datetime | None:
    """ISO-8601 date or date-time; a value without an offset is UTC (the project's rule)."""
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value)
        # an offset that takes the instant past year 1 or 9999 in UTC is OverflowError
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise Problem(
            422,
            f"{name}: {value!r} is not an ISO-8601 date or date-time within years 1-9999 UTC "
            "(e.g. 2026-11-01 or 2026-11-01T09:00:00Z)",
            code="invalid-request",
        ) from None


@router.get("/flow", response_model=FlowMetrics)
async def flow_metrics(
    person: CurrentPerson,
    commands: Commands,
    session: DbSession,
    res: Res,
    since: Annotated[
        str | None, Query(max_length=64, description="runs started at or after")
    ] = None,
    until: Annotated[str | None, Query(max_length=64, description="runs started before")] = None,
    tier: RiskTier | None = None,
    detail: Annotated[bool, Query(description="include one row per run")] = False,
) -> FlowMetrics:
    """Lead time, time per stage, gate waits (p50/p90), rework, rejection, expiry and SLA-breach
    rates and decisions per approver, over the runs started in [since, until). The response's
    ``definitions`` state exactly how each figure is computed. Need-to-know: only the runs the
    caller may read count (every run for a member of a policy reader group)."""
    start, end = parse_instant("since", since), parse_instant("until", until)
    if start is not None and end is not None and start >= end:
        raise Problem(422, "since must be earlier than until", code="invalid-request")
    visible_to = None if commands.reads_every_run(person) else person.id
    metrics = await flow_of(session, res, visible_to, start, end, tier=tier, detail=detail)
    if res.catalog is not None:
        metrics.controls = await portfolio_coverage(
            session, res.catalog, now=metrics.generated_at, visible_to=visible_to
        )
    return metrics


async def flow_of(  # noqa: PLR0913 - the window and its filters
    session: AsyncSession,
    res: Resources,
    visible_to: str | None,
    start: datetime | None,
    end: datetime | None,
    *,
    tier: RiskTier | None,
    detail: bool,
) -> FlowMetrics:
    """The flow metrics of the runs started in [start, end) that ``visible_to`` may read
    (None: every run), as the API and the console's metrics page show them."""
    repo = FlowRepository(session, visible_to=visible_to)
    return compute_flow(
        await repo.entries(start, end),
        await repo.registry(start, end),
        now=datetime.now(UTC),
        slas=sla_table(res.policy),
        since=start,
        until=end,
        tier=tier,
        detail=detail,
    )
