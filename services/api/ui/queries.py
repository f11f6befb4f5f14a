"""The console's reads of the read model that the REST routes do not make: the escalation
owner's overdue gates, and the portfolio filtered by whom a gate waits on.

Both keep need-to-know exactly as ``RegistryRepository.list`` does (the run's pinned roster
names the caller, unless the caller reads every run) and page with its keyset cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.store.models import PendingApproval, RosterEntry, UseCase, UseCasePerson
from services.store.registry import MAX_PAGE_SIZE, decode_cursor, encode_cursor

ESCALATION_OWNER = "escalation_owner"


class ConsoleQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def escalated_to(self, person_id: str, now: datetime, *, limit: int) -> Sequence[UseCase]:
        """Open gates past their SLA on runs whose escalation owner is ``person_id``: the
        workflow escalates to them at the SLA (``PendingApprovers`` gains them)."""
        owned = select(UseCasePerson.workflow_id).where(
            UseCasePerson.person_id == person_id, UseCasePerson.role == ESCALATION_OWNER
        )
        statement = (
            select(UseCase)
            .where(
                UseCase.workflow_id.in_(owned),
                UseCase.closed.is_(False),
                UseCase.gate.is_not(None),
                UseCase.due_at <= now,
            )
            .order_by(UseCase.due_at.asc(), UseCase.workflow_id)
            .limit(limit)
        )
        return (await self.session.scalars(statement)).all()

    async def portfolio(
        self,
        *,
        visible_to: str | None,
        stage: str | None = None,
        risk_tier: str | None = None,
        owner: str | None = None,
        waiting_on: str | None = None,
        limit: int = 25,
        cursor: str | None = None,
    ) -> tuple[list[UseCase], str | None]:
        """One page, most recently changed first; ``ValueError`` for a cursor not ours."""
        statement = select(UseCase)
        if visible_to is not None:
            named = select(RosterEntry.workflow_id).where(
                RosterEntry.person_id == visible_to,
                RosterEntry.workflow_id == UseCase.workflow_id,
            )
            statement = statement.where(named.exists())
        if stage:
            statement = statement.where(UseCase.stage == stage)
        if risk_tier:
            statement = statement.where(UseCase.risk_tier == risk_tier)
        if owner:
            involved = select(UseCasePerson.workflow_id).where(UseCasePerson.person_id == owner)
            statement = statement.where(UseCase.workflow_id.in_(involved))
        if waiting_on:
            waits = select(PendingApproval.workflow_id).where(
                PendingApproval.person_id == waiting_on
            )
            statement = statement.where(UseCase.workflow_id.in_(waits))
        if cursor:
            after_at, after_id = decode_cursor(cursor)
            statement = statement.where(
                UseCase.updated_at <= after_at,
                or_(UseCase.updated_at < after_at, UseCase.workflow_id < after_id),
            )
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        statement = statement.order_by(UseCase.updated_at.desc(), UseCase.workflow_id.desc())
        rows = list((await self.session.scalars(statement.limit(limit + 1))).all())
        if len(rows) <= limit:
            return rows, None
        page = rows[:limit]
        return page, encode_cursor(page[-1].updated_at, page[-1].workflow_id)


__all__ = ["ConsoleQueries"]
