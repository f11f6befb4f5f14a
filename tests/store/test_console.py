"""The console's store reads: the escalation owner's overdue gates, and side decisions."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.store.console import ConsoleRepository
from services.store.db import session_scope
from services.store.registry import RegistryRepository
from tests.store.factories import T0, registry_row
from workflows.activities import RegistryRow, SideDecision, SideDecisionKind

Sessions = async_sessionmaker[AsyncSession]
NOW = T0 + timedelta(days=10)


async def upsert(sessionmaker: Sessions, row: RegistryRow) -> None:
    async with session_scope(sessionmaker) as session:
        assert await RegistryRepository(session).upsert(row)


def owned_by(escalation: str, other: str = "tom", **overrides: object) -> RegistryRow:
    row = registry_row()
    owners = {**row.owners, "escalation_owner": escalation, "technical_owner": other}
    return registry_row(row.workflow_id, owners=owners, **overrides)


async def test_the_escalation_owner_sees_only_their_overdue_open_gates(
    sessionmaker: Sessions,
) -> None:
    eve = f"eve-{uuid.uuid4().hex[:8]}"
    gate = {"stage": "risk_signoff", "gate": "risk_signoff"}
    later = owned_by(eve, due_at=NOW - timedelta(hours=1), **gate)
    sooner = owned_by(eve, due_at=NOW - timedelta(days=2), **gate)
    rows = [
        later,
        sooner,
        owned_by(eve, due_at=NOW, **gate),  # due this instant: past its SLA
        owned_by(eve, due_at=NOW + timedelta(hours=1), **gate),  # not yet due
        owned_by(eve, due_at=NOW - timedelta(hours=1)),  # no gate open
        owned_by(eve, due_at=NOW - timedelta(hours=1), closed=True, **gate),  # closed
        # eve is named on the run, but not as its escalation owner
        owned_by("zed", other=eve, due_at=NOW - timedelta(hours=1), **gate),
    ]
    for row in rows:
        await upsert(sessionmaker, row)
    async with session_scope(sessionmaker) as session:
        found = await ConsoleRepository(session).escalated_to(eve, NOW, limit=10)
        first = await ConsoleRepository(session).escalated_to(eve, NOW, limit=1)
    assert [r.workflow_id for r in found] == [
        sooner.workflow_id,
        later.workflow_id,
        rows[2].workflow_id,
    ]
    assert [r.workflow_id for r in first] == [sooner.workflow_id]


async def test_side_decisions_keep_their_kind(sessionmaker: Sessions) -> None:
    """The kind is an enum on the workflow's side and the same string in the store."""
    rita = f"rita-{uuid.uuid4().hex[:8]}"
    sides = [
        SideDecision(kind=SideDecisionKind.OVERRIDE_REVIEW, ref="override_review", pending=[rita]),
        SideDecision(kind="waiver", ref="w-1", pending=[rita], quorum=1),  # as stored payloads say
    ]
    row = registry_row(side_decisions=sides, due_at=T0)
    assert row.model_dump(mode="json")["side_decisions"][1]["kind"] == "waiver"
    await upsert(sessionmaker, row)
    async with session_scope(sessionmaker) as session:
        found = await RegistryRepository(session).side_pending_for(rita)
    kinds = {side.ref: side.kind for _, side in found}
    assert kinds == {"override_review": "override_review", "w-1": "waiver"}
    assert kinds["w-1"] == SideDecisionKind.WAIVER
    assert SideDecisionKind(kinds["override_review"]) is SideDecisionKind.OVERRIDE_REVIEW
