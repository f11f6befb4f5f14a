"""The tamper-evident ledger: a SHA-256 hash chain per workflow, plus the evidence it introduces.

Each entry's hash covers a canonical JSON encoding of its content and the previous entry's
hash, so editing, deleting, inserting or reordering rows breaks the chain at a position that
``verify`` reports. Removing entries from the *end* of a chain (or all of them) leaves a chain
that is intact by itself; the run's own event count is the anchor for that: the registry row
(the read model) keeps the workflow's latest event id, and ``verify`` expects that many entries.

All of that trusts this database. Each new entry also becomes a leaf of the transparency log
(``services.store.transparency``, ``services.tlog``) in the same transaction, and signed
checkpoints of that log, kept outside the database, let an auditor check the ledger offline.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any, cast

from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    BigInteger,
    Row,
    Table,
    and_,
    bindparam,
    delete,
    insert,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.store.models import EvidenceItem, LedgerBlock, LedgerEntry, UseCase
from services.store.transparency import TransparencyLogRepository
from services.tlog.checkpoints import CheckpointPolicy, SignedCheckpoint
from workflows.activities import LedgerBatch, LedgerRecord

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64

# Two attempts of the same activity racing is the only expected source of a unique-constraint
# violation, and one re-check resolves it; the bound stops a pathological loop.
_MAX_RACE_ATTEMPTS = 5


# The append path's tables and statements, built once (Core: no ORM unit of work; building and
# cache-keying statements per call cost more CPU than running them, bench/store_persist.py)
_ENTRIES = cast(Table, LedgerEntry.__table__)
_EVIDENCE = cast(Table, EvidenceItem.__table__)
_BLOCKS = cast(Table, LedgerBlock.__table__)
_INSERT_ENTRIES = insert(_ENTRIES)
_INSERT_EVIDENCE = insert(_EVIDENCE)
_CLEAR_BLOCKS = delete(_BLOCKS).where(
    _BLOCKS.c.workflow_id.in_(bindparam("workflow_ids", expanding=True))
)
# a ``ledger_blocked`` row in the tail statement's result (no entry has a seq below 1)
_BLOCK_MARK = -1
_TAILS: dict[tuple[int, bool], Any] = {}


def _tail_statement(runs: int, blocks: bool) -> Any:
    """For ``runs`` runs (parameters ``w<i>``, ``p<i>``): every entry from the run's batch's
    predecessor on, and with ``blocks`` the runs' ``ledger_blocked`` rows (seq ``-1``), in one
    statement: one snapshot, one round trip."""
    statement = _TAILS.get((runs, blocks))
    if statement is None:
        e = _ENTRIES.c
        statement = select(e.workflow_id, e.seq, e.prev_hash, e.hash).where(
            or_(
                *(
                    and_(e.workflow_id == bindparam(f"w{i}"), e.seq >= bindparam(f"p{i}"))
                    for i in range(runs)
                )
            )
        )
        if blocks:
            b = _BLOCKS.c
            statement = union_all(
                statement,
                select(
                    b.workflow_id,
                    literal_column(str(_BLOCK_MARK), BigInteger).label("seq"),
                    null().label("prev_hash"),
                    null().label("hash"),
                ).where(b.workflow_id.in_(bindparam("workflow_ids", expanding=True))),
            )
        if len(_TAILS) < 256:  # batches span few runs; an odd one is built afresh
            _TAILS[(runs, blocks)] = statement
    return statement


@dataclass(frozen=True, slots=True)
class Written:
    """An entry this append wrote: what the transparency log needs of it."""

    workflow_id: str
    seq: int
    kind: str
    payload: dict[str, Any]
    hash: str


class LedgerGapError(RuntimeError):
    """An entry arrived before its predecessor. Retryable: the predecessor may still land."""


class LedgerBatchError(ValueError):
    """A batch that can never be written as given (e.g. one event id with two contents)."""


class VerifyResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    # the run's own event count (its registry row's event_id): the chain must be this long;
    # None when the registry does not know the run
    expected_entries: int | None = None
    # human-readable cause for auditors and logs; not part of the hashed data
    reason: str | None = None


# --------------------------------------------------------------------------- canonical form


def iso_utc(value: datetime) -> str:
    """ISO-8601 in UTC with microseconds and ``Z``: one spelling per instant, whatever the
    input's offset or precision, so a hash recomputed from the database matches."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def canonical_json(value: Any) -> str:
    # allow_nan=False: NaN/Infinity are not JSON and PostgreSQL would refuse them anyway
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_json_default,
    )


