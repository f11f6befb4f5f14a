"""The console's reads of the read model that the REST routes do not make: the escalation
owner's overdue gates, and the portfolio filtered by whom a gate waits on.

Both keep need-to-know exactly as ``RegistryRepository.list`` does (the run's pinned roster
names the caller, unless the caller reads every run) and page with its keyset cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.store.models import UseCase, UseCasePerson
from services.store.registry import RegistryRepository

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
        """One page, most recently changed first (``RegistryRepository.list``, and a filter on
        whom a gate waits on); ``ValueError`` for a cursor not ours. Blank filters are none."""
        return await RegistryRepository(self.session).list(
            visible_to=visible_to,
            stage=stage or None,
            risk_tier=risk_tier or None,
            owner=owner or None,
            waiting_on=waiting_on or None,
            limit=max(1, limit),
            cursor=cursor or None,
        )


__all__ = ["ConsoleQueries"]
