"""The ledger database goes away mid-run, on PostgreSQL, and comes back.

While it is gone, decisions still land in the workflow (the API answers 200), the ledger
activity retries with growing intervals, and the ledger endpoints answer 503. Once it is back
the ledger catches up: every event exactly once, in order, chain intact.

The outage is real: the run's database stops accepting connections
(``ALTER DATABASE … ALLOW_CONNECTIONS false``) and every open connection to it is terminated.
PostgreSQL comes from ``RELEASEGATE_TEST_POSTGRES_URL`` like the store tests; under ``CI=true``
an unreachable server fails the test instead of skipping it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from temporalio.testing import WorkflowEnvironment

from services.store.db import make_engine, make_sessionmaker, session_scope
from services.store.migrate import upgrade_head
from services.store.models import LedgerEntry
from services.store.tempdb import admin_engine
from services.worker.main import release_activities
from services.worker.notify import LogAdapter
from tests.api.conftest import approve, auth
from tests.api.test_use_cases import create, walk
from tests.harness import HOOK_SECRET, api_client, release_worker, suite_settings
from tests.store.conftest import POSTGRES_ADMIN_URL, fresh_database
from workflows.activities import LEDGER_APPEND, REGISTRY_SYNC

PROBLEM = "application/problem+json"
OUTAGE_MIN_S = 5.0  # the workflow's store retry starts at 1 s and doubles: keep this short
OUTAGE_MAX_S = 15.0
RECOVERY_S = 30.0


async def set_connections(database: str, *, allowed: bool) -> None:
    """Open or close ``database`` to new connections; closing also ends the open ones."""
    engine = admin_engine(POSTGRES_ADMIN_URL)
    try:
        async with engine.connect() as connection:
            flag = "true" if allowed else "false"
            await connection.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {flag}'))
            if not allowed:
                await connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": database},
                )
    finally:
        await engine.dispose()


@asynccontextmanager
async def stack(temporal_env: WorkflowEnvironment, url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A worker with the real activities and the API, both on the database at ``url``."""
    engine = make_engine(url)
    task_queue = f"outage-{uuid.uuid4().hex[:8]}"
    settings = suite_settings(temporal_env, task_queue, url)
    try:
        async with (
            httpx.AsyncClient() as http,
            release_worker(
                temporal_env.client,
                task_queue,
                release_activities(make_sessionmaker(engine), [LogAdapter()], http, HOOK_SECRET),
            ),
            api_client(settings) as api,
        ):
            yield api
    finally:
        await engine.dispose()


async def ledger_retries(env: WorkflowEnvironment, workflow_id: str) -> list[tuple[int, float]]:
    """(attempt, current retry interval in s) of the pending store activity, if any.

    The run loop ships ledger entries, then notifications, then the read model: when the outage
    begins while the read-model sync is in flight, that is the activity seen retrying first."""
    description = await env.client.get_workflow_handle(workflow_id).describe()
    return [
        (p.attempt, p.current_retry_interval.ToTimedelta().total_seconds())
        for p in description.raw_description.pending_activities
        if p.activity_type.name in (LEDGER_APPEND, REGISTRY_SYNC)
    ]


