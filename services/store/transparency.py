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
from typing import Any, Protocol, cast

from sqlalchemy import Table, bindparam, insert, select, update
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
# the tables, for Core statements (no ORM bookkeeping on the append path)
_LOG = cast(Table, LedgerLog.__table__)
_LEAVES = cast(Table, LedgerLeaf.__table__)
_HEADS = cast(Table, LedgerRunHead.__table__)
# decisions at a gate: a high-tier run's checkpoint is due at each of them
_GATE_DECISIONS = {EventKind.DECISION.value, EventKind.GATE_PASSED.value}


class LogIncomplete(RuntimeError):
    """The leaves table lacks an index the tree needs (rows were deleted)."""


class Appended(Protocol):
    """What the log needs of a ledger entry just written (a ``LedgerEntry`` has it)."""

    @property
    def workflow_id(self) -> str: ...

    @property
    def seq(self) -> int: ...

    @property
    def kind(self) -> str: ...

    @property
    def payload(self) -> dict[str, Any]: ...

    @property
    def hash(self) -> str: ...


# The append path's statements, built once: building and cache-keying them per call cost more
# CPU than running them (bench/store_persist.py). Values go in as parameters.
# the serialization point: grow the log and lock its state row (see ``_take``)
_TAKE = (
    update(_LOG)
    .where(_LOG.c.id == LOG_ROW)
    .values(size=_LOG.c.size + bindparam("count"))
    .returning(
        _LOG.c.size,
        _LOG.c.frontier,
        _LOG.c.checkpoint_size,
        _LOG.c.checkpoint_root,
        _LOG.c.checkpoint_at,
    )
)
_SET_FRONTIER = update(_LOG).where(_LOG.c.id == LOG_ROW).values(frontier=bindparam("nodes"))
_INSERT_LEAVES = insert(_LEAVES)
# the run_started payloads of runs (their tier)
_ENTRIES = cast(Table, LedgerEntry.__table__)
_STARTS = select(_ENTRIES.c.payload).where(
    _ENTRIES.c.workflow_id.in_(bindparam("workflow_ids", expanding=True)), _ENTRIES.c.seq == 1
)


def _heads_upsert(dialect: str) -> Any:
    statement = _HEADS_UPSERTS.get(dialect)
    if statement is None:
        dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        proposed = dialect_insert(_HEADS)
        statement = proposed.on_conflict_do_update(
            index_elements=[_HEADS.c.workflow_id],
            set_={
                "seq": proposed.excluded.seq,
                "leaf_index": proposed.excluded.leaf_index,
                "leaf_hash": proposed.excluded.leaf_hash,
            },
        )
        _HEADS_UPSERTS[dialect] = statement
    return statement


_HEADS_UPSERTS: dict[str, Any] = {}


@dataclass(frozen=True)
class _State:
    """The log's state row as the append transaction left it (it holds the row's lock)."""

    size: int
    frontier: list[str]
    checkpoint_size: int | None
    checkpoint_root: str | None
    checkpoint_at: datetime | None


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
        # the state row after ``assign``: this transaction holds its lock, so a checkpoint
        # decided in the same transaction reads it from here instead of the database
        self._assigned: _State | None = None

    # ------------------------------------------------------------------ append path

    async def assign(self, entries: Sequence[Appended]) -> int:
        """Give ``entries`` (new, written, in append order) their leaves; returns the new size.

        Takes the log lock for the rest of the transaction: call it after the ledger rows are
        written, so the lock is held as briefly as possible and never while waiting on them.
        """
        self._assigned = None
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
        connection = await self.session.connection()
        await connection.execute(_INSERT_LEAVES, leaves)
        await connection.execute(_heads_upsert(connection.dialect.name), list(newest.values()))
        written = [n.hex() for n in frontier.nodes]
        await connection.execute(_SET_FRONTIER, {"nodes": written})
        self._assigned = _State(
            size, written, state.checkpoint_size, state.checkpoint_root, state.checkpoint_at
        )
        return size

    async def _take(self, count: int) -> Any:
        """Grow the log by ``count`` and lock its state row: the serialization point."""
        connection = await self.session.connection()
        return (await connection.execute(_TAKE, {"count": count})).one_or_none()

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

    async def high_tier_decision(self, entries: Sequence[Appended]) -> bool:
        """Whether ``entries`` hold a gate decision of a high-tier run (tier from the run's
        own ``run_started`` entry)."""
        deciding = {e.workflow_id for e in entries if e.kind in _GATE_DECISIONS}
        if not deciding:
            return False
        started = {e.workflow_id: e.payload for e in entries if e.seq == 1}
        payloads = [started[wf] for wf in deciding if wf in started]
        earlier = sorted(wf for wf in deciding if wf not in started)
        if earlier:  # runs started in an earlier batch: one read for all of them
            connection = await self.session.connection()
            rows = await connection.execute(_STARTS, {"workflow_ids": earlier})
            payloads += [row.payload for row in rows]
        return any(
            isinstance(payload, dict) and payload.get("risk_tier") == cp.HIGH_TIER
            for payload in payloads
        )

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
        state: Any
        if lock:
            # a no-op write: the row lock on PostgreSQL, the database's write lock on SQLite
            # (a read first would not serialize with appends there)
            read: Any = (
                update(table)
                .where(table.c.id == LOG_ROW)
                .values(size=table.c.size)
                .returning(table)
            )
            state = (await self.session.execute(read)).first()
        elif self._assigned is not None:
            # this transaction's own append left the row so, and holds its lock
            state = self._assigned
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
        self._assigned = None  # the row has changed
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
