"""The transparency log's tables: leaves in append order, run heads, the log's state row and
the signed checkpoints (services/tlog has the hashing, proofs and signing).

Leaf indexes are taken in the append transaction by one ``UPDATE ledger_log SET size = size +
n … RETURNING``: on PostgreSQL the row lock it takes holds until commit, so concurrent appends
from several runs queue there and get contiguous ranges in commit order; on SQLite the UPDATE
is the transaction's first write after the ledger rows, and SQLite's single writer lock gives
the same order. A transaction that rolls back (a lost race on the ledger's unique keys) gives
its range back with it, so the tree never has holes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.store.models import (
    LedgerCheckpoint,
    LedgerEntry,
    LedgerLeaf,
    LedgerLog,
    LedgerRunHead,
)
from services.tlog import checkpoints as cp
from services.tlog.auditor import entry_leaf_hash, leaf_hash, run_head_leaf
from services.tlog.merkle import Frontier, Tree
from workflows.model import EventKind

LOG_ROW = 1
# the state row's table, for Core statements with RETURNING
_LOG = cast(Table, LedgerLog.__table__)
# decisions at a gate: a high-tier run's checkpoint is due at each of them
_GATE_DECISIONS = {EventKind.DECISION.value, EventKind.GATE_PASSED.value}


class LogIncomplete(RuntimeError):
    """The leaves table lacks an index the tree needs (rows were deleted)."""


@dataclass(frozen=True)
class RunHead:
    workflow_id: str
    seq: int
    leaf_index: int
    leaf_hash: bytes

    def leaf(self) -> bytes:
        return leaf_hash(run_head_leaf(self.workflow_id, self.seq, self.leaf_index, self.leaf_hash))


@dataclass(frozen=True)
class RunLeaf:
    seq: int
    leaf_index: int
    leaf_hash: bytes


def heads_tree(heads: Sequence[RunHead]) -> Tree:
    """The run-heads tree: one leaf per run, sorted by workflow id."""
    return Tree([h.leaf() for h in sorted(heads, key=lambda h: h.workflow_id)])


class TransparencyLogRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ------------------------------------------------------------------ append path

    async def assign(self, entries: Sequence[LedgerEntry]) -> int:
        """Give ``entries`` (new, flushed, in append order) their leaves; returns the new size.

        Takes the log lock for the rest of the transaction: call it after the ledger rows are
        flushed, so the lock is held as briefly as possible and never while waiting on them.
        """
        state = await self._take(len(entries))
        if state is None:
            await self._create_state()
            state = await self._take(len(entries))
        if state is None:
            raise LogIncomplete("ledger_log has no state row")
        size, nodes = int(state.size), list(state.frontier)
        start = size - len(entries)
        frontier = Frontier(start, [bytes.fromhex(n) for n in nodes])
        newest: dict[str, dict[str, Any]] = {}
        leaves = []
        for offset, entry in enumerate(entries):
            leaf = entry_leaf_hash(entry.hash)
            index = start + offset
            row = {
                "leaf_index": index,
                "workflow_id": entry.workflow_id,
                "seq": entry.seq,
                "leaf_hash": leaf,
            }
            leaves.append(row)
            newest[entry.workflow_id] = row
            frontier.append(leaf)
        await self.session.execute(insert(LedgerLeaf), leaves)
        await self._upsert_heads(list(newest.values()))
        await self.session.execute(
            update(_LOG)
            .where(_LOG.c.id == LOG_ROW)
            .values(frontier=[n.hex() for n in frontier.nodes])
        )
        return size

    async def _take(self, count: int) -> Any:
        """Grow the log by ``count`` and lock its state row: the serialization point."""
        return (
            await self.session.execute(
                update(_LOG)
                .where(_LOG.c.id == LOG_ROW)
                .values(size=_LOG.c.size + count)
                .returning(_LOG.c.size, _LOG.c.frontier)
            )
        ).one_or_none()

    async def _create_state(self) -> None:
        """The state row of an empty log (a store emptied by hand: the migration makes it).
        A concurrent creator's row wins; a log whose leaves outlived its row then fails on
        the leaves' primary key instead of restarting at zero."""
        dialect = (await self.session.connection()).dialect.name
        dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        await self.session.execute(
            dialect_insert(LedgerLog)
            .values(id=LOG_ROW, size=0, frontier=[])
            .on_conflict_do_nothing(index_elements=[LedgerLog.id])
        )

    async def _upsert_heads(self, rows: list[dict[str, Any]]) -> None:
        dialect = (await self.session.connection()).dialect.name
        dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = dialect_insert(LedgerRunHead)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[LedgerRunHead.workflow_id],
                set_={
                    "seq": statement.excluded.seq,
                    "leaf_index": statement.excluded.leaf_index,
                    "leaf_hash": statement.excluded.leaf_hash,
                },
            ),
            rows,
        )

    async def high_tier_decision(self, entries: Sequence[LedgerEntry]) -> bool:
        """Whether ``entries`` hold a gate decision of a high-tier run (tier from the run's
        own ``run_started`` entry)."""
        deciding = {e.workflow_id for e in entries if e.kind in _GATE_DECISIONS}
        for workflow_id in deciding:
            started = next(
                (e for e in entries if e.workflow_id == workflow_id and e.seq == 1), None
            )
            payload = (
                started.payload
                if started is not None
                else await self.session.scalar(
                    select(LedgerEntry.payload).where(
                        LedgerEntry.workflow_id == workflow_id, LedgerEntry.seq == 1
                    )
                )
            )
            if isinstance(payload, dict) and payload.get("risk_tier") == cp.HIGH_TIER:
                return True
        return False

    async def checkpoint_if_due(
        self,
        policy: cp.CheckpointPolicy,
        *,
        now: datetime | None = None,
        decision_of_high_tier: bool = False,
        lock: bool = True,
    ) -> cp.SignedCheckpoint | None:
        """Sign a checkpoint of the current tree when the policy says it is due. ``lock``:
        take the log lock first (the append path already holds it)."""
        table = _LOG
        if lock:
            # a no-op write: the row lock on PostgreSQL, the database's write lock on SQLite
            # (a read first would not serialize with appends there)
            read: Any = (
                update(table)
                .where(table.c.id == LOG_ROW)
                .values(size=table.c.size)
                .returning(table)
            )
        else:
            read = select(table).where(table.c.id == LOG_ROW)
        state = (await self.session.execute(read)).first()
        if state is None:
            return None
        now = now or datetime.now(UTC)
        last_at = state.checkpoint_at
        if last_at is not None and last_at.tzinfo is None:
            last_at = last_at.replace(tzinfo=UTC)
        if not policy.due(
            size=state.size,
            last_size=state.checkpoint_size,
            last_at=last_at,
            now=now,
            decision_of_high_tier=decision_of_high_tier,
        ):
            return None
        frontier = Frontier(state.size, [bytes.fromhex(n) for n in state.frontier])
        heads = heads_tree(await self.current_heads())
        signed = cp.sign(
            policy,
            size=state.size,
            root=frontier.root,
            heads_count=heads.size,
            heads_root=heads.root,
            old_size=state.checkpoint_size,
            old_root=bytes.fromhex(state.checkpoint_root) if state.checkpoint_root else None,
        )
        self.session.add(
            LedgerCheckpoint(
                size=signed.size,
                root=signed.checkpoint.root.hex(),
                old_size=signed.old_size,
                note=signed.note,
                created_at=now,
            )
        )
        await self.session.execute(
            update(table)
            .where(table.c.id == LOG_ROW)
            .values(
                checkpoint_size=signed.size,
                checkpoint_root=signed.checkpoint.root.hex(),
                checkpoint_at=now,
            )
        )
        return signed

    # ------------------------------------------------------------------ reads

    async def size(self) -> int:
        return int(await self.session.scalar(select(LedgerLog.size)) or 0)

    async def current_heads(self) -> list[RunHead]:
        rows = await self.session.execute(
            select(
                LedgerRunHead.workflow_id,
                LedgerRunHead.seq,
                LedgerRunHead.leaf_index,
                LedgerRunHead.leaf_hash,
            )
        )
        return [RunHead(r.workflow_id, r.seq, r.leaf_index, bytes(r.leaf_hash)) for r in rows]

    async def heads_at(self, size: int) -> list[RunHead]:
        """Each run's newest leaf below ``size`` (what a checkpoint of that size committed to).
        Runs that grew since then are looked up; the rest is the kept head."""
        heads = []
        for head in await self.current_heads():
            if head.leaf_index < size:
                heads.append(head)
                continue
            row = (
                await self.session.execute(
                    select(LedgerLeaf.seq, LedgerLeaf.leaf_index, LedgerLeaf.leaf_hash)
                    .where(LedgerLeaf.workflow_id == head.workflow_id, LedgerLeaf.leaf_index < size)
                    .order_by(LedgerLeaf.seq.desc())
                    .limit(1)
                )
            ).first()
            if row is not None:
                heads.append(
                    RunHead(head.workflow_id, row.seq, row.leaf_index, bytes(row.leaf_hash))
                )
        return heads

    async def leaves_below(self, size: int) -> list[bytes]:
        """Leaf hashes ``0 .. size-1``; ``LogIncomplete`` names the first missing index."""
        return await self.leaves_between(0, size)

    async def leaves_between(self, start: int, end: int) -> list[bytes]:
        """Leaf hashes ``start .. end-1``; ``LogIncomplete`` names the first missing index."""
        rows = await self.session.execute(
            select(LedgerLeaf.leaf_index, LedgerLeaf.leaf_hash)
            .where(LedgerLeaf.leaf_index >= start, LedgerLeaf.leaf_index < end)
            .order_by(LedgerLeaf.leaf_index)
        )
        leaves = []
        for expected, row in enumerate(rows, start=start):
            if row.leaf_index != expected:
                raise LogIncomplete(f"leaf {expected} is missing from the log")
            leaves.append(bytes(row.leaf_hash))
        if len(leaves) != end - start:
            missing = start + len(leaves)
            raise LogIncomplete(f"leaf {missing} is missing from the log (size {end})")
        return leaves

    async def tree(self, size: int) -> Tree:
        return Tree(await self.leaves_below(size))

    async def run_leaves(self, workflow_id: str) -> list[RunLeaf]:
        rows = await self.session.execute(
            select(LedgerLeaf.seq, LedgerLeaf.leaf_index, LedgerLeaf.leaf_hash)
            .where(LedgerLeaf.workflow_id == workflow_id)
            .order_by(LedgerLeaf.seq)
        )
        return [RunLeaf(r.seq, r.leaf_index, bytes(r.leaf_hash)) for r in rows]

    async def has_run(self, workflow_id: str) -> bool:
        found = await self.session.scalar(
            select(LedgerRunHead.workflow_id).where(LedgerRunHead.workflow_id == workflow_id)
        )
        return found is not None

    async def checkpoints(self) -> Sequence[LedgerCheckpoint]:
        result = await self.session.scalars(
            select(LedgerCheckpoint).order_by(LedgerCheckpoint.size, LedgerCheckpoint.id)
        )
        return result.all()

    async def checkpoint(self, size: int, root: bytes) -> LedgerCheckpoint | None:
        result = await self.session.scalars(
            select(LedgerCheckpoint).where(
                LedgerCheckpoint.size == size, LedgerCheckpoint.root == root.hex()
            )
        )
        return result.first()
