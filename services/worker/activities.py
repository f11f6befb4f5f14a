"""Activity implementations for the store: the ledger and the use-case registry.

Both are at-least-once, so both are idempotent (see the repositories). Error policy: anything
that may heal by itself (database down, lock timeout, a ledger predecessor still in flight)
propagates and Temporal retries it with backoff, so nothing is lost once the database is back;
a payload that can never be written raises a non-retryable ``ApplicationError`` with a type,
because retrying it forever would only hide the bug.
"""

from __future__ import annotations

from sqlalchemy.exc import DataError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from services.store.db import session_scope
from services.store.ledger import LedgerBatchError, LedgerGapError, LedgerRepository
from services.store.registry import RegistryKeyConflict, RegistryRepository
from workflows.activities import LEDGER_APPEND, REGISTRY_SYNC, LedgerBatch, RegistryRow

# ApplicationError types, for workflows' retry policies and for reading failures in the UI
LEDGER_GAP = "LedgerGap"
LEDGER_BATCH_INVALID = "LedgerBatchInvalid"
REGISTRY_CONFLICT = "RegistryConflict"
STORE_DATA_INVALID = "StoreDataInvalid"


class StoreActivities:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    @activity.defn(name=LEDGER_APPEND)
    async def append_ledger(self, batch: LedgerBatch) -> int:
        """Append the batch to the ledger; returns how many entries were newly written."""
        try:
            async with session_scope(self._sessionmaker) as session:
                return await LedgerRepository(session).append(batch)
        except LedgerGapError as exc:
            # retryable: the missing predecessor belongs to an attempt that may still land
            raise ApplicationError(str(exc), type=LEDGER_GAP) from exc
        except LedgerBatchError as exc:
            raise ApplicationError(str(exc), type=LEDGER_BATCH_INVALID, non_retryable=True) from exc
        except DataError as exc:
            raise _data_invalid(exc) from exc

    @activity.defn(name=REGISTRY_SYNC)
    async def sync_registry(self, row: RegistryRow) -> None:
        """Store the workflow's current snapshot unless a newer one is already stored."""
        try:
            async with session_scope(self._sessionmaker) as session:
                applied = await RegistryRepository(session).upsert(row)
        except RegistryKeyConflict as exc:
            raise ApplicationError(str(exc), type=REGISTRY_CONFLICT, non_retryable=True) from exc
        except DataError as exc:
            raise _data_invalid(exc) from exc
        if not applied:
            activity.logger.debug(
                "registry snapshot %s@%d superseded by a newer one", row.workflow_id, row.event_id
            )


def _data_invalid(exc: DataError) -> ApplicationError:
    # the database refused a value (too long, wrong type): the same payload fails every time
    return ApplicationError(
        f"store refused the payload: {exc.orig}", type=STORE_DATA_INVALID, non_retryable=True
    )
