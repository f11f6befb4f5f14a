"""The console's reads of the read model that the REST routes do not make.

Need-to-know is the caller's: the console asks only for rows the person is named on.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.store.models import UseCase, UseCasePerson
from workflows.model import Role


class ConsoleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def escalated_to(self, person_id: str, now: datetime, *, limit: int) -> Sequence[UseCase]:
        """Open gates past their SLA on runs whose escalation owner is ``person_id``: the
        workflow escalates to them at the SLA (``PendingApprovers`` gains them). Soonest due
        first."""
        owned = select(UseCasePerson.workflow_id).where(
            UseCasePerson.person_id == person_id,
            UseCasePerson.role == Role.ESCALATION_OWNER.value,
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


__all__ = ["ConsoleRepository"]
