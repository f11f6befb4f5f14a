"""The reads behind flow metrics: ledger entries and registry rows of the runs in a window.

``services.flow`` does the arithmetic without I/O; this repository feeds it, so the route
(``GET /v1/metrics/flow``) holds no SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.flow import FLOW_KINDS, FlowEntry, RegistryInfo
from services.store.models import LedgerEntry, RosterEntry, UseCase
from workflows.model import EventKind


async def ledger_facts(session: AsyncSession, *where: Any) -> list[FlowEntry]:
    """The ledger entries matching ``where`` by run and seq, only the columns a judgement
    reads (a payload that is not an object reads as empty)."""
    statement = (
        select(
            LedgerEntry.workflow_id,
            LedgerEntry.seq,
            LedgerEntry.at,
            LedgerEntry.kind,
            LedgerEntry.actor,
            LedgerEntry.payload,
        )
        .where(*where)
        .order_by(LedgerEntry.workflow_id, LedgerEntry.seq)
    )
    rows = (await session.execute(statement)).all()
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


class FlowRepository:
    """The ledger entries and registry rows of the runs that started in [since, until).

    Need-to-know: ``visible_to`` (the caller's id) keeps only the runs whose roster names that
    person, so every figure and row is about runs they may read; None (a member of a policy
    reader group) keeps every run.
    """

    def __init__(self, session: AsyncSession, *, visible_to: str | None) -> None:
        self.session = session
        self.visible_to = visible_to

    def _started(self, since: datetime | None, until: datetime | None) -> Any:
        runs = select(LedgerEntry.workflow_id).where(
            LedgerEntry.kind == EventKind.RUN_STARTED.value
        )
        if self.visible_to is not None:
            visible = select(RosterEntry.workflow_id).where(
                RosterEntry.person_id == self.visible_to
            )
            runs = runs.where(LedgerEntry.workflow_id.in_(visible))
        if since is not None:
            runs = runs.where(LedgerEntry.at >= since)
        if until is not None:
            runs = runs.where(LedgerEntry.at < until)
        return runs

    async def entries(self, since: datetime | None, until: datetime | None) -> list[FlowEntry]:
        return await ledger_facts(
            self.session,
            LedgerEntry.workflow_id.in_(self._started(since, until)),
            LedgerEntry.kind.in_([kind.value for kind in FLOW_KINDS]),
        )

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
