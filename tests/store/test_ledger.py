"""Hash chain: idempotent appends, concurrency, verification and each kind of tampering."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.store.db import session_scope
from services.store.ledger import (
    GENESIS_HASH,
    LedgerBatchError,
    LedgerGapError,
    LedgerRepository,
    entry_hash,
    iso_utc,
)
from services.store.models import LedgerEntry
from tests.store.factories import T0, batch, evidence_item, new_workflow_id, record
from workflows.activities import LedgerBatch

Sessions = async_sessionmaker[AsyncSession]


async def append(sessionmaker: Sessions, ledger_batch: LedgerBatch) -> int:
    async with session_scope(sessionmaker) as session:
        return await LedgerRepository(session).append(ledger_batch)


async def entries(sessionmaker: Sessions, workflow_id: str) -> list[LedgerEntry]:
    async with session_scope(sessionmaker) as session:
        return list(await LedgerRepository(session).entries(workflow_id))


async def verify(sessionmaker: Sessions, workflow_id: str):  # type: ignore[no-untyped-def]
    async with session_scope(sessionmaker) as session:
        return await LedgerRepository(session).verify(workflow_id)


# --------------------------------------------------------------------------- canonical hash


def test_hash_pins_the_canonical_encoding() -> None:
    # An auditor re-implementing verification needs exactly this byte string.
    document = (
        '{"actor":"rita","at":"2026-11-27T10:00:00.000000Z","channel":"slack","kind":"decision",'
        '"payload":{"a":[1,2.5,null],"é":"✓"},"policy_version":"2026.1",'
        f'"prev_hash":"{GENESIS_HASH}","seq":1,"workflow_id":"usecase-kyc"}}'
    )
    expected = hashlib.sha256(document.encode("utf-8")).hexdigest()
    actual = entry_hash(
        workflow_id="usecase-kyc",
        seq=1,
        at=datetime(2026, 11, 27, 11, 0, tzinfo=timezone(timedelta(hours=1))),
        kind="decision",
        actor="rita",
        channel="slack",
        payload={"é": "✓", "a": [1, 2.5, None]},
        policy_version="2026.1",
        prev_hash=GENESIS_HASH,
    )
    assert actual == expected


def test_iso_utc_normalises_offsets_and_precision() -> None:
    assert iso_utc(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000000Z"
    assert (
        iso_utc(datetime(2026, 1, 2, 5, 4, 5, 7, tzinfo=timezone(timedelta(hours=2))))
        == "2026-01-02T03:04:05.000007Z"
    )
    assert iso_utc(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000000Z"


# --------------------------------------------------------------------------- appending


async def test_append_builds_a_verifiable_chain(sessionmaker: Sessions) -> None:
    wf = new_workflow_id()

    assert await append(sessionmaker, batch(wf, range(1, 6))) == 5

    rows = await entries(sessionmaker, wf)
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert [r.event_id for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == GENESIS_HASH
    assert all(
        later.prev_hash == earlier.hash for earlier, later in zip(rows, rows[1:], strict=False)
    )
    assert rows[2].payload == {"n": 3, "note": "größe ✓"}
    assert rows[2].at == T0 + timedelta(minutes=3, microseconds=3)
    assert rows[2].at.tzinfo is not None
    result = await verify(sessionmaker, wf)
    assert (result.ok, result.entries, result.first_bad_seq) == (True, 5, None)
    async with session_scope(sessionmaker) as session:
        assert await LedgerRepository(session).head_hash(wf) == rows[-1].hash
        assert await LedgerRepository(session).head_hash(new_workflow_id()) is None


async def test_same_batch_twice_writes_once(sessionmaker: Sessions) -> None:
    wf = new_workflow_id()
    assert await append(sessionmaker, batch(wf, [1, 2, 3])) == 3
    assert await append(sessionmaker, batch(wf, [1, 2, 3])) == 0
    assert len(await entries(sessionmaker, wf)) == 3
    assert (await verify(sessionmaker, wf)).ok


async def test_overlapping_batches_write_only_new_records(sessionmaker: Sessions) -> None:
    wf = new_workflow_id()
    assert await append(sessionmaker, batch(wf, [1, 2, 3])) == 3
    assert await append(sessionmaker, batch(wf, [2, 3, 4, 5])) == 2
    # a batch may list records out of order and twice; it is written in event order
    unordered = LedgerBatch(records=[record(wf, 7), record(wf, 6), record(wf, 7)])
    assert await append(sessionmaker, unordered) == 2
    assert [r.seq for r in await entries(sessionmaker, wf)] == [1, 2, 3, 4, 5, 6, 7]
    assert (await verify(sessionmaker, wf)).ok


async def test_concurrent_appends_of_one_batch_write_each_event_once(
    sessionmaker: Sessions,
) -> None:
    # two attempts of the same activity racing (e.g. a retry after a lost heartbeat)
    for _ in range(5):
        wf = new_workflow_id()
        first = append(sessionmaker, batch(wf, range(1, 9)))
        second = append(sessionmaker, batch(wf, range(1, 9)))
        written = await asyncio.gather(first, second)

        assert sum(written) == 8
        rows = await entries(sessionmaker, wf)
        assert [r.event_id for r in rows] == list(range(1, 9))
        assert (await verify(sessionmaker, wf)).ok


async def test_concurrent_use_cases_keep_separate_valid_chains(sessionmaker: Sessions) -> None:
    workflows = [new_workflow_id() for _ in range(3)]

    async def drive(wf: str) -> None:
        for event_id in range(1, 16):
            await append(sessionmaker, batch(wf, [event_id]))

    await asyncio.gather(*(drive(wf) for wf in workflows))

    async with session_scope(sessionmaker) as session:
        results = await LedgerRepository(session).verify_all()
    for wf in workflows:
        assert (results[wf].ok, results[wf].entries) == (True, 15)


async def test_gap_is_refused_and_writes_nothing(sessionmaker: Sessions) -> None:
    wf = new_workflow_id()
    await append(sessionmaker, batch(wf, [1, 2]))

    with pytest.raises(LedgerGapError):
        await append(sessionmaker, batch(wf, [4, 5]))
    with pytest.raises(LedgerGapError):
        await append(sessionmaker, batch(new_workflow_id(), [2]))

    assert len(await entries(sessionmaker, wf)) == 2
    # once the missing record arrives, the retried batch goes through
    assert await append(sessionmaker, batch(wf, [3])) == 1
    assert await append(sessionmaker, batch(wf, [4, 5])) == 2
    assert (await verify(sessionmaker, wf)).ok


async def test_conflicting_records_in_one_batch_are_refused(sessionmaker: Sessions) -> None:
    wf = new_workflow_id()
    conflicting = LedgerBatch(records=[record(wf, 1), record(wf, 1, kind="decision")])
    with pytest.raises(LedgerBatchError):
        await append(sessionmaker, conflicting)
    nan = LedgerBatch(records=[record(wf, 1, payload={"score": float("nan")})])
    with pytest.raises(LedgerBatchError):
        await append(sessionmaker, nan)
    assert await entries(sessionmaker, wf) == []


async def test_evidence_rows_are_written_with_their_entry(sessionmaker: Sessions) -> None:
    wf = new_workflow_id()
    report = evidence_item("eval-report.pdf")
    card = evidence_item("model-card.md", kind="model_card")
    first = record(wf, 1, kind="stage_completed", evidence=[report, card, report])
    ledger_batch = LedgerBatch(records=[first, record(wf, 2)])

    await append(sessionmaker, ledger_batch)
    await append(sessionmaker, ledger_batch)  # a retry adds nothing

    async with session_scope(sessionmaker) as session:
        items = await LedgerRepository(session).evidence(wf)
    assert sorted((i.name, i.kind, i.event_id) for i in items) == [
        ("eval-report.pdf", "evaluation_report", 1),
        ("model-card.md", "model_card", 1),
    ]
    stored = next(i for i in items if i.name == "eval-report.pdf")
    assert stored.sha256 == report.sha256
    assert (stored.scope, stored.round, stored.submitted_by) == ("validation", 1, "dana")
    assert stored.uri == "s3://evidence/eval-report.pdf"
    assert stored.at == T0


# --------------------------------------------------------------------------- tampering


@pytest.fixture
async def chain(sessionmaker: Sessions) -> str:
    wf = new_workflow_id()
    await append(sessionmaker, batch(wf, range(1, 7)))
    assert (await verify(sessionmaker, wf)).ok
    return wf


async def _row(session: AsyncSession, wf: str, seq: int) -> LedgerEntry:
    return (
        await session.scalars(
            select(LedgerEntry).where(LedgerEntry.workflow_id == wf, LedgerEntry.seq == seq)
        )
    ).one()


async def test_edited_payload_is_detected(sessionmaker: Sessions, chain: str) -> None:
    async with session_scope(sessionmaker) as session:
        await session.execute(
            update(LedgerEntry)
            .where(LedgerEntry.workflow_id == chain, LedgerEntry.seq == 3)
            .values(payload={"n": 3, "note": "approved after all"})
        )

    result = await verify(sessionmaker, chain)
    assert (result.ok, result.entries, result.first_bad_seq) == (False, 6, 3)


async def test_edited_actor_is_detected(sessionmaker: Sessions, chain: str) -> None:
    async with session_scope(sessionmaker) as session:
        await session.execute(
            update(LedgerEntry)
            .where(LedgerEntry.workflow_id == chain, LedgerEntry.seq == 5)
            .values(actor="mallory")
        )
    assert (await verify(sessionmaker, chain)).first_bad_seq == 5


async def test_deleted_row_is_detected(sessionmaker: Sessions, chain: str) -> None:
    async with session_scope(sessionmaker) as session:
        await session.execute(
            delete(LedgerEntry).where(LedgerEntry.workflow_id == chain, LedgerEntry.seq == 3)
        )

    result = await verify(sessionmaker, chain)
    # seq 3 is the missing link
    assert (result.ok, result.entries, result.first_bad_seq) == (False, 5, 3)


async def test_inserted_row_is_detected(sessionmaker: Sessions, chain: str) -> None:
    # The strongest insert short of rewriting the whole tail: shift rows 3..6 up by one and
    # put a forged row at seq 3 whose own hash and prev link are correct. The forged row
    # looks fine by itself; the chain breaks at the next row, whose prev link no longer fits.
    async with session_scope(sessionmaker) as session:
        for seq in range(6, 2, -1):  # top-down keeps (workflow_id, seq) unique at every step
            await session.execute(
                update(LedgerEntry)
                .where(LedgerEntry.workflow_id == chain, LedgerEntry.seq == seq)
                .values(seq=seq + 1, event_id=seq + 1)
            )
        previous = await _row(session, chain, 2)
        forged: dict[str, Any] = {
            "workflow_id": chain,
            "seq": 3,
            "at": previous.at + timedelta(seconds=1),
            "kind": "decision",
            "actor": "mallory",
            "channel": "api",
            "payload": {"decision": "approve"},
            "policy_version": "2026.1",
            "prev_hash": previous.hash,
        }
        session.add(
            LedgerEntry(
                **forged,
                use_case_key="forged",
                event_id=3,
                hash=entry_hash(**forged),
            )
        )

    result = await verify(sessionmaker, chain)
    assert (result.ok, result.entries, result.first_bad_seq) == (False, 7, 4)


async def test_inserted_row_with_made_up_hash_is_detected(
    sessionmaker: Sessions, chain: str
) -> None:
    async with session_scope(sessionmaker) as session:
        head = await _row(session, chain, 6)
        session.add(
            LedgerEntry(
                workflow_id=chain,
                use_case_key="forged",
                event_id=7,
                seq=7,
                at=head.at,
                kind="decision",
                actor="mallory",
                channel="api",
                payload={},
                policy_version="2026.1",
                prev_hash=head.hash,
                hash="f" * 64,
            )
        )
    assert (await verify(sessionmaker, chain)).first_bad_seq == 7


async def test_reordered_rows_are_detected(sessionmaker: Sessions, chain: str) -> None:
    # swap positions 2 and 4 (seq and event_id both, so only the hashes can tell)
    async with session_scope(sessionmaker) as session:
        for old, new in ((2, -1), (4, 2), (-1, 4)):
            await session.execute(
                update(LedgerEntry)
                .where(LedgerEntry.workflow_id == chain, LedgerEntry.seq == old)
                .values(seq=new, event_id=new)
            )

    result = await verify(sessionmaker, chain)
    assert (result.ok, result.entries, result.first_bad_seq) == (False, 6, 2)


async def test_verify_all_reports_each_chain(sessionmaker: Sessions, chain: str) -> None:
    intact = new_workflow_id()
    await append(sessionmaker, batch(intact, [1, 2]))
    async with session_scope(sessionmaker) as session:
        await session.execute(
            update(LedgerEntry)
            .where(LedgerEntry.workflow_id == chain, LedgerEntry.seq == 1)
            .values(kind="tampered")
        )
        results = await LedgerRepository(session).verify_all()

    assert results[intact].ok
    assert (results[chain].ok, results[chain].first_bad_seq) == (False, 1)


async def test_empty_chain_verifies(sessionmaker: Sessions) -> None:
    result = await verify(sessionmaker, new_workflow_id())
    assert (result.ok, result.entries, result.first_bad_seq) == (True, 0, None)
