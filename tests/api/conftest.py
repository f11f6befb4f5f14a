"""The API in-process (httpx over ASGI) against the real dev server, worker and SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from services.api.app import create_app
from services.settings import Settings
from tests.harness import ReleaseHarness


@pytest.fixture(scope="session")
async def api_settings(
    temporal_env: WorkflowEnvironment,
    release: ReleaseHarness,
    store_url: str,
) -> Settings:
    return Settings(
        TEMPORAL_ADDRESS=temporal_env.client.service_client.config.target_host,
        RELEASEGATE_TASK_QUEUE=release.task_queue,
        RELEASEGATE_DATABASE_URL=store_url,
    )


@pytest.fixture(scope="session")
async def api(api_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(api_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


def auth(person: str) -> dict[str, str]:
    return {"Authorization": f"Bearer dev-{person}"}
