"""A chain is held to the run's own event count (its registry row's ``event_id``).

Links alone cannot show that the newest entries, or all of them, were deleted: what is left is
a perfectly linked chain. The registry row keeps the workflow's latest event id, so ``verify``
expects that many entries and names the first one missing.
"""

from __future__ import annotations

import asyncio
import io

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.settings import Settings
from services.store import audit_cli
from services.store.audit import verify_document, verify_use_case
from services.store.blocked import BlockedRepository, LedgerBlocked
from services.store.db import session_scope
from services.store.errors import Permanent
from services.store.ledger import LedgerRepository, VerifyResult
from services.store.models import LedgerEntry
from services.store.registry import RegistryRepository
from tests.store.factories import batch, new_workflow_id, registry_row

Sessions = async_sessionmaker[AsyncSession]
EVENTS = 6


async def _run(sessionmaker: Sessions, *, events: int = EVENTS, registered: int = EVENTS) -> str:
    """A run with ``events`` ledger entries whose registry row knows ``registered`` events."""
    wf = new_workflow_id()
    async with session_scope(sessionmaker) as session:
        await LedgerRepository(session).append(batch(wf, range(1, events + 1)))
    async with session_scope(sessionmaker) as session:
        await RegistryRepository(session).upsert(registry_row(wf, event_id=registered))
    return wf


async def _delete(sessionmaker: Sessions, wf: str, *seqs: int) -> None:
    async with session_scope(sessionmaker) as session:
        statement = delete(LedgerEntry).where(LedgerEntry.workflow_id == wf)
        if seqs:
            statement = statement.where(LedgerEntry.seq.in_(seqs))
        await session.execute(statement)


async def _verify(sessionmaker: Sessions, wf: str) -> VerifyResult:
    async with session_scope(sessionmaker) as session:
        result = await LedgerRepository(session).verify(wf)
        # the API's and the CLI's path says the same
        assert await verify_use_case(session, wf) == result
    return result


async def test_an_intact_chain_meets_the_run_event_count(sessionmaker: Sessions) -> None:
    wf = await _run(sessionmaker)
    result = await _verify(sessionmaker, wf)
    assert (result.ok, result.entries, result.first_bad_seq, result.expected_entries) == (
        True,
        EVENTS,
        None,
        EVENTS,
    )
    assert verify_document(result) == {
        "ok": True,
        "entries": EVENTS,
        "first_bad_seq": None,
        "expected_entries": EVENTS,
    }


async def test_deleted_tail_is_detected(sessionmaker: Sessions) -> None:
    wf = await _run(sessionmaker)
    await _delete(sessionmaker, wf, 5, 6)

    result = await _verify(sessionmaker, wf)
    assert (result.ok, result.entries, result.first_bad_seq, result.expected_entries) == (
        False,
        4,
        5,
        EVENTS,
    )
    assert result.reason == f"the run recorded {EVENTS} events but the chain ends at seq 4"


async def test_emptied_chain_of_a_known_run_is_detected(sessionmaker: Sessions) -> None:
    wf = await _run(sessionmaker)
    await _delete(sessionmaker, wf)

    result = await _verify(sessionmaker, wf)
    assert (result.ok, result.entries, result.first_bad_seq, result.expected_entries) == (
        False,
        0,
        1,
        EVENTS,
    )
    async with session_scope(sessionmaker) as session:
        everything = await LedgerRepository(session).verify_all()
    # no row is left to find the run by in the ledger: the registry names it
    assert everything[wf] == result


async def test_gap_in_the_middle_names_the_first_missing_seq(sessionmaker: Sessions) -> None:
    wf = await _run(sessionmaker)
    await _delete(sessionmaker, wf, 3)

    result = await _verify(sessionmaker, wf)
    assert (result.ok, result.entries, result.first_bad_seq, result.expected_entries) == (
        False,
        5,
        3,
        EVENTS,
    )


async def test_a_read_model_that_lags_the_ledger_is_no_fault(sessionmaker: Sessions) -> None:
    # the registry is synced after the ledger: a chain may briefly be ahead of it, and then
    # the run has recorded at least what the intact chain shows
    wf = await _run(sessionmaker, registered=EVENTS - 2)
    result = await _verify(sessionmaker, wf)
    assert (result.ok, result.entries, result.expected_entries) == (True, EVENTS, EVENTS)


async def test_an_unregistered_chain_has_no_expected_count(sessionmaker: Sessions) -> None:
    wf = new_workflow_id()
    async with session_scope(sessionmaker) as session:
        await LedgerRepository(session).append(batch(wf, range(1, 4)))
        result = await LedgerRepository(session).verify(wf)
    assert (result.ok, result.entries, result.expected_entries) == (True, 3, None)


async def _cli(db_url: str, *argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(
        audit_cli.main,
        ["--database-url", db_url, *argv],
        settings=Settings(),
        stdout=out,
        stderr=err,
    )
    return code, out.getvalue() + err.getvalue()


async def test_audit_cli_reports_a_truncated_and_an_emptied_chain(
    sessionmaker: Sessions, db_url: str
) -> None:
    truncated, emptied = await _run(sessionmaker), await _run(sessionmaker)
    await _delete(sessionmaker, truncated, 6)
    await _delete(sessionmaker, emptied)

    code, out = await _cli(db_url, "verify", "--use-case", truncated)
    assert code == 1, out
    assert f"{truncated}: BROKEN at seq 6" in out
    assert f"5 of {EVENTS} entries" in out

    code, out = await _cli(db_url, "verify")
    assert code == 1, out
    assert f"{emptied}: BROKEN at seq 1" in out
    assert "2 chains verified, 2 broken, 0 blocked" in out


async def test_a_blocked_ledger_is_reported_not_verified(
    sessionmaker: Sessions, db_url: str
) -> None:
    wf = await _run(sessionmaker)
    async with session_scope(sessionmaker) as session:
        await BlockedRepository(session).mark(
            wf, EVENTS + 1, Permanent.VALUE_TOO_LONG, "value too long for type varchar(200)"
        )
    async with session_scope(sessionmaker) as session:
        with pytest.raises(LedgerBlocked) as caught:
            await verify_use_case(session, wf)
    assert (caught.value.event_id, caught.value.reason) == (EVENTS + 1, "value_too_long")

    code, out = await _cli(db_url, "verify", "--use-case", wf)
    assert code == 1, out
    assert f"{wf}: BLOCKED before event {EVENTS + 1}" in out

    # a later block of the same run keeps the first event; clearing lifts it
    async with session_scope(sessionmaker) as session:
        blocked = BlockedRepository(session)
        block = await blocked.mark(wf, EVENTS + 3, Permanent.CONSTRAINT, "again")
        assert block.event_id == EVENTS + 1
        assert await blocked.count() == 1
        await blocked.clear(wf)
    async with session_scope(sessionmaker) as session:
        assert (await verify_use_case(session, wf)).ok
