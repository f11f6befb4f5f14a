"""The Slack bot end to end: the real dev server, a worker whose notifications go through the
real Slack adapter, the API in-process with Slack on, and a Slack Web API double on loopback."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from services.settings import Settings
from services.store.db import make_engine, make_sessionmaker
from services.worker.main import build_adapters, release_activities
from tests.harness import HOOK_SECRET, api_client, release_worker, suite_settings
from tests.slack.double import SlackDouble
from tests.slack.helpers import SECRET, TOKEN, Slack


@pytest.fixture(scope="session")
async def slack_double() -> AsyncIterator[SlackDouble]:
    double = SlackDouble(TOKEN)
    await double.start()
    yield double
    await double.stop()


@pytest.fixture(scope="session")
async def slack_settings(
    temporal_env: WorkflowEnvironment, store_url: str, slack_double: SlackDouble
) -> Settings:
    return suite_settings(
        temporal_env,
        f"slack-{uuid.uuid4().hex[:8]}",
        store_url,
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=slack_double.api_url,
    )


@pytest.fixture(scope="session")
async def slack_worker(
    temporal_env: WorkflowEnvironment, slack_settings: Settings
) -> AsyncIterator[None]:
    """The worker as ``services.worker.main`` wires it: Slack is configured, so its adapters
    include the Slack adapter, here pointed at the double."""
    engine = make_engine(slack_settings.resolved_database_url)
    async with httpx.AsyncClient() as http:
        adapters = build_adapters(slack_settings, http)
        assert [a.name for a in adapters] == ["log", "slack"]
        async with release_worker(
            temporal_env.client,
            slack_settings.task_queue,
            release_activities(
                make_sessionmaker(engine), adapters, http, HOOK_SECRET, client=temporal_env.client
            ),
        ):
            yield
    await engine.dispose()


@pytest.fixture(scope="session")
async def slack_api(
    slack_settings: Settings, slack_worker: None
) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(slack_settings) as client:
        yield client


@pytest.fixture
def slack(slack_api: httpx.AsyncClient, slack_double: SlackDouble) -> Slack:
    slack_double.fail_channels.clear()
    slack_double.delays.clear()
    return Slack(slack_api, slack_double)
