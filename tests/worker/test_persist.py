"""``store.persist``: a workflow task's ledger records and read-model row in one transaction.

Run as a local activity with a few quick attempts; whatever it cannot get past at once must
fail it with the fallback type (and no driver text, which would enter the run's history), so
the workflow hands the same writes to the activities that retry until the store is back.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import delete, func, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from services.store.db import make_engine, make_sessionmaker, session_scope
from services.store.ledger import LedgerRepository
from services.store.models import LedgerEntry, RosterEntry
from services.store.registry import RegistryRepository
from services.worker.activities import PERSIST_FALLBACK, StoreActivities
from tests.store.factories import new_workflow_id, record, registry_row
from tests.worker.test_activities import Sessions, _database_unavailable
from workflows.activities import MessageRef, Notification, NotificationKind, StoreBatch
from workflows.model import EventKind


def _batch(wf: str, event_ids: list[int], **row: object) -> StoreBatch:
    last = max(event_ids, default=0)
    return StoreBatch(
        records=[record(wf, e) for e in event_ids],
        row=registry_row(wf, event_id=last, **row),
    )


async def _entries(sessionmaker: Sessions, wf: str) -> int:
    async with session_scope(sessionmaker) as session:
        count = await session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.workflow_id == wf)
        )
    return int(count or 0)


async def test_ledger_and_read_model_land_together_once(sessionmaker: Sessions) -> None:
    activities = StoreActivities(sessionmaker)
    wf = new_workflow_id()

    first = await ActivityEnvironment().run(activities.persist, _batch(wf, [1, 2, 3]))
    again = await ActivityEnvironment().run(activities.persist, _batch(wf, [1, 2, 3]))
    later = await ActivityEnvironment().run(activities.persist, _batch(wf, [4]))

    assert (first.written, again.written, later.written) == (3, 0, 1)
    async with session_scope(sessionmaker) as session:
        verified = await LedgerRepository(session).verify(wf)
        row = await RegistryRepository(session).get(wf)
    assert (verified.ok, verified.entries) == (True, 4)
    assert row is not None
    assert row.event_id == 4  # the read model names what the ledger holds, no more, no less


async def test_a_row_the_store_refuses_takes_the_ledger_batch_back(sessionmaker: Sessions) -> None:
    """One transaction: a row that cannot be stored (its key is another run's) leaves no
    ledger entry behind, and the failure says to fall back at once (no quick retry helps)."""
    activities = StoreActivities(sessionmaker)
    holder = registry_row()
    await ActivityEnvironment().run(activities.sync_registry, holder)
    wf = new_workflow_id()

    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(activities.persist, _batch(wf, [1, 2], key=holder.key))

    assert caught.value.type == PERSIST_FALLBACK
    assert caught.value.non_retryable
    assert await _entries(sessionmaker, wf) == 0


async def test_a_store_that_is_down_fails_fast_without_driver_text(
    backend: str, db_url: str, sessionmaker: Sessions
) -> None:
    engine = make_engine(db_url, sqlite_busy_timeout_ms=200)
    activities = StoreActivities(make_sessionmaker(engine))
    wf = new_workflow_id()
    try:
        async with _database_unavailable(backend, db_url):
            with pytest.raises(ApplicationError) as caught:
                await ActivityEnvironment().run(activities.persist, _batch(wf, [1]))
        assert caught.value.type == PERSIST_FALLBACK
        assert not caught.value.non_retryable  # a quick retry may find the store back
        message = str(caught.value)
        assert "INSERT" not in message
        assert "SELECT" not in message
        assert db_url not in message
        # back: the same batch lands, exactly once
        result = await ActivityEnvironment().run(activities.persist, _batch(wf, [1]))
        assert result.written == 1
    finally:
        await engine.dispose()
    assert await _entries(sessionmaker, wf) == 1


class _Log:
    name = "log"

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    async def send(
        self, notice: Notification, refs: list[MessageRef], progress: object = None
    ) -> list[MessageRef]:
        self.sent.append(notice)
        return []


def _notice(wf: str) -> Notification:
    from datetime import UTC, datetime

    return Notification(
        kind=NotificationKind.LIVE_EVENT,
        workflow_id=wf,
        key=wf.removeprefix("usecase-"),
        title="t",
        risk_tier="low",
        stage="live",
        round=1,
        at=datetime.now(UTC),
        text="incident reported",
        recipients=["bo"],
    )


async def test_notices_are_logged_by_the_store_step_only_when_the_log_is_the_only_channel(
    sessionmaker: Sessions,
) -> None:
    log = _Log()
    wf = new_workflow_id()
    batch = _batch(wf, [1]).model_copy(update={"notices": [_notice(wf)]})

    logged = await ActivityEnvironment().run(
        StoreActivities(sessionmaker, None, log).persist, batch
    )
    assert logged.notices_logged
    assert [n.text for n in log.sent] == ["incident reported"]

    # a worker with channels beyond its log: the run sends the notices itself
    other = new_workflow_id()
    batch = _batch(other, [1]).model_copy(update={"notices": [_notice(other)]})
    kept = await ActivityEnvironment().run(StoreActivities(sessionmaker).persist, batch)
    assert not kept.notices_logged


async def test_the_runs_people_are_rewritten_only_after_facts_that_change_them(
    sessionmaker: Sessions,
) -> None:
    """Issue 15: the people and pinned-roster tables are written with the facts that set them
    (the start, a change of deputies), not again with every command's row."""
    activities = StoreActivities(sessionmaker)
    wf = new_workflow_id()

    async def roster_rows() -> int:
        async with session_scope(sessionmaker) as session:
            count = await session.scalar(
                select(func.count()).select_from(RosterEntry).where(RosterEntry.workflow_id == wf)
            )
        return int(count or 0)

    started = StoreBatch(
        records=[record(wf, 1, kind=EventKind.RUN_STARTED, payload={"stage": "scoping"})],
        row=registry_row(wf, event_id=1),
    )
    await ActivityEnvironment().run(activities.persist, started)
    assert await roster_rows() > 0
    async with session_scope(sessionmaker) as session:  # stands for "unchanged since"
        await session.execute(delete(RosterEntry).where(RosterEntry.workflow_id == wf))

    await ActivityEnvironment().run(activities.persist, _batch(wf, [2]))
    assert await roster_rows() == 0  # an ordinary command's row left the people alone

    changed = StoreBatch(
        records=[record(wf, 3, kind=EventKind.DEPUTIES_CHANGED, payload={"stage": "scoping"})],
        row=registry_row(wf, event_id=3),
    )
    await ActivityEnvironment().run(activities.persist, changed)
    assert await roster_rows() > 0  # written again with the fact that changes them


# --------------------------------------------------------------------------- group commit


async def _grouped(activities: StoreActivities, batches: list[StoreBatch]) -> list[object]:
    """Persist ``batches`` at once, queued behind a held lock so that they share transactions;
    each outcome is the result or the exception of its own call."""
    async with activities._persists:
        calls = [asyncio.create_task(activities.persist(b)) for b in batches]
        while len(activities._queued) < len(batches):
            await asyncio.sleep(0)
    return list(await asyncio.gather(*calls, return_exceptions=True))


def _count_groups(monkeypatch: pytest.MonkeyPatch, activities: StoreActivities) -> list[int]:
    sizes: list[int] = []
    write_group = activities._write_group

    async def counting(batches: list[StoreBatch]) -> object:
        sizes.append(len(batches))
        return await write_group(batches)

    monkeypatch.setattr(activities, "_write_group", counting)
    return sizes


async def test_concurrent_batches_of_several_runs_share_one_transaction(
    sessionmaker: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    activities = StoreActivities(sessionmaker)
    groups = _count_groups(monkeypatch, activities)
    runs = [new_workflow_id() for _ in range(4)]
    for wf in runs[:2]:  # two runs already under way, two new
        await activities.persist(_batch(wf, [1, 2]))

    first = [_batch(wf, [3, 4] if wf in runs[:2] else [1, 2, 3]) for wf in runs]
    results = await _grouped(activities, first)

    assert groups == [4]
    assert [r.written for r in results] == [2, 2, 3, 3]  # type: ignore[attr-defined]
    # the same batches again (a retry after a worker died): nothing written twice
    again = await _grouped(activities, first)
    assert [r.written for r in again] == [0, 0, 0, 0]  # type: ignore[attr-defined]
    async with session_scope(sessionmaker) as session:
        for wf in runs:
            verified = await LedgerRepository(session).verify(wf)
            row = await RegistryRepository(session).get(wf)
            assert verified.ok, verified
            assert row is not None
            assert row.event_id == verified.entries


async def test_a_batch_that_fails_its_group_fails_only_itself(
    sessionmaker: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch of a failed group is written again alone: the refused one (another run's
    key, a gap) fails with its own reason, the others land exactly once."""
    activities = StoreActivities(sessionmaker)
    groups = _count_groups(monkeypatch, activities)
    holder = registry_row()
    await ActivityEnvironment().run(activities.sync_registry, holder)
    good, clash, gap = new_workflow_id(), new_workflow_id(), new_workflow_id()

    results = await _grouped(
        activities,
        [_batch(good, [1, 2]), _batch(clash, [1], key=holder.key), _batch(gap, [3])],
    )

    assert groups == [3]
    ok, refused, early = results
    assert getattr(ok, "written", None) == 2
    assert isinstance(refused, ApplicationError)
    assert (refused.type, refused.non_retryable) == (PERSIST_FALLBACK, True)
    assert isinstance(early, ApplicationError)
    assert (early.type, early.non_retryable) == (PERSIST_FALLBACK, False)
    assert "ledger gap" in str(early)
    assert (await _entries(sessionmaker, good), await _entries(sessionmaker, clash)) == (2, 0)
    assert await _entries(sessionmaker, gap) == 0


async def test_a_runs_batches_never_share_a_transaction(
    sessionmaker: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stale attempt of a run beside its current one: each goes into a transaction of its
    own, in the order they came, and the chain takes each event once."""
    activities = StoreActivities(sessionmaker)
    groups = _count_groups(monkeypatch, activities)
    wf, other = new_workflow_id(), new_workflow_id()

    results = await _grouped(
        activities, [_batch(wf, [1, 2]), _batch(other, [1]), _batch(wf, [1, 2]), _batch(wf, [3])]
    )

    assert [getattr(r, "written", r) for r in results] == [2, 1, 0, 1]
    assert groups == [2]  # wf's first batch with other's; wf's later ones alone, in order
    async with session_scope(sessionmaker) as session:
        verified = await LedgerRepository(session).verify(wf)
    assert (verified.ok, verified.entries) == (True, 3)


async def test_a_cancelled_caller_leaves_the_queue(sessionmaker: Sessions) -> None:
    activities = StoreActivities(sessionmaker)
    wf, other = new_workflow_id(), new_workflow_id()
    async with activities._persists:
        gone = asyncio.create_task(activities.persist(_batch(wf, [1])))
        kept = asyncio.create_task(activities.persist(_batch(other, [1])))
        while len(activities._queued) < 2:
            await asyncio.sleep(0)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert len(activities._queued) == 1
    assert (await kept).written == 1
    assert await _entries(sessionmaker, wf) == 0
    assert not activities._queued
