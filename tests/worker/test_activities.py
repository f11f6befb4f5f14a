"""The store activities: idempotent under retries, and the right errors for Temporal.

Retryable failures must surface as anything but a non-retryable ApplicationError, so that
Temporal keeps retrying with backoff until the database is back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from services.store.db import make_engine, make_sessionmaker, session_scope
from services.store.ledger import LedgerRepository
from services.store.registry import RegistryRepository
from services.store.tempdb import admin_engine
from services.worker.activities import (
    BLOCKED_RETRY_DELAY,
    LEDGER_BLOCKED,
    LEDGER_GAP,
    REGISTRY_CONFLICT,
    StoreActivities,
)
from tests.store.conftest import POSTGRES_ADMIN_URL
from tests.store.factories import batch, new_workflow_id, record, registry_row
from workflows.activities import LedgerBatch
from workflows.model import EventKind

Sessions = async_sessionmaker[AsyncSession]
T = TypeVar("T")


async def run(fn: Callable[..., Awaitable[T]], *args: object) -> T:
    return await ActivityEnvironment().run(fn, *args)


async def test_retried_append_writes_once(sessionmaker: Sessions) -> None:
    activities = StoreActivities(sessionmaker)
    wf = new_workflow_id()

    assert await run(activities.append_ledger, batch(wf, [1, 2, 3])) == 3
    assert await run(activities.append_ledger, batch(wf, [1, 2, 3])) == 0
    assert await run(activities.append_ledger, batch(wf, [3, 4])) == 1

    async with session_scope(sessionmaker) as session:
        result = await LedgerRepository(session).verify(wf)
    assert (result.ok, result.entries) == (True, 4)


async def test_gap_is_a_retryable_application_error(sessionmaker: Sessions) -> None:
    activities = StoreActivities(sessionmaker)
    with pytest.raises(ApplicationError) as caught:
        await run(activities.append_ledger, batch(new_workflow_id(), [2]))
    assert caught.value.type == LEDGER_GAP
    assert not caught.value.non_retryable


@pytest.mark.parametrize(
    "bad_batch",
    [
        pytest.param(
            lambda wf: LedgerBatch(records=[record(wf, 1), record(wf, 1, kind=EventKind.DECISION)]),
            id="conflicting-duplicates",
        ),
        pytest.param(
            lambda wf: LedgerBatch(records=[record(wf, 1, payload={"x": float("inf")})]),
            id="non-json-payload",
        ),
    ],
)
async def test_unwritable_batch_blocks_the_ledger(
    sessionmaker: Sessions, bad_batch: Callable[[str], LedgerBatch]
) -> None:
    activities = StoreActivities(sessionmaker)
    with pytest.raises(ApplicationError) as caught:
        await run(activities.append_ledger, bad_batch(new_workflow_id()))
    # typed, tried again only slowly (see services/worker/activities.py)
    assert caught.value.type == LEDGER_BLOCKED
    assert caught.value.next_retry_delay == BLOCKED_RETRY_DELAY


async def test_sync_registry_is_idempotent_and_ordered(sessionmaker: Sessions) -> None:
    activities = StoreActivities(sessionmaker)
    wf = new_workflow_id()
    await run(activities.sync_registry, registry_row(wf, stage="validation", event_id=4))
    await run(activities.sync_registry, registry_row(wf, stage="validation", event_id=4))
    await run(activities.sync_registry, registry_row(wf, stage="scoping", event_id=2))

    async with session_scope(sessionmaker) as session:
        stored = await RegistryRepository(session).get(wf)
    assert stored is not None
    assert (stored.stage, stored.event_id) == ("validation", 4)


async def test_registry_key_conflict_is_non_retryable(sessionmaker: Sessions) -> None:
    activities = StoreActivities(sessionmaker)
    row = registry_row()
    await run(activities.sync_registry, row)
    with pytest.raises(ApplicationError) as caught:
        await run(activities.sync_registry, registry_row(new_workflow_id(), key=row.key))
    assert caught.value.type == REGISTRY_CONFLICT
    assert caught.value.non_retryable


# --------------------------------------------------------------------------- outage


@asynccontextmanager
async def _database_unavailable(backend: str, db_url: str) -> AsyncIterator[None]:
    """Make the store refuse work, then restore it: the shape of a real outage per backend."""
    database = make_url(db_url).database
    assert database is not None
    if backend == "sqlite":
        # another process holding the write lock longer than busy_timeout
        blocker = sqlite3.connect(database, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        return
    admin = admin_engine(POSTGRES_ADMIN_URL)
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'))
            await connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": database},
            )
        try:
            yield
        finally:
            async with admin.connect() as connection:
                await connection.execute(
                    text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
                )
    finally:
        await admin.dispose()


async def test_append_survives_a_database_outage(
    backend: str, db_url: str, sessionmaker: Sessions
) -> None:
    # an engine of its own, with a short lock wait so the SQLite outage shows quickly
    engine = make_engine(db_url, sqlite_busy_timeout_ms=200)
    activities = StoreActivities(make_sessionmaker(engine))
    wf = new_workflow_id()
    try:
        assert await run(activities.append_ledger, batch(wf, [1])) == 1

        async with _database_unavailable(backend, db_url):
            for _attempt in range(3):  # Temporal would keep retrying, with backoff
                # the driver's error itself propagates: not an ApplicationError, so retryable
                with pytest.raises(DBAPIError):
                    await run(activities.append_ledger, batch(wf, [2, 3]))

        # the database is back: the next retry writes everything, exactly once
        assert await run(activities.append_ledger, batch(wf, [2, 3])) == 2
        assert await run(activities.append_ledger, batch(wf, [2, 3])) == 0
    finally:
        await engine.dispose()

    async with session_scope(sessionmaker) as session:
        result = await LedgerRepository(session).verify(wf)
    assert (result.ok, result.entries) == (True, 3)
