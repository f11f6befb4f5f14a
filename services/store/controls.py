"""The reads behind the controls view: a run's ledger entries and evidence items, and the live
use cases whose controls the inbox and the portfolio coverage judge.

Everything comes from tables that exist for other reasons (ledger, evidence, registry, roster);
``services.controls.evaluate`` does the judging without I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.controls.evaluate import EvidenceFact, LedgerFact, RunFacts
from services.store.flow import ledger_facts
from services.store.models import EvidenceItem, LedgerEntry, RosterEntry, UseCase
from workflows.model import Role, Stage

LIVE_STAGES: tuple[str, ...] = (Stage.LIVE.value, Stage.SUSPENDED.value)
# the people whose inbox a live use case's control gaps reach
GAP_OWNERS: tuple[str, ...] = (
    Role.BUSINESS_OWNER.value,
    f"deputy_{Role.BUSINESS_OWNER.value}",
    Role.RISK_APPROVER.value,
)
# how many live use cases one inbox or one coverage figure judges at most
MAX_JUDGED_RUNS = 500


class ControlsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def facts(self, workflow_ids: Sequence[str]) -> dict[str, RunFacts]:
        """Ledger entries and evidence items of each run, in two queries."""
        if not workflow_ids:
            return {}
        entries: dict[str, list[LedgerFact]] = defaultdict(list)
        for r in await ledger_facts(self.session, LedgerEntry.workflow_id.in_(workflow_ids)):
            entries[r.workflow_id].append(LedgerFact(r.seq, r.at, r.kind, r.actor, r.payload))
        evidence: dict[str, list[EvidenceFact]] = defaultdict(list)
        items = await self.session.scalars(
            select(EvidenceItem)
            .where(EvidenceItem.workflow_id.in_(workflow_ids))
            .order_by(EvidenceItem.workflow_id, EvidenceItem.event_id, EvidenceItem.id)
        )
        for ev in items:
            evidence[ev.workflow_id].append(
                EvidenceFact(
                    kind=ev.kind,
                    name=ev.name,
                    sha256=ev.sha256,
                    uri=ev.uri,
                    scope=ev.scope,
                    round=ev.round,
                    submitted_by=ev.submitted_by,
                    at=ev.at,
                    seq=ev.event_id,
                )
            )
        return {
            wid: RunFacts(wid, entries.get(wid, []), evidence.get(wid, [])) for wid in workflow_ids
        }

    async def registry_rows(self, workflow_ids: Sequence[str]) -> dict[str, UseCase]:
        if not workflow_ids:
            return {}
        rows = await self.session.scalars(
            select(UseCase).where(UseCase.workflow_id.in_(workflow_ids))
        )
        return {r.workflow_id: r for r in rows}

    async def live_use_cases(
        self, *, visible_to: str | None, owned_by: str | None = None
    ) -> list[UseCase]:
        """Live (or suspended) use cases, not change requests: those ``visible_to`` may read
        (None: every one), or those ``owned_by`` is business owner or a risk approver of."""
        statement = select(UseCase).where(
            UseCase.stage.in_(LIVE_STAGES),
            UseCase.closed.is_(False),
            UseCase.key.not_like("%/%"),  # a change request's row is ``<key>/change-<n>``
        )
        if visible_to is not None:
            statement = statement.where(
                select(RosterEntry.workflow_id)
                .where(
                    RosterEntry.person_id == visible_to,
                    RosterEntry.workflow_id == UseCase.workflow_id,
                )
                .exists()
            )
        if owned_by is not None:
            statement = statement.where(
                select(RosterEntry.workflow_id)
                .where(
                    RosterEntry.person_id == owned_by,
                    RosterEntry.role.in_(GAP_OWNERS),
                    RosterEntry.workflow_id == UseCase.workflow_id,
                )
                .exists()
            )
        statement = statement.order_by(UseCase.workflow_id).limit(MAX_JUDGED_RUNS)
        return list((await self.session.scalars(statement)).all())


__all__ = ["GAP_OWNERS", "LIVE_STAGES", "MAX_JUDGED_RUNS", "ControlsRepository"]
