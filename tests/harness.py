"""A worker running UseCaseRelease with the real activities, for workflow and API tests."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowHandle

from workflows.model import UseCaseInput
from workflows.release import UseCaseRelease

HOOK_SECRET = "test-hook-secret"
# RELEASEGATE_HOOK_ALLOWED_HOSTS of the test workers: the hook receivers listen on loopback
HOOK_ALLOWED_HOSTS = "127.0.0.1"


@dataclass
class ReleaseHarness:
    client: Client
    task_queue: str
    sessionmaker: async_sessionmaker[AsyncSession]

    async def start(self, inp: UseCaseInput) -> WorkflowHandle:
        return await self.client.start_workflow(
            UseCaseRelease.run,
            inp,
            id=f"usecase-{inp.key}",
            task_queue=self.task_queue,
            static_summary=inp.title,
        )
