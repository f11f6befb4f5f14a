"""A worker running UseCaseRelease with the real store activities on a fresh SQLite ledger."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from services.store.db import make_engine, make_sessionmaker
from services.store.migrate import upgrade_head
from services.worker.main import release_activities
from services.worker.notify import LogAdapter
from workflows.release import UseCaseRelease

HOOK_SECRET = "test-hook-secret"


@dataclass
class ReleaseHarness:
    client: Client
    task_queue: str
    sessionmaker: async_sessionmaker[AsyncSession]

    async def start(self, inp):  # type: ignore[no-untyped-def]
        return await self.client.start_workflow(
            UseCaseRelease.run,
            inp,
            id=f"usecase-{inp.key}",
            task_queue=self.task_queue,
            static_summary=inp.title,
        )


@pytest.fixture(scope="session")
async def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('ledger') / 'releasegate.db'}"
    await upgrade_head(url)
    return url


@pytest.fixture(scope="session")
async def release(temporal_env: WorkflowEnvironment, store_url: str) -> AsyncIterator[ReleaseHarness]:
    engine = make_engine(store_url)
    sessionmaker = make_sessionmaker(engine)
    task_queue = f"release-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient() as http, Worker(
        temporal_env.client,
        task_queue=task_queue,
        workflows=[UseCaseRelease],
        activities=release_activities(sessionmaker, [LogAdapter()], http, HOOK_SECRET),
    ):
        yield ReleaseHarness(temporal_env.client, task_queue, sessionmaker)
    await engine.dispose()