async def caught_up(api: httpx.AsyncClient, uc_id: str, timeout: float) -> list[dict[str, Any]]:
    """The ledger once it holds every event the workflow has recorded."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = ""
    while loop.time() < deadline:
        state = (await api.get(f"/v1/use-cases/{uc_id}", headers=auth("eve"))).json()
        r = await api.get(f"/v1/use-cases/{uc_id}/ledger", headers=auth("eve"))
        last = f"{r.status_code} {r.text[:200]}"
        if r.status_code == 200 and len(r.json()) == state["event_count"]:
            entries: list[dict[str, Any]] = r.json()
            return entries
        await asyncio.sleep(0.25)
    raise AssertionError(f"the ledger of {uc_id} did not catch up in {timeout} s: {last}")


async def test_ledger_outage_loses_nothing(temporal_env: WorkflowEnvironment) -> None:
    async with fresh_database("postgresql") as url:
        await upgrade_head(url)
        database = make_url(url).database
        assert database
        async with stack(temporal_env, url) as api:
            uc = await create(api, "low")
            uc_id = uc["id"]
            await walk(api, uc, "risk_signoff")
            before = await caught_up(api, uc_id, RECOVERY_S)
            verify = await api.get(f"/v1/use-cases/{uc_id}/ledger/verify", headers=auth("eve"))
            assert (
                verify.json().items()
                >= {"ok": True, "entries": len(before), "first_bad_seq": None}.items()
            )

            loop = asyncio.get_running_loop()
            await set_connections(database, allowed=False)
            outage_started = loop.time()
            try:
                # decisions still land in the workflow
                for gate, person, next_stage in (
                    ("risk_signoff", "rita", "ops_handoff"),
                    ("ops_handoff", "olga", "go_live"),
                ):
                    r = await approve(api, f"/v1/use-cases/{uc_id}", gate, person)
                    assert r.status_code == 200, r.text
                    assert r.json()["stage"] == next_stage
                state = (await api.get(f"/v1/use-cases/{uc_id}", headers=auth("eve"))).json()
                assert state["event_count"] > len(before)
                history = (
                    await api.get(f"/v1/use-cases/{uc_id}/history", headers=auth("eve"))
                ).json()
                assert [(e["actor"], e["gate"]) for e in history if e["kind"] == "decision"] == [
                    ("rita", "risk_signoff"),
                    ("olga", "ops_handoff"),
                ]

                # the ledger endpoints say the database is gone
                for path in ("ledger", "ledger/verify", "evidence-pack"):
                    r = await api.get(f"/v1/use-cases/{uc_id}/{path}", headers=auth("eve"))
                    assert r.status_code == 503, (path, r.text)
                    assert r.headers["content-type"] == PROBLEM

                # the ledger activity keeps retrying, each interval longer than the last
                seen: dict[int, float] = {}
                while loop.time() - outage_started < OUTAGE_MAX_S:
                    for attempt, interval in await ledger_retries(temporal_env, uc_id):
                        seen[attempt] = interval
                    if max(seen, default=0) >= 3 and loop.time() - outage_started >= OUTAGE_MIN_S:
                        break
                    await asyncio.sleep(0.2)
                assert max(seen, default=0) >= 3, seen
                intervals = [seen[a] for a in sorted(seen) if seen[a] > 0]
                assert intervals == sorted(intervals), seen
                assert intervals[-1] > intervals[0], seen
            finally:
                await set_connections(database, allowed=True)

            after = await caught_up(api, uc_id, RECOVERY_S)
            assert after[: len(before)] == before  # what was there is untouched
            assert [e["seq"] for e in after] == list(range(1, len(after) + 1))
            decided = [(e["actor"], e["payload"]["gate"]) for e in after if e["kind"] == "decision"]
            assert decided == [("rita", "risk_signoff"), ("olga", "ops_handoff")]
            passed = [e["payload"]["gate"] for e in after if e["kind"] == "gate_passed"]
            assert passed == ["risk_signoff", "ops_handoff"]
            verify = await api.get(f"/v1/use-cases/{uc_id}/ledger/verify", headers=auth("eve"))
            assert verify.status_code == 200
            assert (
                verify.json().items()
                >= {"ok": True, "entries": len(after), "first_bad_seq": None}.items()
            )

            # exactly once, straight from the table
            engine = make_engine(url)
            try:
                async with session_scope(make_sessionmaker(engine)) as session:
                    rows, distinct = (
                        await session.execute(
                            select(
                                func.count(), func.count(func.distinct(LedgerEntry.event_id))
                            ).where(LedgerEntry.workflow_id == uc_id)
                        )
                    ).one()
            finally:
                await engine.dispose()
            assert rows == distinct == len(after)

            # and the run carries on normally afterwards
            state = await walk(api, state, "live")
            assert state["stage"] == "live"
            final = await caught_up(api, uc_id, RECOVERY_S)
            assert final[-1]["seq"] == len(final)
