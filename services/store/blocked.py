"""Runs whose ledger the store refused for good (``ledger_blocked``).

The worker records a block when it classifies a ledger write as permanently impossible
(``services.store.errors``); the next successful append for the run removes it. The API reads
it so that a run whose chain silently stopped answers 503 ``ledger-blocked`` instead of a
chain that looks complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.store.errors import Permanent
from services.store.models import LedgerBlock


class LedgerBlocked(Exception):  # noqa: N818 - a state the caller reports, like LookupError
    """The run's ledger stops before ``event_id`` and no retry will move it."""

    def __init__(self, block: LedgerBlock) -> None:
        super().__init__(
            f"the ledger of {block.workflow_id} is blocked before event {block.event_id}: "
            f"{block.reason}"
        )
        self.workflow_id = block.workflow_id
        self.event_id = block.event_id
        self.reason = block.reason
        self.detail = block.detail
        self.since = block.blocked_at


class BlockedRepository:
    """``ledger_blocked`` on one ``AsyncSession`` (the caller owns the commit)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def mark(
        self,
        workflow_id: str,
        event_id: int,
        reason: Permanent,
        detail: str,
        *,
        at: datetime | None = None,
    ) -> LedgerBlock:
        """Record the block; a run already blocked keeps its first event and time."""
        block = await self.session.get(LedgerBlock, workflow_id)
        if block is None:
            block = LedgerBlock(
                workflow_id=workflow_id,
                event_id=event_id,
                reason=reason.value,
                detail=detail,
                blocked_at=at or datetime.now(UTC),
            )
            self.session.add(block)
        else:
            block.event_id = min(block.event_id, event_id)
            block.reason, block.detail = reason.value, detail
        await self.session.flush()
        return block

    async def clear(self, workflow_id: str) -> None:
        await self.session.execute(
            delete(LedgerBlock).where(LedgerBlock.workflow_id == workflow_id)
        )

    async def get(self, workflow_id: str) -> LedgerBlock | None:
        return await self.session.get(LedgerBlock, workflow_id)

    async def ensure_open(self, workflow_id: str) -> None:
        """Raise ``LedgerBlocked`` when the run's ledger is blocked."""
        block = await self.get(workflow_id)
        if block is not None:
            raise LedgerBlocked(block)

    async def count(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(LedgerBlock)) or 0)

    async def all(self) -> Sequence[LedgerBlock]:
        return (
            await self.session.scalars(select(LedgerBlock).order_by(LedgerBlock.workflow_id))
        ).all()


__all__ = ["BlockedRepository", "LedgerBlocked"]
