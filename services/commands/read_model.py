"""Read-your-writes: the read model shows a command's effect as soon as the command answers.

The registry (listing, the approvals inbox) is kept by the workflow's store step, which
writes a command's row before the command answers; when that step falls back to its retrying
activities (the store slow or down), the row follows later. A caller who decides a gate and
reads their inbox at once must not see the gate still waiting on them, so the command layer
checks the row against the command's answer, the run's state right after it, and writes the
row from the answer when the store shows something older (``RegistryRepository.reflect``:
newer content only, ordered by the time of the run's latest fact; the ledger's count,
``event_id``, stays the workflow's to set). A row that cannot be written is only logged: the
command did happen, and the workflow's sync follows.
"""

from __future__ import annotations

import logging
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.store.db import session_scope
from services.store.registry import RegistryKeyConflict, RegistryRepository
from workflows.activities import RegistryRow
from workflows.model import UseCaseView
from workflows.presentation import side_decisions

log = logging.getLogger("releasegate.commands.read_model")


def row_from_view(view: UseCaseView) -> RegistryRow:
    """The read model's row of the run ``view`` shows: the row the workflow's own snapshot
    (``workflows.presentation.registry_row``) holds for the same state, except ``event_id``
    (0: the view does not say how much of it the ledger holds yet)."""
    gate = view.open_gate
    return RegistryRow(
        workflow_id=view.id,
        key=view.key,
        title=view.title,
        risk_tier=view.risk_tier.value,
        stage=view.stage.value,
        closed=view.closed,
        business_owner=view.owners.business_owner,
        owners=view.owners.model_dump(mode="json"),
        pending_approvers=list(gate.pending) if gate else [],
        gate=gate.gate.value if gate else None,
        quorum=gate.quorum if gate else None,
        approvals=[a.actor for a in gate.approvals] if gate else [],
        due_at=gate.due_at if gate else None,
        round=view.round,
        updated_at=view.updated_at,
        event_id=0,
        side_decisions=side_decisions(view.override, view.waivers),
    )


class ReadModel(Protocol):
    async def reflect(self, view: UseCaseView) -> None:
        """Show ``view`` in the read model unless it already shows something newer."""
        ...


class StoredReadModel:
    """``ReadModel`` in the store: one short transaction per command answer."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    async def reflect(self, view: UseCaseView) -> None:
        try:
            async with session_scope(self.sessionmaker) as session:
                registry = RegistryRepository(session)
                # Usually the run's one trip to the store wrote this row before the command
                # answered: a read, not a write, then (a write transaction is what costs).
                stored = await registry.shows_as_of(view.id)
                if stored is not None and stored >= view.updated_at:
                    return
                await registry.reflect(row_from_view(view))
        except (SQLAlchemyError, OSError, RegistryKeyConflict) as exc:
            log.warning(
                "read model not updated from the answer for %s (the run's sync follows): %s",
                view.id,
                exc.__class__.__name__,
            )


__all__ = ["ReadModel", "StoredReadModel", "row_from_view"]