def normalize_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload exactly as it will read back from the database (plain JSON values only).

    Hashing and storing this form, rather than the caller's objects, is what makes the hash
    reproducible from the stored row.
    """
    result: dict[str, Any] = json.loads(canonical_json(payload))
    return result


def entry_hash(
    *,
    workflow_id: str,
    seq: int,
    at: datetime,
    kind: str,
    actor: str,
    channel: str,
    payload: dict[str, Any],
    policy_version: str,
    prev_hash: str,
) -> str:
    document = {
        "workflow_id": workflow_id,
        "seq": seq,
        "at": iso_utc(at),
        "kind": kind,
        "actor": actor,
        "channel": channel,
        "payload": payload,
        "policy_version": policy_version,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()


def _record_hash(record: LedgerRecord, payload: dict[str, Any], prev_hash: str) -> str:
    return entry_hash(
        workflow_id=record.workflow_id,
        seq=record.event_id,
        at=record.at,
        kind=record.kind.value,
        actor=record.actor,
        channel=str(record.channel.value),
        payload=payload,
        policy_version=record.policy_version,
        prev_hash=prev_hash,
    )


def _row_hash(row: LedgerEntry) -> str:
    return entry_hash(
        workflow_id=row.workflow_id,
        seq=row.seq,
        at=row.at,
        kind=row.kind,
        actor=row.actor,
        channel=row.channel,
        payload=row.payload,
        policy_version=row.policy_version,
        prev_hash=row.prev_hash,
    )


def _normalized_payload(record: LedgerRecord) -> dict[str, Any]:
    try:
        return normalize_payload(record.payload)
    except (TypeError, ValueError) as exc:  # NaN/Infinity or a non-JSON value
        raise LedgerBatchError(
            f"{record.workflow_id} event {record.event_id}: payload has no JSON form: {exc}"
        ) from exc


def _group_batch(batch: LedgerBatch) -> dict[str, builtins.list[LedgerRecord]]:
    """Records per workflow in event_id order, exact duplicates folded."""
    groups: dict[str, dict[int, LedgerRecord]] = {}
    for record in batch.records:
        seen = groups.setdefault(record.workflow_id, {})
        earlier = seen.get(record.event_id)
        if earlier is None:
            seen[record.event_id] = record
        elif earlier != record:
            raise LedgerBatchError(
                f"batch holds two different records for {record.workflow_id} "
                f"event {record.event_id}"
            )
    return {wf: [recs[k] for k in sorted(recs)] for wf, recs in groups.items()}


def _link(
    workflow_id: str,
    records: Sequence[LedgerRecord],
    tail: Sequence[Row[Any]],
    entries: list[dict[str, Any]],
    evidence: list[dict[str, Any]],
) -> list[Written]:
    """Chain ``records`` (one run's, in event_id order) onto ``tail`` (the run's stored
    entries from the batch's predecessor on, in seq order): the rows of the new entries and
    of the evidence they introduce go to ``entries`` and ``evidence``. Records already stored
    are skipped (a retry), with a warning when their content differs."""
    predecessor = records[0].event_id - 1
    stored = {row.seq: row for row in tail}
    for record in records:
        if (link := stored.get(record.event_id)) is not None:
            LedgerRepository._warn_if_different(
                record, prev_hash=link.prev_hash, stored_hash=link.hash
            )
    new = [r for r in records if r.event_id not in stored]
    if not new:
        return []

    if tail:
        head_seq, prev_hash = tail[-1].seq, tail[-1].hash
    elif predecessor == 0:
        head_seq, prev_hash = 0, GENESIS_HASH
    else:
        raise LedgerGapError(
            f"{workflow_id}: event {records[0].event_id} arrived before event {predecessor}"
        )
    written = []
    for record in new:
        if record.event_id != head_seq + 1:
            raise LedgerGapError(
                f"{workflow_id}: event {record.event_id} arrived but the ledger ends at "
                f"seq {head_seq}"
            )
        payload = _normalized_payload(record)
        digest = _record_hash(record, payload, prev_hash)
        kind = record.kind.value
        entries.append(
            {
                "workflow_id": workflow_id,
                "use_case_key": record.use_case_key,
                "event_id": record.event_id,
                "seq": record.event_id,
                "at": record.at,
                "kind": kind,
                "actor": record.actor,
                "channel": str(record.channel.value),
                "payload": payload,
                "policy_version": record.policy_version,
                "prev_hash": prev_hash,
                "hash": digest,
            }
        )
        evidence.extend(_evidence_rows(record))
        written.append(Written(workflow_id, record.event_id, kind, payload, digest))
        head_seq, prev_hash = record.event_id, digest
    return written


def _evidence_rows(record: LedgerRecord) -> Iterable[dict[str, Any]]:
    seen: set[tuple[str, str]] = set()
    for item in record.evidence:
        key = (item.sha256.lower(), item.name)
        if key in seen:  # the same item listed twice in one event is one fact
            continue
        seen.add(key)
        yield {
            "workflow_id": record.workflow_id,
            "use_case_key": record.use_case_key,
            "scope": item.scope,
            "round": item.round,
            "kind": item.kind,
            "name": item.name,
            "uri": item.uri,
            "sha256": key[0],
            "submitted_by": item.submitted_by,
            "at": item.at,
            "event_id": record.event_id,
        }


# --------------------------------------------------------------------------- repository


class LedgerRepository:
    """Ledger and evidence persistence on one ``AsyncSession`` (the caller owns the commit).

    ``checkpoints``: the worker's signing policy; an append that makes a checkpoint due signs
    it in the same transaction and leaves it in ``signed`` for the caller to publish once the
    transaction has committed (``services.tlog.publish``).
    """

    def __init__(self, session: AsyncSession, checkpoints: CheckpointPolicy | None = None) -> None:
        self.session = session
        self.checkpoints = checkpoints
        self.signed: SignedCheckpoint | None = None
        # the last ``append``: entries newly written per run
        self.written_runs: dict[str, int] = {}

    async def append(self, batch: LedgerBatch, *, clear_blocks: bool = False) -> int:
        """Write the batch's records not yet in the ledger; return how many were new.

        Idempotent on (workflow_id, event_id). Two attempts racing on the same records are
        settled by the unique constraints: the loser's insert fails, and re-reading finds the
        winner's rows and skips them. That recovery rolls the session back, so ``append``
        must be the first write in its unit of work.

        New entries get their transparency-log leaves in the same transaction
        (``TransparencyLogRepository.assign``), so an entry and its leaf exist together or not
        at all, and a retried batch adds neither again.

        ``clear_blocks``: the append succeeding lifts the ``ledger_blocked`` rows of the
        batch's runs (read with the chains' tails, deleted only where there are any).
        """
        groups = _group_batch(batch)
        for attempt in range(1, _MAX_RACE_ATTEMPTS + 1):
            try:
                self.signed = None
                tails, blocked = await self._tails(groups, blocks=clear_blocks)
                entries: builtins.list[dict[str, Any]] = []
                evidence: builtins.list[dict[str, Any]] = []
                written: builtins.list[Written] = []
                for workflow_id, records in groups.items():
                    written += _link(
                        workflow_id, records, tails.get(workflow_id, []), entries, evidence
                    )
                await self._insert(entries, evidence)
                if written:
                    await self._log(written)
                if blocked:
                    connection = await self.session.connection()
                    await connection.execute(_CLEAR_BLOCKS, {"workflow_ids": sorted(blocked)})
                self.written_runs = {}
                for entry in written:
                    self.written_runs[entry.workflow_id] = (
                        self.written_runs.get(entry.workflow_id, 0) + 1
                    )
                return len(written)
            except IntegrityError:
                await self.session.rollback()
                if attempt == _MAX_RACE_ATTEMPTS:
                    raise
                logger.info("ledger append raced another writer; re-checking (attempt %d)", attempt)
        raise AssertionError("unreachable")

    async def _log(self, written: Sequence[Written]) -> None:
        log = TransparencyLogRepository(self.session)
        # read before the log lock is taken, to hold it as briefly as possible
        high = self.checkpoints is not None and await log.high_tier_decision(written)
        await log.assign(written)
        if self.checkpoints is not None:
            self.signed = await log.checkpoint_if_due(
                self.checkpoints, decision_of_high_tier=high, lock=False
            )

    async def _tails(
        self, groups: dict[str, builtins.list[LedgerRecord]], *, blocks: bool
    ) -> tuple[dict[str, builtins.list[Row[Any]]], set[str]]:
        """Each run's entries from its batch's predecessor on, in seq order, and (``blocks``)
        the runs whose ledger is blocked. One statement reads them all, so the "already
        written" sets and the chain heads come from the same snapshot; separate reads could
        straddle another writer's commit and see an inconsistent ledger."""
        params: dict[str, Any] = {}
        for i, (workflow_id, records) in enumerate(groups.items()):
            params[f"w{i}"] = workflow_id
            params[f"p{i}"] = records[0].event_id - 1
        if blocks:
            params["workflow_ids"] = list(groups)
        connection = await self.session.connection()
        result = await connection.execute(_tail_statement(len(groups), blocks), params)
        tails: dict[str, builtins.list[Row[Any]]] = {}
        blocked: set[str] = set()
        for row in result:
            if row.seq == _BLOCK_MARK:
                blocked.add(row.workflow_id)
            else:
                tails.setdefault(row.workflow_id, []).append(row)
        for tail in tails.values():
            tail.sort(key=lambda row: int(row.seq))
        return tails, blocked

    async def _insert(
        self, entries: builtins.list[dict[str, Any]], evidence: builtins.list[dict[str, Any]]
    ) -> None:
        connection = await self.session.connection()
        if entries:
            await connection.execute(_INSERT_ENTRIES, entries)
        if evidence:
            await connection.execute(_INSERT_EVIDENCE, evidence)

    async def _append_chain(
        self, workflow_id: str, records: Sequence[LedgerRecord]
    ) -> builtins.list[Written]:
        """One run's records, chained and written, without their transparency-log leaves."""
        tails, _ = await self._tails({workflow_id: builtins.list(records)}, blocks=False)
        entries: builtins.list[dict[str, Any]] = []
        evidence: builtins.list[dict[str, Any]] = []
        written = _link(workflow_id, records, tails.get(workflow_id, []), entries, evidence)
        await self._insert(entries, evidence)
        return written

    @staticmethod
    def _warn_if_different(record: LedgerRecord, *, prev_hash: str, stored_hash: str) -> None:
        # A retry carries identical content. Different content under the same event id means a
        # non-deterministic workflow change; the first write stays authoritative, but say so.
        if _record_hash(record, _normalized_payload(record), prev_hash) != stored_hash:
            logger.warning(
                "ledger: %s event %d already recorded with different content; kept the original",
                record.workflow_id,
                record.event_id,
            )

    async def _head(self, workflow_id: str) -> LedgerEntry | None:
        result = await self.session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.workflow_id == workflow_id)
            .order_by(LedgerEntry.seq.desc())
            .limit(1)
        )
        return result.first()

    async def head_hash(self, workflow_id: str) -> str | None:
        """Hash of the newest entry, or None for a workflow with no entries."""
        head = await self._head(workflow_id)
        return head.hash if head else None

    async def entries(self, workflow_id: str) -> Sequence[LedgerEntry]:
        result = await self.session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.workflow_id == workflow_id)
            .order_by(LedgerEntry.seq)
        )
        return result.all()

    async def evidence(self, workflow_id: str) -> Sequence[EvidenceItem]:
        result = await self.session.scalars(
            select(EvidenceItem)
            .where(EvidenceItem.workflow_id == workflow_id)
            .order_by(EvidenceItem.event_id, EvidenceItem.id)
        )
        return result.all()

    async def expected_entries(self, workflow_id: str) -> int | None:
        """How many entries the run has recorded, as its registry row knows it (None: unknown).

        The read model is synced after the ledger in the same flush, so in steady state it
        never runs ahead of the chain; it may lag behind it, which ``verify`` accepts."""
        stored = await self.session.scalar(
            select(UseCase.event_id).where(UseCase.workflow_id == workflow_id)
        )
        return None if stored is None else int(stored)

    async def verify(self, workflow_id: str) -> VerifyResult:
        """Recompute the chain and hold it to the run's event count; report the first seq
        that is missing (in the middle or at the end), misplaced or altered."""
        expected = await self.expected_entries(workflow_id)
        return verify_chain(await self.entries(workflow_id), expected=expected)

    async def verify_all(self) -> dict[str, VerifyResult]:
        """Verify every chain in the ledger, and every registered run's (an emptied chain
        has no rows left to find it by), keyed by workflow id."""
        in_ledger = select(LedgerEntry.workflow_id).distinct()
        registered = select(UseCase.workflow_id)
        workflow_ids = await self.session.scalars(
            in_ledger.union(registered).order_by("workflow_id")
        )
        return {wf: await self.verify(wf) for wf in workflow_ids.all()}


