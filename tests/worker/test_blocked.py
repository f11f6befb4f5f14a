"""A write no retry can ever make is reported, not retried in silence.

PostgreSQL refuses a value too long for its column with a plain ``DBAPIError`` (asyncpg), which
the activities used to let Temporal retry forever. SQLite does not enforce varchar lengths, so
there a trigger plays PostgreSQL's part (a constraint SQLite raises itself).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from services import observability
from services.store.blocked import BlockedRepository
from services.store.db import session_scope
from services.worker.activities import (
    BLOCKED_RETRY_DELAY,
    LEDGER_BLOCKED,
    REGISTRY_BLOCKED,
    StoreActivities,
)
from tests.store.factories import new_workflow_id, record, registry_row
from workflows import limits
from workflows.activities import LEDGER_APPEND, REGISTRY_SYNC, LedgerBatch

Sessions = async_sessionmaker[AsyncSession]
TOO_LONG = "m" * (limits.ACTOR_MAX + 1)


@pytest.fixture
async def strict_lengths(engine: AsyncEngine, backend: str) -> AsyncIterator[str]:
    """The reason the backend gives for a value longer than its column."""
    if backend == "postgresql":
        yield "value_too_long"
        return
    guards = {
        "ledger_too_long": f"BEFORE INSERT ON ledger_entries WHEN length(NEW.actor) > "
        f"{limits.ACTOR_MAX}",
        "title_too_long": f"BEFORE INSERT ON use_cases WHEN length(NEW.title) > "
        f"{limits.RUN_TITLE_MAX}",
    }
    async with engine.begin() as connection:
        for name, when in guards.items():
            await connection.execute(
                text(f"CREATE TRIGGER {name} {when} BEGIN SELECT RAISE(ABORT, 'too long'); END")
            )
    try:
        yield "constraint"
    finally:
        async with engine.begin() as connection:
            for name in guards:
                await connection.execute(text(f"DROP TRIGGER {name}"))


def _refused(activity_name: str, reason: str) -> float:
    value = observability.STORE_REFUSED.labels(activity_name, reason)._value.get()
    return float(value)


async def test_a_value_too_long_blocks_the_ledger_and_says_so(
    sessionmaker: Sessions, strict_lengths: str, caplog: pytest.LogCaptureFixture
) -> None:
    activities = StoreActivities(sessionmaker)
    wf = new_workflow_id()
    assert await ActivityEnvironment().run(
        activities.append_ledger, LedgerBatch(records=[record(wf, 1), record(wf, 2)])
    )
    bad = record(wf, 3).model_copy(update={"actor": TOO_LONG})
    counted = _refused(LEDGER_APPEND, strict_lengths)

    with (
        caplog.at_level(logging.ERROR, logger="releasegate.worker.store"),
        pytest.raises(ApplicationError) as caught,
    ):
        await ActivityEnvironment().run(
            activities.append_ledger, LedgerBatch(records=[bad, record(wf, 4)])
        )

    assert caught.value.type == LEDGER_BLOCKED
    # typed and slow, not non-retryable: the current workflow would fail the whole run on a
    # non-retryable activity failure (it lists the type as non-retryable once it handles it)
    assert not caught.value.non_retryable
    assert caught.value.next_retry_delay == BLOCKED_RETRY_DELAY
    assert caught.value.__cause__ is None  # no SQL or parameters in the run's history
    assert TOO_LONG not in str(caught.value)
    assert _refused(LEDGER_APPEND, strict_lengths) == counted + 1
    assert any(m.startswith(f"LEDGER BLOCKED: {wf} cannot store event 3") for m in caplog.messages)
    async with session_scope(sessionmaker) as session:
        block = await BlockedRepository(session).get(wf)
        assert block is not None
        assert (block.event_id, block.reason) == (3, strict_lengths)

    # once the cause is gone the write succeeds, and the block is lifted with it
    assert await ActivityEnvironment().run(
        activities.append_ledger, LedgerBatch(records=[record(wf, 3), record(wf, 4)])
    )
    async with session_scope(sessionmaker) as session:
        assert await BlockedRepository(session).get(wf) is None
        assert (await BlockedRepository(session).count()) == 0


async def test_a_read_model_row_too_long_is_typed_and_slow(
    sessionmaker: Sessions, strict_lengths: str
) -> None:
    activities = StoreActivities(sessionmaker)
    row = registry_row(title="t" * (limits.RUN_TITLE_MAX + 1))
    counted = _refused(REGISTRY_SYNC, strict_lengths)
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(activities.sync_registry, row)
    assert caught.value.type == REGISTRY_BLOCKED
    assert not caught.value.non_retryable
    assert caught.value.next_retry_delay == BLOCKED_RETRY_DELAY
    assert _refused(REGISTRY_SYNC, strict_lengths) == counted + 1
