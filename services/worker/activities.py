"""Activity implementations for the store: the ledger and the use-case registry.

Both are at-least-once, so both are idempotent (see the repositories). Error policy: anything
that may heal by itself (database down, lock timeout, serialization failure, a ledger
predecessor still in flight) propagates and Temporal retries it with backoff, so nothing is
lost once the database is back.

A payload the store can never take (a value too long for its column, not representable,
against a constraint; ``services.store.errors.classify``) must not be retried in silence: it
raises an ``ApplicationError`` of type ``ledger_blocked`` (``registry_blocked`` for the read
model), is recorded in ``ledger_blocked`` for the API, logged as an error and counted
(``releasegate_store_refused``; the API's gauge ``releasegate_ledger_blocked``). It is not
marked non-retryable: today a non-retryable activity failure fails the whole run (the workflow
does not catch it), so one malformed value would close a governed run. It asks Temporal to
retry only every ``BLOCKED_RETRY_DELAY`` instead, which heals by itself once an operator fixes
the cause (e.g. widens a column). A workflow that handles the type lists it in its retry
policy's ``non_retryable_error_types`` to get the failure at once.

``store.persist`` is the fast path: a workflow task's ledger records and read-model row in one
transaction, run as a local activity (no server round trip of its own). It makes a few quick
attempts only; whatever it cannot get past at once (the store down or slow, a value it cannot
hold) fails it with a short, driver-free reason, and the workflow hands the same writes to
``ledger.append`` and ``registry.sync`` above, which retry with backoff and report blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from services import observability
from services.store.blocked import BlockedRepository
from services.store.db import is_sqlite, session_scope
from services.store.errors import Permanent, classify, describe
from services.store.ledger import LedgerBatchError, LedgerGapError, LedgerRepository
from services.store.registry import RegistryKeyConflict, RegistryRepository
from services.tlog.checkpoints import SignedCheckpoint
from services.tlog.publish import Checkpointing
from services.worker.notify import Adapter
from workflows.activities import (
    LEDGER_APPEND,
    REGISTRY_SYNC,
    STORE_PERSIST,
    LedgerBatch,
    LedgerRecord,
    RegistryRow,
    StoreBatch,
    StoreResult,
)
from workflows.model import EventKind

log = logging.getLogger("releasegate.worker.store")

# ApplicationError types, for workflows' retry policies and for reading failures in the UI
LEDGER_GAP = "LedgerGap"
# the ledger cannot take this batch, ever: the run's chain stops before it until an operator acts
LEDGER_BLOCKED = "ledger_blocked"
# the read model cannot take this snapshot, ever (the ledger is unaffected)
REGISTRY_BLOCKED = "registry_blocked"
REGISTRY_CONFLICT = "RegistryConflict"
# the fast path cannot store this task's writes now: the workflow falls back to the activities
# that retry with backoff (the store is down or slow, or refuses a value: they record the block)
PERSIST_FALLBACK = "persist_fallback"
# a gap that outlives this many attempts is logged as an error: the predecessor is not coming
GAP_ALARM_ATTEMPT = 3
# how often a blocked write is tried again (each try logs and counts again)
BLOCKED_RETRY_DELAY = timedelta(minutes=5)


class StoreActivities:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        checkpointing: Checkpointing | None = None,
        notice_log: Adapter | None = None,
        *,
        max_group: int = 16,
    ) -> None:
        self._sessionmaker = sessionmaker
        # signs transparency-log checkpoints in the append transaction, publishes them after
        self._checkpointing = checkpointing
        # the worker's only notification channel, when that is its log: ``persist`` logs the
        # batch's notices itself and the run sends no notification activity
        self._notice_log = notice_log
        # SQLite takes one writer at a time and lets the others poll for the lock: under load
        # some waited out busy_timeout (and their local activity's timeout) while later ones
        # got in. The worker's own writes (all three activities) queue here instead, first
        # come first served.
        bind = sessionmaker.kw.get("bind")
        sqlite = bind is not None and is_sqlite(bind.url)
        self._writes: asyncio.Lock | contextlib.nullcontext[None] = (
            asyncio.Lock() if sqlite else contextlib.nullcontext()
        )
        # group commit of ``persist``: the batches that queued while a transaction ran go
        # into the next one together (see ``_commit``); at most ``max_group`` (1: none).
        # Every append takes the log's one lock anyway (ledger_log), on both backends.
        self._max_group = max(1, max_group)
        self._persists = self._writes if isinstance(self._writes, asyncio.Lock) else asyncio.Lock()
        self._queued: list[_Queued] = []

    @activity.defn(name=LEDGER_APPEND)
    async def append_ledger(self, batch: LedgerBatch) -> int:
        """Append the batch to the ledger; returns how many entries were newly written."""
        policy = self._checkpointing.policy if self._checkpointing else None
        try:
            async with self._writes, session_scope(self._sessionmaker) as session:
                ledger = LedgerRepository(session, policy)
                # a write that succeeds lifts any block an earlier batch left
                written = await ledger.append(batch, clear_blocks=True)
            if ledger.signed is not None and self._checkpointing is not None:
                await self._checkpointing.publisher.publish(ledger.signed)
            return written
        except LedgerGapError as exc:
            # retryable: the missing predecessor belongs to an attempt that may still land;
            # one that never does means rows were removed, which verify reports
            if activity.info().attempt >= GAP_ALARM_ATTEMPT:
                log.error("ledger gap persists (attempt %d): %s", activity.info().attempt, exc)
            raise ApplicationError(str(exc), type=LEDGER_GAP) from exc
        # ``from None``: the driver's error carries the SQL and its parameters, which belong
        # neither in the run's history nor in a failure Temporal would cut at its size limit
        except LedgerBatchError as exc:
            raise await self._block(batch, Permanent.UNWRITABLE_BATCH, str(exc)) from None
        except SQLAlchemyError as exc:
            reason = classify(exc)
            if reason is None:
                raise  # the database's condition, not the data: Temporal retries
            raise await self._block(batch, reason, describe(exc)) from None

    @activity.defn(name=STORE_PERSIST)
    async def persist(self, batch: StoreBatch) -> StoreResult:
        """Append ``batch.records`` and store ``batch.row`` in one transaction, then log the
        batch's notices when the log is the worker's only channel. Both writes are idempotent,
        so a retry (or a replay after a worker died before its workflow task completed) writes
        nothing twice; a notice may be logged twice.

        The transaction may hold other runs' batches too (group commit, ``_commit``): the
        answer still comes only after it committed, and a batch that makes a group fail is
        written alone, like every other batch of that group, so it fails only itself."""
        try:
            written = await self._commit(batch)
        except (LedgerBatchError, RegistryKeyConflict) as exc:
            raise _fallback(type(exc).__name__, retry=False) from None
        except LedgerGapError as exc:
            raise _fallback(f"ledger gap: {exc}", retry=True) from None
        except SQLAlchemyError as exc:
            # ``from None`` and no driver text: the last attempt's failure enters the run's
            # history (the driver's message carries SQL and parameters)
            reason = classify(exc)
            detail = reason.value if reason is not None else type(exc).__name__
            log.warning("store.persist of %s failed: %s", batch.row.workflow_id, detail)
            raise _fallback(detail, retry=reason is None) from None
        except Exception as exc:  # e.g. the driver's connect error: its text names the host
            log.warning("store.persist of %s failed", batch.row.workflow_id, exc_info=True)
            raise _fallback(type(exc).__name__, retry=True) from None
        if self._notice_log is None:
            return StoreResult(written=written)
        for notice in batch.notices:
            await self._notice_log.send(notice, [])
        return StoreResult(written=written, notices_logged=True)

    async def _commit(self, batch: StoreBatch) -> int:
        """Store ``batch``; returns the ledger entries it newly wrote.

        Group commit: callers queue, and whoever holds the lock writes its own batch with the
        batches queued behind it (first come first served, one per run, at most
        ``max_group``) in one transaction, then answers them all. A run's batches come one
        at a time (its workflow awaits each), so a group never reorders a run's writes; a
        stale attempt of a run already in the group waits for the next transaction. When the
        group's transaction fails, nobody is answered from it: each of its batches is
        written again alone, by its own caller, and fails or succeeds by itself."""
        me = _Queued(batch)
        self._queued.append(me)
        try:
            async with self._persists:
                written, signed = await self._turn(me)
        finally:
            if me in self._queued:  # cancelled while waiting: nobody writes it now
                self._queued.remove(me)
        # after the lock: publishing reads the log and may call the witness
        if signed is not None and self._checkpointing is not None:
            await self._checkpointing.publisher.publish(signed)
        return written

    async def _turn(self, me: _Queued) -> tuple[int, SignedCheckpoint | None]:
        """``me``'s turn at the lock: its answer, and a checkpoint to publish."""
        if me.written is not None:
            return me.written, None  # a group before ours stored it
        if me in self._queued:  # (not when a group that failed had taken it)
            self._queued.remove(me)
        group = [me] if me.alone else self._group(me)
        if len(group) > 1:
            try:
                answers, signed = await self._write_group([q.batch for q in group])
            except Exception:
                log.info("group commit of %d batches failed; writing each alone", len(group))
                for queued in group:
                    queued.alone = True
            else:
                for queued, written in zip(group, answers, strict=True):
                    queued.written = written
                return answers[0], signed
        return await self._write_alone(me.batch)

    def _group(self, leader: _Queued) -> list[_Queued]:
        """``leader`` and the batches queued behind it that may share its transaction."""
        group = [leader]
        runs = leader.runs()
        for queued in list(self._queued):
            if len(group) >= self._max_group:
                break
            if queued.alone or not runs.isdisjoint(queued.runs()):
                continue  # a run's next batch goes into the next transaction
            self._queued.remove(queued)
            group.append(queued)
            runs |= queued.runs()
        return group

    async def _write_alone(self, batch: StoreBatch) -> tuple[int, SignedCheckpoint | None]:
        """The batch's transaction; the checkpoint it signed, to publish."""
        policy = self._checkpointing.policy if self._checkpointing else None
        async with session_scope(self._sessionmaker) as session:
            # the ledger first: its race recovery rolls back the unit, which holds nothing
            # else yet; the row is the unit's last write and retries with it
            ledger = LedgerRepository(session, policy)
            written = 0
            if batch.records:
                written = await ledger.append(LedgerBatch(records=batch.records), clear_blocks=True)
            await RegistryRepository(session).upsert_in_unit(
                batch.row, people_changed=_people_changed(batch.records)
            )
        return written, ledger.signed

    async def _write_group(
        self, batches: list[StoreBatch]
    ) -> tuple[list[int], SignedCheckpoint | None]:
        """Several runs' batches in one transaction: what ``_write_alone`` does for each."""
        policy = self._checkpointing.policy if self._checkpointing else None
        async with session_scope(self._sessionmaker) as session:
            ledger = LedgerRepository(session, policy)
            records = [r for batch in batches for r in batch.records]
            if records:
                await ledger.append(LedgerBatch(records=records), clear_blocks=True)
            await RegistryRepository(session).upsert_runs_in_unit(
                [(batch.row, _people_changed(batch.records)) for batch in batches]
            )
        if not records:
            return [0] * len(batches), ledger.signed
        answers = [
            sum(ledger.written_runs.get(run, 0) for run in {r.workflow_id for r in b.records})
            for b in batches
        ]
        return answers, ledger.signed

    async def _block(self, batch: LedgerBatch, reason: Permanent, detail: str) -> ApplicationError:
        first = min(batch.records, key=lambda r: r.event_id)
        observability.record_ledger_blocked(LEDGER_APPEND, reason.value)
        log.error(
            "LEDGER BLOCKED: %s cannot store event %d and later (%s): %s; the run's ledger stops "
            "here until the cause is fixed (the write is tried again every %s)",
            first.workflow_id,
            first.event_id,
            reason.value,
            detail,
            BLOCKED_RETRY_DELAY,
            extra={"workflow_id": first.workflow_id, "reason": reason.value},
        )
        try:
            async with session_scope(self._sessionmaker) as session:
                await BlockedRepository(session).mark(
                    first.workflow_id, first.event_id, reason, detail
                )
        except SQLAlchemyError:
            # the block is still raised (and logged above); only the API's 503 is missing
            log.exception("could not record the ledger block of %s", first.workflow_id)
        return ApplicationError(
            f"ledger blocked at {first.workflow_id} event {first.event_id} ({reason.value}): "
            f"{detail}",
            {"workflow_id": first.workflow_id, "event_id": first.event_id, "reason": reason.value},
            type=LEDGER_BLOCKED,
            next_retry_delay=BLOCKED_RETRY_DELAY,
        )

    @activity.defn(name=REGISTRY_SYNC)
    async def sync_registry(self, row: RegistryRow) -> None:
        """Store the workflow's current snapshot unless a newer one is already stored."""
        try:
            async with self._writes, session_scope(self._sessionmaker) as session:
                applied = await RegistryRepository(session).upsert(row)
        except RegistryKeyConflict as exc:
            raise ApplicationError(str(exc), type=REGISTRY_CONFLICT, non_retryable=True) from exc
        except SQLAlchemyError as exc:
            reason = classify(exc)
            if reason is None:
                raise
            observability.record_ledger_blocked(REGISTRY_SYNC, reason.value)
            detail = describe(exc)
            log.error(
                "READ MODEL BLOCKED: %s snapshot %d cannot be stored (%s): %s",
                row.workflow_id,
                row.event_id,
                reason.value,
                detail,
                extra={"workflow_id": row.workflow_id, "reason": reason.value},
            )
            raise ApplicationError(
                f"read model blocked at {row.workflow_id} ({reason.value}): {detail}",
                {"workflow_id": row.workflow_id, "event_id": row.event_id, "reason": reason.value},
                type=REGISTRY_BLOCKED,
                next_retry_delay=BLOCKED_RETRY_DELAY,
            ) from None
        if not applied:
            activity.logger.debug(
                "registry snapshot %s@%d superseded by a newer one", row.workflow_id, row.event_id
            )


class _Queued:
    """A ``persist`` call waiting for its transaction."""

    __slots__ = ("alone", "batch", "written")

    def __init__(self, batch: StoreBatch) -> None:
        self.batch = batch
        self.written: int | None = None  # set once a group's transaction stored it
        self.alone = False  # its group failed: it is written by itself

    def runs(self) -> set[str]:
        return {self.batch.row.workflow_id, *(r.workflow_id for r in self.batch.records)}


# the facts after which a run's people or pinned roster may differ from what is stored
_PEOPLE_FACTS = frozenset({EventKind.RUN_STARTED, EventKind.DEPUTIES_CHANGED})


def _people_changed(records: list[LedgerRecord]) -> bool:
    return any(r.kind in _PEOPLE_FACTS for r in records)


def _fallback(reason: str, *, retry: bool) -> ApplicationError:
    """The fast path's failure: ``retry`` when another quick attempt may succeed."""
    return ApplicationError(
        f"store.persist: {reason}; handing over to ledger.append and registry.sync",
        type=PERSIST_FALLBACK,
        non_retryable=not retry,
    )
