"""Read-your-writes (issue 13, scenario 5): after a 2xx command, the caller's next inbox and
list reads reflect it — through the API on the real dev server, worker and SQLite store.

Before, the read model was written only by the workflow's ``registry.sync``, after the ledger
and the run's notices, and right after a 200 decision the approver's inbox still showed the
gate (40 of 40 reads). The worker here sends its notices to a webhook that takes as long to
answer as a chat service does, as in production. Now the command layer writes the row from the
command's answer (``services.commands.read_model``) before it answers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from temporalio.testing import WorkflowEnvironment

from services.store.db import make_engine, make_sessionmaker
from services.worker.main import release_activities
from services.worker.notify import LogAdapter, WebhookAdapter
from tests.api.conftest import approve, auth
from tests.api.test_use_cases import create, walk
from tests.harness import HOOK_SECRET, api_client, release_worker, serve_loopback, suite_settings

RUNS = 20  # two decisions each: 40 decisions
CONCURRENCY = 10
NOTICE_LATENCY_S = 0.3  # what a chat service or paging bridge takes to take a notice


@pytest.fixture(scope="module")
async def slow_notices() -> AsyncIterator[str]:
    """A notification webhook that answers after ``NOTICE_LATENCY_S``."""

    async def take(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(NOTICE_LATENCY_S)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/notify", take)
    runner, url = await serve_loopback(app)
    yield f"{url}/notify"
    await runner.cleanup()


@pytest.fixture(scope="module")
async def api(
    temporal_env: WorkflowEnvironment, store_url: str, slow_notices: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The API, and a worker whose notices also go to the slow webhook."""
    settings = suite_settings(temporal_env, f"ryw-{uuid.uuid4().hex[:8]}", store_url)
    engine = make_engine(store_url)
    async with (
        httpx.AsyncClient() as http,
        release_worker(
            temporal_env.client,
            settings.task_queue,
            release_activities(
                make_sessionmaker(engine),
                [LogAdapter(), WebhookAdapter(http, slow_notices, HOOK_SECRET)],
                http,
                HOOK_SECRET,
            ),
        ),
        api_client(settings) as api,
    ):
        yield api
    await engine.dispose()


async def inbox(api: httpx.AsyncClient, person: str) -> set[str]:
    r = await api.get("/v1/approvals/pending", headers=auth(person))
    assert r.status_code == 200, r.text
    return {item["id"] for item in r.json()["items"]}


async def listed(api: httpx.AsyncClient, person: str, run: str) -> dict[str, Any] | None:
    r = await api.get("/v1/use-cases", params={"limit": 200}, headers=auth(person))
    assert r.status_code == 200, r.text
    return next((item for item in r.json()["items"] if item["id"] == run), None)


async def decide_and_read(
    api: httpx.AsyncClient, run: str, gate: str, person: str, next_gate: str
) -> list[str]:
    """One decision, then at once the approver's inbox and list: what was stale (if anything)."""
    r = await approve(api, f"/v1/use-cases/{run}", gate, person)
    assert r.status_code == 200, r.text
    assert r.json()["stage"] == next_gate
    stale = []
    if run in await inbox(api, person):
        stale.append(f"{run}: {person}'s inbox still shows {gate}")
    row = await listed(api, person, run)
    if row is None or row["stage"] != next_gate or row["gate"] != next_gate:
        stale.append(f"{run}: {person}'s list shows {row and (row['stage'], row['gate'])}")
    elif person in row["pending_approvers"]:
        stale.append(f"{run}: the list says {gate} still waits on {person}")
    return stale


async def gated_runs(api: httpx.AsyncClient, n: int) -> list[str]:
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one() -> str:
        async with sem:
            state = await walk(api, await create(api, "low"), "risk_signoff")
            return str(state["id"])

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def test_the_deciders_next_reads_reflect_the_decision(api: httpx.AsyncClient) -> None:
    runs = await gated_runs(api, RUNS)
    stale: list[str] = []
    for run in runs:
        assert run in await inbox(api, "rita")
        stale += await decide_and_read(api, run, "risk_signoff", "rita", "ops_handoff")
        stale += await decide_and_read(api, run, "ops_handoff", "olga", "go_live")
        # whoever the run waits on now sees it at once as well
        assert run in await inbox(api, "bo")
    assert stale == []


async def test_read_your_writes_at_concurrency_10(api: httpx.AsyncClient) -> None:
    runs = await gated_runs(api, RUNS)
    sem = asyncio.Semaphore(CONCURRENCY)

    async def both(run: str) -> list[str]:
        async with sem:
            first = await decide_and_read(api, run, "risk_signoff", "rita", "ops_handoff")
            return first + await decide_and_read(api, run, "ops_handoff", "olga", "go_live")

    stale = [s for found in await asyncio.gather(*(both(r) for r in runs)) for s in found]
    assert stale == []
