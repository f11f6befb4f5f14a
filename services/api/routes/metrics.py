"""Flow metrics of the release path: ``GET /v1/metrics/flow``.

Read from the ledger and the registry (never by scanning Temporal); the arithmetic lives in
``services.flow``, which has no I/O. This module holds the thin query that feeds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.deps import CurrentPerson, DbSession, Res
from services.api.problems import Problem
from services.flow import FLOW_KINDS, FlowEntry, FlowMetrics, RegistryInfo, compute_flow, sla_table
from services.store.models import LedgerEntry, UseCase
from workflows.model import RiskTier

router = APIRouter(prefix="/v1/metrics", tags=["metrics"])


class FlowRepository:
    """The ledger entries and registry rows of the runs that started in [since, until)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _started(self, since: datetime | None, until: datetime | None) -> Any:
        runs = select(LedgerEntry.workflow_id).where(LedgerEntry.kind == "run_started")
        if since is not None:
            runs = runs.where(LedgerEntry.at >= since)
        if until is not None:
            runs = runs.where(LedgerEntry.at < until)
        return runs

    async def entries(self, since: datetime | None, until: datetime | None) -> list[FlowEntry]:
        statement = (
            select(
                LedgerEntry.workflow_id,
                LedgerEntry.seq,
                LedgerEntry.at,
                LedgerEntry.kind,
                LedgerEntry.actor,
                LedgerEntry.payload,
            )
            .where(
                LedgerEntry.workflow_id.in_(self._started(since, until)),
                LedgerEntry.kind.in_(FLOW_KINDS),
            )
            .order_by(LedgerEntry.workflow_id, LedgerEntry.seq)
        )
        rows = (await self.session.execute(statement)).all()
        return [
            FlowEntry(
                workflow_id=r.workflow_id,
                seq=r.seq,
                at=r.at,
                kind=r.kind,
                actor=r.actor,
                payload=r.payload if isinstance(r.payload, dict) else {},
            )
            for r in rows
        ]

    async def registry(self, since: datetime | None, until: datetime | None) -> list[RegistryInfo]:
        statement = select(UseCase).where(UseCase.workflow_id.in_(self._started(since, until)))
        rows: Sequence[UseCase] = (await self.session.scalars(statement)).all()
        return [
            RegistryInfo(
                workflow_id=r.workflow_id,
                key=r.key,
                title=r.title,
                risk_tier=r.risk_tier,
                stage=r.stage,
                closed=r.closed,
                gate=r.gate,
                due_at=r.due_at,
            )
            for r in rows
        ]


def parse_instant(name: str, value: str | None) -> datetime | None:
    """ISO-8601 date or date-time; a value without an offset is UTC (the project's rule)."""
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Problem(
            422,
            f"{name}: {value!r} is not an ISO-8601 date or date-time "
            "(e.g. 2026-11-01 or 2026-11-01T09:00:00Z)",
            code="invalid-request",
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@router.get("/flow", response_model=FlowMetrics)
async def flow_metrics(
    _: CurrentPerson,
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
    ``definitions`` state exactly how each figure is computed."""
    start, end = parse_instant("since", since), parse_instant("until", until)
    if start is not None and end is not None and start >= end:
        raise Problem(422, "since must be earlier than until", code="invalid-request")
    repo = FlowRepository(session)
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
