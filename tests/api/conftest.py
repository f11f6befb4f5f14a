"""The API in-process (httpx over ASGI) against the real dev server, worker and SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from services.api.app import create_app
from services.settings import Settings
from tests.harness import ReleaseHarness
from tests.workflows.helpers import ROOT


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


@pytest.fixture(scope="module")
async def expiring_api(
    api_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with a policy whose low-tier risk_signoff expires about a second after it
    opens (the dev server has no time skipping; the worker runs whatever policy a run pins)."""
    doc = yaml.safe_load((ROOT / "config" / "policy.yaml").read_text())
    doc["version"] = "2026.1-expiring"
    gate = doc["tiers"]["low"]["gates"][0]
    assert gate["gate"] == "risk_signoff"
    gate.update(sla_hours=0.0002, remind_before_hours=[], expire_after_hours=0.0003)
    path: Path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    app = create_app(api_settings.model_copy(update={"policy_path": path}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
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