def verify_chain(rows: Sequence[LedgerEntry], *, expected: int | None = None) -> VerifyResult:
    """Verify one workflow's entries, given sorted by seq (what ``entries`` returns).

    ``expected`` is the run's own event count (``LedgerRepository.expected_entries``): a
    chain shorter than that lost its newest entries, even when every link left is intact.
    Lets a caller that already holds the rows (the evidence pack) verify exactly those rows
    instead of re-reading a chain that may have grown in between.
    """
    prev_hash = GENESIS_HASH
    expected_seq = 1
    for row in rows:
        if row.seq != expected_seq:
            # rows come sorted by seq, so a mismatch means `expected_seq` is missing
            # (a deleted row) unless the stored seq is impossibly small
            bad = min(row.seq, expected_seq)
            reason = f"seq {expected_seq} expected, found {row.seq}"
            return _bad(len(rows), bad, reason, expected)
        if row.event_id != row.seq:
            return _bad(len(rows), row.seq, "event_id does not match seq", expected)
        if row.prev_hash != prev_hash:
            reason = "prev_hash does not link to the previous entry"
            return _bad(len(rows), row.seq, reason, expected)
        if _row_hash(row) != row.hash:
            return _bad(len(rows), row.seq, "content does not match its hash", expected)
        prev_hash = row.hash
        expected_seq += 1
    if expected is not None and len(rows) < expected:
        # every link is intact, but the newest entries are gone: the first missing one is bad
        reason = (
            f"the run recorded {expected} events but the chain ends at seq {len(rows)}"
            if rows
            else f"the run recorded {expected} events but the chain has none"
        )
        return _bad(len(rows), len(rows) + 1, reason, expected)
    # a read model that trails the ledger (it syncs after the ledger) knows fewer events than
    # the chain holds: the run has recorded at least what the intact chain shows
    known = max(expected, len(rows)) if expected is not None else None
    return VerifyResult(ok=True, entries=len(rows), expected_entries=known)


def _bad(entries: int, seq: int, reason: str, expected: int | None) -> VerifyResult:
    return VerifyResult(
        ok=False, entries=entries, first_bad_seq=seq, reason=reason, expected_entries=expected
    )
