"""Controls for the front doors: one use case's view, the inbox's gap items, portfolio coverage.

Reads the store (``services.store.controls``), judges with ``services.controls.evaluate``. The
single view re-hashes the run's ledger chain; the inbox and the coverage, which judge many runs,
hold the ledger to contiguity only (``RunFacts.ledger`` None).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.controls.catalog import LoadedCatalog
from services.controls.coverage import ControlCoverage, ControlGapItem, coverage, use_case_gaps
from services.controls.evaluate import ControlsView, LedgerCheck, RunFacts, evaluate
from services.store.audit import UnknownUseCase, verify_use_case
from services.store.controls import ControlsRepository
from workflows.ids import key_of


async def use_case_controls(
    session: AsyncSession, workflow_id: str, catalog: LoadedCatalog, *, now: datetime
) -> ControlsView:
    """Every control of the catalog judged for one use case; ``UnknownUseCase`` when its
    ledger holds nothing (``LedgerBlocked`` propagates: a chain that stops short says so)."""
    verified = await verify_use_case(session, workflow_id)
    repo = ControlsRepository(session)
    facts = (await repo.facts([workflow_id]))[workflow_id]
    rows = await repo.registry_rows([workflow_id])
    row = rows.get(workflow_id)
    check = LedgerCheck(
        ok=verified.ok,
        entries=verified.entries,
        first_bad_seq=verified.first_bad_seq,
        reason=verified.reason,
    )
    view = evaluate(
        RunFacts(workflow_id, facts.entries, facts.evidence, check),
        catalog,
        now=now,
        key=row.key if row else key_of(workflow_id),
        title=row.title if row else None,
    )
    if view is None:
        raise UnknownUseCase(workflow_id)
    return view


async def _live_views(
    session: AsyncSession,
    catalog: LoadedCatalog,
    *,
    now: datetime,
    visible_to: str | None,
    owned_by: str | None = None,
) -> list[ControlsView]:
    repo = ControlsRepository(session)
    rows = await repo.live_use_cases(visible_to=visible_to, owned_by=owned_by)
    facts = await repo.facts([r.workflow_id for r in rows])
    views = []
    for row in rows:
        view = evaluate(facts[row.workflow_id], catalog, now=now, key=row.key, title=row.title)
        if view is not None:
            views.append(view)
    return views


async def gap_items(
    session: AsyncSession,
    person_id: str,
    catalog: LoadedCatalog,
    *,
    now: datetime,
    public_url: str,
) -> list[ControlGapItem]:
    """Live use cases ``person_id`` is business owner (or deputy) or a risk approver of, whose
    applicable controls have a gap: the inbox's ``control_gaps``."""
    views = await _live_views(session, catalog, now=now, visible_to=None, owned_by=person_id)
    base = public_url.rstrip("/")
    return [
        ControlGapItem(**dict(gaps), url=f"{base}/v1/use-cases/{gaps.id}/controls")
        for v in views
        if (gaps := use_case_gaps(v)) is not None
    ]


async def portfolio_coverage(
    session: AsyncSession, catalog: LoadedCatalog, *, now: datetime, visible_to: str | None
) -> ControlCoverage:
    """Open gaps of the live use cases ``visible_to`` may read (None: all), per framework."""
    return coverage(await _live_views(session, catalog, now=now, visible_to=visible_to), catalog)


__all__ = ["gap_items", "portfolio_coverage", "use_case_controls"]
