"""The console's portfolio: the read model filtered by whom a gate waits on.

It keeps need-to-know exactly as ``RegistryRepository.list`` does (the run's pinned roster
names the caller, unless the caller reads every run) and pages with its keyset cursor. The
escalation owner's overdue gates are ``services.store.console.ConsoleRepository``'s.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.store.models import UseCase
from services.store.registry import RegistryRepository


class ConsoleQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

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
