"""The read model written from a command's answer (read-your-writes) beside the workflow's
snapshots: newer content wins by the time of the run's latest fact, and ``event_id`` — what
``verify`` holds the ledger to — is only ever the workflow's. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.commands.read_model import StoredReadModel
from services.store.db import session_scope
from services.store.models import UseCase
from services.store.registry import RegistryRepository
from tests.store.factories import T0, new_workflow_id, registry_row
from tests.workflows.test_pure_modules import T0 as RUN_T0
from tests.workflows.test_pure_modules import approve, new_run, to_gate
from workflows import presentation
from workflows.activities import RegistryRow
from workflows.model import Gate

Sessions = async_sessionmaker[AsyncSession]


async def write(sessionmaker: Sessions, row: RegistryRow, *, reflected: bool) -> bool:
    async with session_scope(sessionmaker) as session:
        repo = RegistryRepository(session)
        return await (repo.reflect(row) if reflected else repo.upsert(row))


async def stored(sessionmaker: Sessions, wf: str) -> UseCase:
    async with session_scope(sessionmaker) as session:
        row = await RegistryRepository(session).get(wf)
    assert row is not None
    return row


async def inbox(sessionmaker: Sessions, person: str) -> list[str]:
    async with session_scope(sessionmaker) as session:
        return [r.workflow_id for r in await RegistryRepository(session).pending_for(person)]


def at_gate(wf: str, gate: str, waiting: list[str], minutes: int, event_id: int) -> RegistryRow:
    return registry_row(
        wf,
        stage=gate,
        gate=gate,
        quorum=1,
        pending_approvers=waiting,
        updated_at=T0 + timedelta(minutes=minutes),
        event_id=event_id,
    )


async def test_an_answer_shows_at_once_and_never_moves_the_ledger_count(
    sessionmaker: Sessions,
) -> None:
    wf = new_workflow_id()
    assert await write(sessionmaker, at_gate(wf, "risk_signoff", ["rita"], 1, 6), reflected=False)
    # rita decides: the answer shows the next gate, waiting on olga; event_id stays 6
    answer = at_gate(wf, "ops_handoff", ["olga"], 2, 0)
    assert await write(sessionmaker, answer, reflected=True)
    row = await stored(sessionmaker, wf)
    assert (row.stage, row.event_id) == ("ops_handoff", 6)
    assert wf not in await inbox(sessionmaker, "rita")
    assert wf in await inbox(sessionmaker, "olga")
    # the same answer again (a replayed request), or an older one, changes nothing
    assert not await write(sessionmaker, answer, reflected=True)
    assert not await write(
        sessionmaker, at_gate(wf, "risk_signoff", ["rita"], 1, 0), reflected=True
    )
    assert wf not in await inbox(sessionmaker, "rita")


async def test_a_snapshot_older_than_an_answer_advances_the_count_only(
    sessionmaker: Sessions,
) -> None:
    """A sync computed before the command lands after its answer: the ledger count moves on,
    the content the answer showed stays."""
    wf = new_workflow_id()
    assert await write(sessionmaker, at_gate(wf, "risk_signoff", ["rita"], 1, 4), reflected=False)
    assert await write(sessionmaker, at_gate(wf, "ops_handoff", ["olga"], 3, 0), reflected=True)
    assert not await write(
        sessionmaker, at_gate(wf, "risk_signoff", ["rita"], 2, 6), reflected=False
    )
    row = await stored(sessionmaker, wf)
    assert (row.stage, row.event_id) == ("ops_handoff", 6)
    assert wf not in await inbox(sessionmaker, "rita")
    # the snapshot of the same state (or a later one) replaces it, as before
    assert await write(sessionmaker, at_gate(wf, "go_live", ["bo"], 3, 8), reflected=False)
    row = await stored(sessionmaker, wf)
    assert (row.stage, row.event_id) == ("go_live", 8)
    # and an answer older than that snapshot is dropped
    assert not await write(sessionmaker, at_gate(wf, "ops_handoff", ["olga"], 3, 0), reflected=True)


async def test_an_answer_for_a_run_not_stored_yet_claims_no_ledger_entries(
    sessionmaker: Sessions,
) -> None:
    wf = new_workflow_id()
    assert await write(sessionmaker, registry_row(wf, stage="scoping", event_id=0), reflected=True)
    assert (await stored(sessionmaker, wf)).event_id == 0
    assert await write(sessionmaker, registry_row(wf, stage="scoping", event_id=2), reflected=False)
    assert (await stored(sessionmaker, wf)).event_id == 2


async def test_an_answer_the_store_step_already_wrote_costs_a_read_not_a_write(
    sessionmaker: Sessions, engine: AsyncEngine
) -> None:
    """The run's store step writes a command's row before the command answers; the command
    layer then only reads it. When that step fell back (the row is older), it writes."""
    run = new_run("low")
    to_gate(run)
    await write(sessionmaker, presentation.registry_row(run), reflected=False)  # the store step
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        await StoredReadModel(sessionmaker).reflect(presentation.view(run))
        assert statements == ["SELECT"]
        # the decision's answer: the store step fell back, the row still shows the gate open
        approve(run, "rita", Gate.RISK_SIGNOFF, now=RUN_T0 + timedelta(minutes=5))
        statements.clear()
        await StoredReadModel(sessionmaker).reflect(presentation.view(run))
        assert statements[0] == "SELECT"
        assert "INSERT" in statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    row = await stored(sessionmaker, run.workflow_id)
    assert row.stage == "ops_handoff"
    assert run.workflow_id not in await inbox(sessionmaker, "rita")
