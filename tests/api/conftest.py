"""The API in-process (httpx over ASGI) against the real dev server, worker and SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from services.settings import Settings
from tests.harness import ReleaseHarness, api_client, policy_variant, suite_settings


@pytest.fixture(scope="session")
async def api_settings(
    temporal_env: WorkflowEnvironment,
    release: ReleaseHarness,
    store_url: str,
) -> Settings:
    return suite_settings(temporal_env, release.task_queue, store_url)


@pytest.fixture(scope="session")
async def api(api_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(api_settings) as client:
        yield client


@pytest.fixture(scope="module")
async def expiring_api(
    api_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with a policy whose low-tier risk_signoff expires about a second after it
    opens (the dev server has no time skipping; the worker runs whatever policy a run pins)."""

    def expiring(doc: dict[str, Any]) -> None:
        gate = doc["tiers"]["low"]["gates"][0]
        assert gate["gate"] == "risk_signoff"
        gate.update(sla_hours=0.0002, remind_before_hours=[], expire_after_hours=0.0003)

    path = policy_variant(tmp_path_factory.mktemp("policy"), "2026.1-expiring", expiring)
    async with api_client(api_settings.model_copy(update={"policy_path": path})) as client:
        yield client


def auth(person: str) -> dict[str, str]:
    return {"Authorization": f"Bearer dev-{person}"}


async def seen(api: httpx.AsyncClient, run: str, person: str) -> dict[str, str]:
    """``If-Match`` of ``person`` having reviewed the state of ``run`` (a use case's or a
    change's path, ``/v1/use-cases/<id>[/changes/<change id>]``): its ETag."""
    r = await api.get(run, headers=auth(person))
    assert r.status_code == 200, r.text
    return {"If-Match": r.headers["etag"]}


async def approve(
    api: httpx.AsyncClient,
    run: str,
    gate: str,
    person: str,
    *,
    comment: str = "",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """``person`` reads ``run``'s state and approves ``gate`` on the evidence it showed
    (``If-Match``), as a client does."""
    return await api.post(
        f"{run}/gates/{gate}/decisions",
        json={"decision": "approve", "comment": comment},
        headers={**auth(person), **await seen(api, run, person), **(headers or {})},
    )
