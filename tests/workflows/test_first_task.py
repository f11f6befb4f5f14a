"""A run's first facts carry the same time in the ledger, in the running workflow and in a
replay of it, even when its first workflow task was completed empty.

The first task records the run's start and hands it to the store step (a local activity). A
query sent right after the start (the API reads the state at once) reaches the worker with
that first task; the SDK answers it by completing the task at once, with no command, while the
store step still runs, and the facts are stored in the next task. A worker replaying the run
later merges those two tasks, so the first activation it sees carries the second task's time.
The start's facts are therefore dated by the run's start event (generation 1), which every
replay sees the same.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from services.commands.start import search_attributes
from services.store.db import make_engine, make_sessionmaker, session_scope
from services.store.ledger import LedgerRepository
from services.worker.main import release_activities
from services.worker.notify import LogAdapter
from tests.harness import release_worker
from tests.workflows.helpers import make_input
from workflows.activities import STORE_PERSIST, StoreBatch, StoreResult
from workflows.release import UseCaseRelease


def slow_first_store(
    activities: list[Any], holding: asyncio.Event, release: asyncio.Event
) -> list[Any]:
    """The worker's activities, with a store step that holds its first call (``holding`` is
    set once it does) until ``release``."""
    persist = next(
        a for a in activities if activity._Definition.must_from_callable(a).name == STORE_PERSIST
    )
    held = False

    @activity.defn(name=STORE_PERSIST)
    async def slow_persist(batch: StoreBatch) -> StoreResult:
        nonlocal held
        if not held:
            held = True
            holding.set()
            await release.wait()
        result: StoreResult = await persist(batch)
        return result

    return [slow_persist if a is persist else a for a in activities]


async def first_task_was_empty(handle: WorkflowHandle) -> bool:
    kinds = [EventType.Name(e.event_type) async for e in handle.fetch_history_events()]
    # started, then a task scheduled, started and completed, then straight the next task
    return kinds[1:5] == [
        "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
        "EVENT_TYPE_WORKFLOW_TASK_STARTED",
        "EVENT_TYPE_WORKFLOW_TASK_COMPLETED",
        "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
    ]


async def test_the_start_keeps_its_time_across_an_empty_first_task_and_a_replay(
    temporal_env: WorkflowEnvironment, store_url: str
) -> None:
    engine = make_engine(store_url)
    sessionmaker = make_sessionmaker(engine)
    task_queue = f"first-task-{uuid.uuid4().hex[:8]}"
    holding, release = asyncio.Event(), asyncio.Event()
    client = temporal_env.client
    try:
        inp = make_input("high")
        # started as the API starts it: with its search attributes, so the first task has
        # nothing to upsert; no worker polls yet
        handle = await client.start_workflow(
            UseCaseRelease.run,
            inp,
            id=f"usecase-{inp.key}",
            task_queue=task_queue,
            search_attributes=search_attributes(inp),
        )
        # a read right after the start, as the API's: the server hands it to the worker with
        # the first task, which must answer it while the store step still runs
        query = asyncio.create_task(handle.query(UseCaseRelease.events))
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient() as http:
            activities = release_activities(sessionmaker, [LogAdapter()], http, None)
            async with release_worker(
                client, task_queue, slow_first_store(activities, holding, release)
            ):
                await asyncio.wait_for(holding.wait(), timeout=30)
                await asyncio.sleep(0.5)
                release.set()
                await query
                for _ in range(100):
                    async with session_scope(sessionmaker) as session:
                        stored = await LedgerRepository(session).entries(handle.id)
                    if len(stored) >= 2:
                        break
                    await asyncio.sleep(0.05)
                running = await handle.query(UseCaseRelease.events)
            assert await first_task_was_empty(handle)
            # a new worker has no cached run: it replays the history to answer
            async with release_worker(client, task_queue, activities):
                replayed = await handle.query(UseCaseRelease.events)
    finally:
        await engine.dispose()
    assert [e.kind for e in stored[:2]] == ["run_started", "stage_entered"]
    assert [e.at for e in running[:2]] == [e.at for e in replayed[:2]]
    assert [e.at for e in running[:2]] == [e.at for e in stored[:2]]
    assert running == replayed
