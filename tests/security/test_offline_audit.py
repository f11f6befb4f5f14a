"""The issue's attacks by a database administrator with write access, each caught by offline
verification of the evidence pack against the signed checkpoints (services/tlog/auditor.py),
naming the first bad entry or the inconsistent checkpoint pair. On SQLite and PostgreSQL.

Every attack here passes the database's own ``verify`` (the chain is re-hashed with the
published recipe, or its count fixed up in the registry): that is what the old ledger could
not tell apart from an honest one.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.store.db import session_scope
from services.store.ledger import LedgerRepository, entry_hash
from services.store.models import (
    EvidenceItem,
    LedgerEntry,
    LedgerLeaf,
    LedgerLog,
    LedgerRunHead,
    UseCase,
)
from services.store.registry import RegistryRepository
from services.tlog.auditor import Verifier, entry_leaf_hash, verify_pack
from services.tlog.checkpoints import WitnessClient
from services.tlog.merkle import Frontier
from tests.security.witness import LoopbackWitness
from tests.store.factories import new_workflow_id, registry_row
from tests.store.tlog import RITA_DECISION_SEQ, Sessions, SigningLog, entry, high_tier_run
from workflows.model import EventKind


@pytest.fixture
def log(sessionmaker: Sessions, tmp_path: Path) -> SigningLog:
    return SigningLog(sessionmaker, tmp_path / "checkpoints")


async def released(log: SigningLog) -> tuple[str, str, dict[str, Any]]:
    """Two runs logged and checkpointed (a neighbour interleaved), one of them registered;
    returns the audited run's id, its neighbour's, and its honest pack."""
    wf, neighbour = new_workflow_id(), new_workflow_id()
    for ours, theirs in zip(high_tier_run(wf), high_tier_run(neighbour, "low"), strict=True):
        await log.append(ours)
        await log.append(theirs)
    await log.checkpoint()
    async with session_scope(log.sessionmaker) as session:
        await RegistryRepository(session).upsert(registry_row(wf, event_id=11, risk_tier="high"))
    pack = await log.pack(wf)
    report = log.verify(pack)
    assert report.ok, report.problems
    assert report.proven_entries == 11
    return wf, neighbour, pack


async def rehash(session: AsyncSession, workflow_id: str, start: int) -> None:
    """The published recipe, applied from ``start`` on: the chain verifies again."""
    rows = (
        await session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.workflow_id == workflow_id, LedgerEntry.seq >= start - 1)
            .order_by(LedgerEntry.seq)
        )
    ).all()
    prev = rows[0].hash if rows[0].seq == start - 1 else "0" * 64
    for row in rows:
        if row.seq < start:
            continue
        row.prev_hash = prev
        row.hash = entry_hash(
            workflow_id=row.workflow_id,
            seq=row.seq,
            at=row.at,
            kind=row.kind,
            actor=row.actor,
            channel=row.channel,
            payload=row.payload,
            policy_version=row.policy_version,
            prev_hash=prev,
        )
        prev = row.hash


async def db_verify_ok(log: SigningLog, workflow_id: str) -> bool:
    async with session_scope(log.sessionmaker) as session:
        return (await LedgerRepository(session).verify(workflow_id)).ok


# --------------------------------------------------------------------------- the attacks


async def test_rewrite_and_rehash_names_the_rewritten_decision(log: SigningLog) -> None:
    wf, _, _ = await released(log)
    async with session_scope(log.sessionmaker) as session:
        row = (
            await session.scalars(
                select(LedgerEntry).where(
                    LedgerEntry.workflow_id == wf, LedgerEntry.seq == RITA_DECISION_SEQ
                )
            )
        ).one()
        assert row.payload["decision"] == "request_changes"
        row.payload = {**row.payload, "decision": "approve", "comment": "looks good"}
        await session.flush()
        await rehash(session, wf, RITA_DECISION_SEQ)
    assert await db_verify_ok(log, wf)  # the database alone is fooled

    pack = await log.pack(wf)
    decision = next(d for d in pack["decisions"] if d["seq"] == RITA_DECISION_SEQ)
    assert (decision["decision"], decision["comment"]) == ("approve", "looks good")
    report = log.verify(pack)
    assert not report.ok
    assert report.first_bad_seq == RITA_DECISION_SEQ
    assert any("not in the signed tree" in p for p in report.problems)


async def test_rewrite_with_the_log_rewritten_too_breaks_every_proof(log: SigningLog) -> None:
    wf, neighbour, _ = await released(log)
    async with session_scope(log.sessionmaker) as session:
        await session.execute(
            update(LedgerEntry)
            .where(LedgerEntry.workflow_id == wf, LedgerEntry.seq == RITA_DECISION_SEQ)
            .values(actor="mallory")
        )
        await rehash(session, wf, RITA_DECISION_SEQ)
        # and the leaves, heads and frontier recomputed from the rewritten entries
        for row in await LedgerRepository(session).entries(wf):
            leaf = entry_leaf_hash(row.hash)
            await session.execute(
                update(LedgerLeaf)
                .where(LedgerLeaf.workflow_id == wf, LedgerLeaf.seq == row.seq)
                .values(leaf_hash=leaf)
            )
        await _refrontier(session)
    report = log.verify(await log.pack(wf))
    assert not report.ok
    assert report.first_bad_seq == 1
    assert any("the log itself was rewritten" in p for p in report.problems)
    # and the neighbour's pack, untouched rows and all, fails against the signed root too
    assert not log.verify(await log.pack(neighbour)).ok


async def test_tail_deletion_names_the_first_deleted_entry(log: SigningLog) -> None:
    wf, _, _ = await released(log)
    async with session_scope(log.sessionmaker) as session:
        await session.execute(
            delete(LedgerEntry).where(LedgerEntry.workflow_id == wf, LedgerEntry.seq >= 9)
        )
        # the registry's count fixed up: the database's verify sees a complete run
        await session.execute(update(UseCase).where(UseCase.workflow_id == wf).values(event_id=8))
    assert await db_verify_ok(log, wf)

    report = log.verify(await log.pack(wf))
    assert not report.ok
    assert report.first_bad_seq == 9
    assert any("missing from the chain" in p for p in report.problems)


async def test_tail_deletion_with_its_leaves_is_caught_by_the_run_head(log: SigningLog) -> None:
    wf, _, _ = await released(log)
    async with session_scope(log.sessionmaker) as session:
        await session.execute(
            delete(LedgerEntry).where(LedgerEntry.workflow_id == wf, LedgerEntry.seq >= 9)
        )
        await session.execute(
            delete(LedgerLeaf).where(LedgerLeaf.workflow_id == wf, LedgerLeaf.seq >= 9)
        )
    report = log.verify(await log.pack(wf))
    assert not report.ok
    assert report.first_bad_seq == 1  # no proof reaches the signed root any more


async def test_whole_run_deletion_is_named_from_its_first_entry(log: SigningLog) -> None:
    wf, _, _ = await released(log)
    async with session_scope(log.sessionmaker) as session:
        await session.execute(delete(LedgerEntry).where(LedgerEntry.workflow_id == wf))
        await session.execute(delete(EvidenceItem).where(EvidenceItem.workflow_id == wf))
        await session.execute(delete(UseCase).where(UseCase.workflow_id == wf))
    pack = await log.pack(wf)
    assert pack["ledger"]["chain"] == []
    report = log.verify(pack)
    assert not report.ok
    assert report.first_bad_seq == 1
    assert any("ends at seq 0" in p for p in report.problems)


async def test_whole_run_deletion_from_the_log_breaks_everyone_elses_proofs(
    log: SigningLog,
) -> None:
    wf, neighbour, _ = await released(log)
    async with session_scope(log.sessionmaker) as session:
        for model in (LedgerEntry, LedgerLeaf, LedgerRunHead, EvidenceItem, UseCase):
            await session.execute(delete(model).where(model.workflow_id == wf))
        # renumber what is left so the tree has no holes
        leaves = (await session.scalars(select(LedgerLeaf).order_by(LedgerLeaf.leaf_index))).all()
        for new_index, leaf in enumerate(leaves):
            leaf.leaf_index = -1 - new_index
        await session.flush()
        for leaf in leaves:
            leaf.leaf_index = -1 - leaf.leaf_index
        await session.flush()
        await _refrontier(session)
    report = log.verify(await log.pack(neighbour))
    assert not report.ok
    assert report.first_bad_seq == 1


async def test_side_table_edits_change_nothing_an_auditor_reads(log: SigningLog) -> None:
    wf, _, honest = await released(log)
    async with session_scope(log.sessionmaker) as session:
        await session.execute(
            update(EvidenceItem)
            .where(EvidenceItem.workflow_id == wf)
            .values(uri="s3://attacker/forged.pdf", sha256="f" * 64)
        )
        await session.execute(
            update(UseCase).where(UseCase.workflow_id == wf).values(stage="scoping")
        )
    pack = await log.pack(wf)
    for section in ("use_case", "owners", "decisions", "evidence", "gates_passed"):
        assert pack[section] == honest[section], section
    assert log.verify(pack).ok

    # a pack that shows side-table facts (what the previous builder did) is refused
    forged = copy.deepcopy(pack)
    forged["evidence"][0]["uri"] = "s3://attacker/forged.pdf"
    report = log.verify(forged)
    assert not report.ok
    assert report.first_bad_seq == forged["evidence"][0]["ledger_seq"]
    staged = copy.deepcopy(pack)
    staged["use_case"]["stage"] = "scoping"
    assert log.verify(staged).first_bad_seq == 11


async def test_reordering_with_a_rehash_names_the_first_moved_entry(log: SigningLog) -> None:
    wf, _, _ = await released(log)
    async with session_scope(log.sessionmaker) as session:
        for old, new in ((2, -1), (4, 2), (-1, 4)):
            await session.execute(
                update(LedgerEntry)
                .where(LedgerEntry.workflow_id == wf, LedgerEntry.seq == old)
                .values(seq=new, event_id=new)
            )
        await rehash(session, wf, 2)
    assert await db_verify_ok(log, wf)
    report = log.verify(await log.pack(wf))
    assert not report.ok
    assert report.first_bad_seq == 2


async def fork(log: SigningLog, workflow_id: str) -> tuple[int, int]:
    """The administrator rolls the log back to before the audited run's last entry, forges
    that entry (mallory decides go-live) and lets the worker sign the same size again.
    Returns the forked size and how many checkpoints were signed before."""
    size, before = log.signed[-1].size, len(log.signed)
    async with session_scope(log.sessionmaker) as session:
        dropped = (
            await session.scalars(select(LedgerLeaf).where(LedgerLeaf.leaf_index >= size - 2))
        ).all()
        for leaf in dropped:
            await session.execute(
                delete(LedgerEntry).where(
                    LedgerEntry.workflow_id == leaf.workflow_id, LedgerEntry.seq == leaf.seq
                )
            )
            await session.delete(leaf)
        await session.flush()
        await _refrontier(session, checkpoint=log.signed[-2])
    forged = entry(workflow_id, 11, EventKind.DECISION, "mallory", {"stage": "go_live", "round": 1})
    neighbour = next(leaf.workflow_id for leaf in dropped if leaf.workflow_id != workflow_id)
    await log.append(forged)
    await log.append(high_tier_run(neighbour, "low")[-1])
    forked = await log.checkpoint()
    assert forked is not None
    assert forked.size == size
    return size, before


async def test_forked_history_shown_to_two_auditors(log: SigningLog, tmp_path: Path) -> None:
    wf, _, _ = await released(log)
    auditor_a = tmp_path / "auditor-a"  # auditor A copies the checkpoints and the pack now
    shutil.copytree(log.directory, auditor_a)
    pack_a = await log.pack(wf)
    assert log.verify(pack_a, auditor_a).ok

    size, before = await fork(log, wf)
    original = log.signed[before - 1].checkpoint.root
    assert log.signed[-1].checkpoint.root != original  # two trees of one size

    # auditor B is shown the forked view only: on its own it is a consistent log
    auditor_b = tmp_path / "auditor-b"
    auditor_b.mkdir()
    for path in auditor_a.iterdir():
        if not path.name.startswith(f"{size:020d}."):
            shutil.copy(path, auditor_b / path.name)
    for path in log.directory.glob(f"{size:020d}.*.*"):  # the fork, kept beside the original
        stem, _, suffix = path.name.rpartition(".")
        shutil.copy(path, auditor_b / f"{size:020d}.{suffix}")
    for path in log.directory.iterdir():
        if not (auditor_b / path.name).exists() and not path.name.startswith(f"{size:020d}"):
            shutil.copy(path, auditor_b / path.name)
    pack_b = await log.pack(wf)
    assert log.verify(pack_b, auditor_b).ok

    # pooled, the two views are caught: two trees of one size, both files named
    report = log.verify(pack_b, auditor_a, auditor_b)
    assert not report.ok
    assert report.bad_checkpoints == (
        str(auditor_a / f"{size:020d}.note"),
        str(auditor_b / f"{size:020d}.note"),
    )
    assert any(f"two trees of size {size}" in p for p in report.problems)
    # the log's own directory kept both trees: A's pack checked against it is caught too
    assert not log.verify(pack_a, log.directory).ok
    assert log.verify(pack_a, auditor_a).ok  # (A's copy alone cannot know)


async def test_a_witness_refuses_the_fork_and_a_missing_cosignature_is_caught(
    sessionmaker: Sessions, tmp_path: Path
) -> None:
    log = SigningLog(sessionmaker, tmp_path / "checkpoints")
    witness = LoopbackWitness(log.keys)
    await witness.start()
    try:
        async with httpx.AsyncClient() as http:
            log.witness = WitnessClient(http, witness.url, witness.vkey)
            wf, _, _ = await released(log)
            honest = log.signed[-1]
            assert witness.cosigned[-1] == honest.size
            trusted = [Verifier.parse(witness.vkey)]
            report = verify_pack(await log.pack(wf), log.keys, [log.directory], trusted)
            assert report.ok, report.problems
            assert any("cosigned by witness.test/w1" in n for n in report.notes)

            size, _ = await fork(log, wf)
            assert (size, "same size, another root: a fork") in witness.refused
            report = verify_pack(await log.pack(wf), log.keys, [], trusted)
            assert not report.ok
            assert any("no cosignature" in p for p in report.problems)
    finally:
        await witness.stop()


async def _refrontier(session: AsyncSession, checkpoint: Any = None) -> None:
    """What an administrator covering their tracks does to the log's state row: size,
    frontier and run heads recomputed from the leaves as they now are."""
    leaves = (await session.scalars(select(LedgerLeaf).order_by(LedgerLeaf.leaf_index))).all()
    frontier = Frontier()
    heads: dict[str, LedgerLeaf] = {}
    for leaf in leaves:
        frontier.append(bytes(leaf.leaf_hash))
        heads[leaf.workflow_id] = leaf
    values: dict[str, Any] = {"size": frontier.size, "frontier": [n.hex() for n in frontier.nodes]}
    if checkpoint is not None:
        values.update(
            checkpoint_size=checkpoint.size, checkpoint_root=checkpoint.checkpoint.root.hex()
        )
    await session.execute(update(LedgerLog).values(**values))
    await session.execute(delete(LedgerRunHead))
    for leaf in heads.values():
        session.add(
            LedgerRunHead(
                workflow_id=leaf.workflow_id,
                seq=leaf.seq,
                leaf_index=leaf.leaf_index,
                leaf_hash=leaf.leaf_hash,
            )
        )
