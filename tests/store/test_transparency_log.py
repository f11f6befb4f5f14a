"""The transparency log in the store: leaf indexes assigned in the append transaction
(contiguous, once per entry, under concurrent appends and retries), the checkpoint cadence,
consistency between checkpoints, and the migration that backfills existing entries."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.store.db import make_engine, make_sessionmaker, session_scope
from services.store.ledger import LedgerRepository
from services.store.migrate import alembic_config
from services.store.models import LedgerCheckpoint, LedgerEntry, LedgerLeaf
from services.store.transparency import TransparencyLogRepository
from services.tlog.auditor import Checkpoint, entry_leaf_hash, open_note, verify_consistency
from services.tlog.checkpoints import CheckpointPolicy
from services.tlog.merkle import Tree
from tests.store.factories import batch, new_workflow_id, record
from tests.store.tlog import Sessions, SigningLog, entry, high_tier_run
from workflows.activities import LedgerBatch, LedgerRecord
from workflows.model import EventKind


async def leaves(sessionmaker: Sessions) -> list[LedgerLeaf]:
    async with session_scope(sessionmaker) as session:
        return list(await session.scalars(select(LedgerLeaf).order_by(LedgerLeaf.leaf_index)))


async def assert_log_matches_ledger(sessionmaker: Sessions) -> list[LedgerLeaf]:
    """One leaf per entry, indexes 0..n-1, each leaf the entry's, and the kept frontier's
    root equal to the root recomputed from all leaves."""
    stored = await leaves(sessionmaker)
    async with session_scope(sessionmaker) as session:
        rows = {(r.workflow_id, r.seq): r for r in await session.scalars(select(LedgerEntry))}
        repo = TransparencyLogRepository(session)
        size = await repo.size()
        policy = CheckpointPolicy(SigningLog(sessionmaker, Path()).signer, every=1)
        signed = await repo.checkpoint_if_due(policy)
    assert [leaf.leaf_index for leaf in stored] == list(range(len(rows)))
    assert size == len(rows)
    assert {(leaf.workflow_id, leaf.seq) for leaf in stored} == set(rows)
    for leaf in stored:
        assert bytes(leaf.leaf_hash) == entry_leaf_hash(rows[(leaf.workflow_id, leaf.seq)].hash)
    if rows:
        assert signed is not None
        assert signed.checkpoint.root == Tree([bytes(x.leaf_hash) for x in stored]).root
    return stored


async def test_leaves_follow_append_order_and_retries_add_none(sessionmaker: Sessions) -> None:
    first, second = new_workflow_id(), new_workflow_id()
    async with session_scope(sessionmaker) as session:
        await LedgerRepository(session).append(batch(first, [1, 2]))
    async with session_scope(sessionmaker) as session:
        await LedgerRepository(session).append(batch(second, [1]))
    for _ in range(2):  # a retried activity: same batch, nothing new
        async with session_scope(sessionmaker) as session:
            await LedgerRepository(session).append(batch(first, [1, 2, 3]))
    stored = await assert_log_matches_ledger(sessionmaker)
    assert [(x.workflow_id, x.seq) for x in stored] == [
        (first, 1),
        (first, 2),
        (second, 1),
        (first, 3),
    ]


async def test_concurrent_appends_of_many_runs_get_contiguous_leaves(
    sessionmaker: Sessions,
) -> None:
    runs = [new_workflow_id() for _ in range(6)]

    async def drive(workflow_id: str) -> None:
        for event_id in range(1, 9):
            async with session_scope(sessionmaker) as session:
                await LedgerRepository(session).append(batch(workflow_id, [event_id]))

    async def retry_twice(workflow_id: str) -> None:
        # two attempts of one activity racing (a retry after a lost heartbeat)
        await asyncio.gather(
            *(_append(sessionmaker, batch(workflow_id, range(1, 9))) for _ in "ab")
        )

    await asyncio.gather(
        *(drive(wf) for wf in runs), *(retry_twice(new_workflow_id()) for _ in "xyz")
    )
    stored = await assert_log_matches_ledger(sessionmaker)
    assert len(stored) == 9 * 8


async def _append(sessionmaker: Sessions, ledger_batch: LedgerBatch) -> int:
    async with session_scope(sessionmaker) as session:
        return await LedgerRepository(session).append(ledger_batch)


async def test_cadence_every_n_entries_and_at_high_tier_decisions(
    sessionmaker: Sessions, tmp_path: Path
) -> None:
    log = SigningLog(sessionmaker, tmp_path, every=4)
    low = new_workflow_id()
    for event_id in range(1, 10):
        await log.append(record(low, event_id))
    # the first entry, then every 4 entries
    assert [s.size for s in log.signed] == [1, 5, 9]

    high = new_workflow_id()
    run = high_tier_run(high)
    for item in run:
        await log.append(item)
    gate_decisions = [
        9 + n
        for n, item in enumerate(run, start=1)
        if item.kind in (EventKind.DECISION, EventKind.GATE_PASSED)
    ]
    assert set(gate_decisions) <= {s.size for s in log.signed}
    # a low-tier run's decisions wait for the cadence
    low_run = high_tier_run(new_workflow_id(), "low")
    before = len(log.signed)
    for item in low_run[:6]:
        await log.append(item)
    assert len(log.signed) - before == 1  # one checkpoint in 6 entries (every 4)

    # consecutive checkpoints are consistent, and each is in the directory with its proof
    async with session_scope(sessionmaker) as session:
        repo = TransparencyLogRepository(session)
        tree = await repo.tree(await repo.size())
    for older, newer in zip(log.signed, log.signed[1:], strict=False):
        assert newer.old_size == older.size
        proof = (await _tree(sessionmaker, newer.size)).consistency_proof(older.size)
        assert verify_consistency(
            older.size, newer.size, older.checkpoint.root, newer.checkpoint.root, proof
        )
        link = (tmp_path / f"{newer.size:020d}.consistency").read_text().splitlines()
        assert link[0] == f"old {older.size}"
        note = (tmp_path / f"{newer.size:020d}.note").read_text()
        assert Checkpoint.parse(open_note(note, log.keys)[0].text) == newer.checkpoint
    assert tree.size == 9 + len(run) + 6


async def _tree(sessionmaker: Sessions, size: int) -> Tree:
    async with session_scope(sessionmaker) as session:
        return await TransparencyLogRepository(session).tree(size)


async def test_cadence_after_t_seconds(sessionmaker: Sessions, tmp_path: Path) -> None:
    log = SigningLog(sessionmaker, tmp_path, every=1000)
    wf = new_workflow_id()
    await log.append(record(wf, 1))
    await log.append(record(wf, 2))
    assert [s.size for s in log.signed] == [1]
    policy = CheckpointPolicy(log.signer, every=1000, seconds=30)
    async with session_scope(sessionmaker) as session:
        repo = TransparencyLogRepository(session)
        soon = datetime.now(UTC) + timedelta(seconds=5)
        assert await repo.checkpoint_if_due(policy, now=soon) is None
    async with session_scope(sessionmaker) as session:
        later = datetime.now(UTC) + timedelta(seconds=31)
        signed = await TransparencyLogRepository(session).checkpoint_if_due(policy, now=later)
    assert signed is not None
    assert (signed.size, signed.old_size) == (2, 1)
    async with session_scope(sessionmaker) as session:
        # nothing new since: no checkpoint however long it waits
        much_later = later + timedelta(hours=1)
        assert (
            await TransparencyLogRepository(session).checkpoint_if_due(policy, now=much_later)
            is None
        )
        stored = await session.scalar(select(func.count()).select_from(LedgerCheckpoint))
    assert stored == 2


async def test_a_retried_append_signs_no_second_checkpoint(
    sessionmaker: Sessions, tmp_path: Path
) -> None:
    log = SigningLog(sessionmaker, tmp_path, every=1)
    wf = new_workflow_id()
    first = entry(wf, 1, EventKind.RUN_STARTED, "dana", {"stage": "scoping", "round": 1})
    await log.append(first)
    await log.append(first)
    assert [s.size for s in log.signed] == [1]


# --------------------------------------------------------------------------- migration

PREVIOUS = "e4c38e8e21fd"


async def test_migration_backfills_leaves_in_append_order(empty_db_url: str) -> None:
    config = alembic_config(empty_db_url)
    await asyncio.to_thread(command.upgrade, config, PREVIOUS)
    engine = make_engine(empty_db_url)
    try:
        sessions = make_sessionmaker(engine)
        # entries written by the previous version (no leaves yet): two runs interleaved
        a, b = new_workflow_id(), new_workflow_id()
        async with engine.begin() as connection:
            await _legacy_append(connection, [record(a, 1), record(a, 2)])
            await _legacy_append(connection, [record(b, 1)])
            await _legacy_append(connection, [record(a, 3)])
        await asyncio.to_thread(command.upgrade, config, "head")

        stored = await assert_log_matches_ledger(sessions)
        assert [(x.workflow_id, x.seq) for x in stored] == [(a, 1), (a, 2), (b, 1), (a, 3)]
        # and appends go on from there
        async with session_scope(sessions) as session:
            await LedgerRepository(session).append(batch(b, [2]))
        assert (await assert_log_matches_ledger(sessions))[-1].leaf_index == 4
    finally:
        await engine.dispose()


async def _legacy_append(connection: AsyncConnection, records: list[LedgerRecord]) -> None:
    """Rows exactly as the previous version wrote them (the chain, without the log)."""
    session = AsyncSession(bind=connection)
    repo = LedgerRepository(session)
    for item in records:
        await repo._append_chain(item.workflow_id, [item])
    await session.flush()
    await session.close()
