"""Outage answers: every 503 says when to try again, and says what is out.

- No worker polls the task queue: ``/readyz`` names the worker check; a command answers 503
  ``no-worker`` within seconds (it used to wait out the 15 s RPC timeout and then blame
  Temporal), and once a worker is back the same Idempotency-Key gets the command's outcome.
- A run whose ledger the store refused for good answers 503 ``ledger-blocked`` on its ledger
  routes instead of a chain that silently stops.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from services.api.problems import problem_of, problem_response
from services.commands.errors import Outage, Unavailable
from services.settings import Settings
from services.store.blocked import BlockedRepository
from services.store.db import session_scope
from services.store.errors import Permanent
from services.worker.main import release_activities
from services.worker.notify import LogAdapter
from tests.api.conftest import auth
from tests.api.test_use_cases import create, new_body
from tests.harness import HOOK_SECRET, ReleaseHarness, api_client, release_worker

PROBLEM = "application/problem+json"
FAIL_FAST_S = 5.0  # "a few seconds"; the RPC timeout it replaces is 15 s


def assert_503(r: httpx.Response, code: str) -> dict[str, Any]:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == PROBLEM
    assert int(r.headers["retry-after"]) > 0
    problem: dict[str, Any] = r.json()
    assert problem["type"] == f"urn:releasegate:problem:{code}", problem
    return problem


async def timed(request: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


async def test_without_a_worker_readiness_and_commands_fail_fast(
    api_settings: Settings, temporal_env: WorkflowEnvironment, release: ReleaseHarness
) -> None:
    task_queue = f"no-worker-{uuid.uuid4().hex[:8]}"
    settings = api_settings.model_copy(update={"task_queue": task_queue})
    async with api_client(settings) as api:
        # a fresh process knows nothing of the workers: the start is sent and lands (Temporal
        # keeps it), but nothing can read the run, which is found out within seconds
        body = new_body("low")
        r, elapsed = await timed(api.post("/v1/use-cases", json=body, headers=auth("dana")))
        problem = assert_503(r, "no-worker")
        assert elapsed < FAIL_FAST_S, elapsed
        assert "the run was started" in problem["detail"]
        print(f"no worker: start answered 503 no-worker after {elapsed:.2f} s")  # noqa: T201
        uc_id = f"usecase-{body['key']}"

        problem = assert_503(await api.get("/readyz"), "not-ready")
        assert problem["failed"] == ["worker"]
        assert problem["checks"]["temporal"] == problem["checks"]["database"] == "ok"
        assert problem["checks"]["worker"] == f"no worker polls task queue '{task_queue}'"
        assert "worker: no worker polls" in problem["detail"]

        # the poller answer is known now: a command is not even sent
        r, elapsed = await timed(
            api.post(f"/v1/use-cases/{uc_id}/cancel", json={}, headers=auth("dana"))
        )
        problem = assert_503(r, "no-worker")
        assert elapsed < 1.0, elapsed
        assert problem["task_queue"] == task_queue
        assert "not sent" in problem["detail"]

    # a fresh process knows nothing yet: the Update is sent, and found stuck within seconds
    keyed = {**auth("dana"), "Idempotency-Key": "cancel-1"}
    async with api_client(settings) as api:
        r, elapsed = await timed(api.post(f"/v1/use-cases/{uc_id}/cancel", json={}, headers=keyed))
        problem = assert_503(r, "no-worker")
        assert r.headers["retry-after"] == "10"
        assert elapsed < FAIL_FAST_S, elapsed
        assert "may still take effect" in problem["detail"]
        print(f"no worker: command answered 503 no-worker after {elapsed:.2f} s")  # noqa: T201

        # known now: a start is not even sent
        r, elapsed = await timed(api.post("/v1/use-cases", json=new_body(), headers=auth("dana")))
        assert "the run was not started" in assert_503(r, "no-worker")["detail"]
        assert elapsed < 1.0, elapsed

        async with (
            httpx.AsyncClient() as http,
            release_worker(
                temporal_env.client,
                task_queue,
                release_activities(release.sessionmaker, [LogAdapter()], http, HOOK_SECRET),
            ),
        ):
            await _ready(api)
            r = await api.post(f"/v1/use-cases/{uc_id}/cancel", json={}, headers=keyed)
            assert r.status_code == 200, r.text
            assert r.json()["stage"] == "cancelled"


async def _ready(api: httpx.AsyncClient, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (r := await api.get("/readyz")).status_code != 200:
        assert asyncio.get_running_loop().time() < deadline, r.text
        await asyncio.sleep(0.25)
    assert r.json()["checks"] == {"temporal": "ok", "database": "ok", "worker": "ok"}


async def test_database_and_temporal_outages_say_when_to_retry(api_settings: Settings) -> None:
    no_db = api_settings.model_copy(
        update={"database_url": "postgresql+asyncpg://postgres@127.0.0.1:1/none"}
    )
    async with api_client(no_db) as api:
        assert_503(await api.get("/v1/use-cases", headers=auth("eve")), "db-unavailable")
        problem = assert_503(await api.get("/readyz"), "not-ready")
        assert "database" in problem["failed"]
    no_temporal = api_settings.model_copy(update={"temporal_address": "127.0.0.1:1"})
    async with api_client(no_temporal) as api:
        r = await api.post("/v1/use-cases", json=new_body(), headers=auth("dana"))
        assert_503(r, "temporal-unavailable")
        problem = assert_503(await api.get("/readyz"), "not-ready")
        assert problem["checks"]["worker"] == "unknown: Temporal is unreachable"


@pytest.mark.parametrize("code", ["anything", "no-worker", "ledger-blocked"])
def test_every_503_document_carries_retry_after(code: str) -> None:
    assert problem_response(503, "down", code).headers["retry-after"].isdigit()
    assert "retry-after" not in problem_response(409, "no", code).headers
    assert problem_response(503, "x", code, retry_after=42).headers["retry-after"] == "42"


async def test_a_blocked_ledger_answers_503_until_it_is_lifted(
    api: httpx.AsyncClient, release: ReleaseHarness
) -> None:
    uc = await create(api, "low")
    base = f"/v1/use-cases/{uc['id']}"
    entries = await _settled(api, uc)
    async with session_scope(release.sessionmaker) as session:
        await BlockedRepository(session).mark(
            uc["id"], len(entries) + 1, Permanent.VALUE_TOO_LONG, "value too long"
        )
    try:
        for path in ("ledger", "ledger/verify"):
            problem = assert_503(
                await api.get(f"{base}/{path}", headers=auth("eve")), "ledger-blocked"
            )
            assert problem["blocked_before_seq"] == len(entries) + 1
            assert problem["reason"] == "value_too_long"
        r = await api.get(f"{base}/ledger", headers=auth("eve"))
        assert r.headers["retry-after"] == "300"
    finally:
        async with session_scope(release.sessionmaker) as session:
            await BlockedRepository(session).clear(uc["id"])
    r = await api.get(f"{base}/ledger/verify", headers=auth("eve"))
    assert r.status_code == 200
    assert r.json()["ok"] is True


async def _settled(api: httpx.AsyncClient, uc: dict[str, Any]) -> list[dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        state = (await api.get(f"/v1/use-cases/{uc['id']}", headers=auth("eve"))).json()
        r = await api.get(f"/v1/use-cases/{uc['id']}/ledger", headers=auth("eve"))
        if r.status_code == 200 and len(r.json()) == state["event_count"]:
            entries: list[dict[str, Any]] = r.json()
            return entries
        assert asyncio.get_running_loop().time() < deadline, r.text
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    ("outage", "retry_after"),
    [(Outage.NO_WORKER, "10"), (Outage.WORKFLOW_TASK_FAILING, "60"), (Outage.UNREACHABLE, "5")],
)
def test_outages_are_503_with_their_facts(outage: Outage, retry_after: str) -> None:
    problem = problem_of(Unavailable(outage, "x", run_status="RUNNING"))
    assert (problem.status, problem.code, problem.extra) == (
        503,
        outage.value,
        {"run_status": "RUNNING"},
    )
    response = problem_response(problem.status, problem.detail, problem.code, **problem.extra)
    assert response.headers["retry-after"] == retry_after
