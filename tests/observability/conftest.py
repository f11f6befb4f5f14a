"""The API in-process over the session's dev server, worker and store (as tests/api does)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from services.api.app import create_app
from services.settings import Settings
from tests.harness import ReleaseHarness


@pytest.fixture(scope="module")
def base_settings(
    temporal_env: WorkflowEnvironment, release: ReleaseHarness, store_url: str
) -> Callable[..., Settings]:
    def make(**extra: Any) -> Settings:
        values: dict[str, Any] = {
            "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
            "RELEASEGATE_TASK_QUEUE": release.task_queue,
            "RELEASEGATE_DATABASE_URL": store_url,
        }
        values.update(extra)
        return Settings(**values)

    return make


@pytest.fixture(scope="module")
async def make_api(
    base_settings: Callable[..., Settings],
) -> AsyncIterator[Callable[..., Any]]:
    """A fresh app (own gateway, own caches) per call; all closed at module end."""
    async with AsyncExitStack() as stack:

        async def make(**extra: Any) -> httpx.AsyncClient:
            app = create_app(base_settings(**extra))
            await stack.enter_async_context(app.router.lifespan_context(app))
            return await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
            )

        yield make
