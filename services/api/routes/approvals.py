"""The approver's inbox, served from the read model the workflow keeps in step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from services.api.deps import CurrentPerson, DbSession, Res
from services.api.schemas import PendingApproval, PendingPage
from services.controls.service import gap_items
from services.store.registry import RegistryRepository
from workflows.activities import SideDecisionKind

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])


@router.get("/pending", response_model=PendingPage)
async def pending_approvals(
    person: CurrentPerson,
    session: DbSession,
    res: Res,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> PendingPage:
    registry = RegistryRepository(session)
    rows = await registry.pending_for(person.id, limit=limit)
    gaps = (
        await gap_items(
            session,
            person.id,
            res.catalog,
            now=datetime.now(UTC),
            public_url=res.settings.public_url,
        )
        if res.catalog is not None
        else []
    )
    base = res.settings.public_url.rstrip("/")
    items = [
        PendingApproval(
            id=r.workflow_id,
            key=r.key,
            title=r.title,
            risk_tier=r.risk_tier,
            gate=r.gate or "",
            quorum=r.quorum,
            approvals=list(r.approvals or []),
            due_at=r.due_at,
            round=r.round,
            url=f"{base}/v1/use-cases/{r.workflow_id}",
            decide_url=f"{base}/v1/use-cases/{r.workflow_id}/gates/{r.gate}/decisions",
        )
        for r in rows
        if r.gate
    ]
    for r, side in await registry.side_pending_for(person.id, limit=limit):
        run = f"{base}/v1/use-cases/{r.workflow_id}"
        waiver = side.kind == SideDecisionKind.WAIVER
        items.append(
            PendingApproval(
                id=r.workflow_id,
                key=r.key,
                title=r.title,
                risk_tier=r.risk_tier,
                gate="" if waiver else side.ref,
                quorum=side.quorum,
                approvals=list(side.approvals or []),
                due_at=side.due_at,
                round=side.round,
                url=run,
                kind=side.kind,
                waiver_id=side.ref if waiver else None,
                decide_url=f"{run}/waivers/{side.ref}/decisions"
                if waiver
                else f"{run}/gates/{side.ref}/decisions",
            )
        )
    return PendingPage(control_gaps=gaps, items=items)
