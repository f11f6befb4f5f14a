"""A ledger the store refuses for good is loud and bounded, and recovers whole (issue 13).

On PostgreSQL, an operator's mistake makes every new ledger row of an approver impossible
(a CHECK constraint; the store classifies the refusal as permanent — ``constraint`` — unlike
an outage). The run keeps answering commands (their facts wait in the run, in order); the
run's ledger endpoints answer 503 ``ledger-blocked`` naming the first event that is missing,
and ``/metrics`` counts the run in ``releasegate_ledger_blocked``. Once the cause is removed the
next try (every ``BLOCKED_RETRY_DELAY``; shortened here) ships everything: every event once, in
order, the chain verifies, the block and the gauge are gone.

Found with this test: the store's fast path (the ``store.persist`` local activity) raised its
refusal unwrapped, and the run loop, catching only ``ActivityError``, failed the whole run.
"""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from sqlalchemy import text
from temporalio.testing import WorkflowEnvironment

from services.store.db import make_engine
from services.store.migrate import upgrade_head
from services.worker import activities as store_activities
from tests.api.conftest import approve, auth
from tests.api.test_use_cases import create, walk
from tests.faults.test_ledger_outage import caught_up, stack
from tests.store.conftest import fresh_database

PROBLEM = "application/problem+json"
SETTLE_S = 30.0
GUARD = "ck_test_operator_mistake"


async def operator(url: str, statement: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def blocked_gauge(api: httpx.AsyncClient) -> float:
    r = await api.get("/metrics")
    assert r.status_code == 200, r.text
    found = re.search(r"^releasegate_ledger_blocked (\S+)$", r.text, re.MULTILINE)
    assert found, "releasegate_ledger_blocked is not exported"
    return float(found.group(1))


async def until_blocked(api: httpx.AsyncClient, run: str) -> dict[str, object]:
    deadline = asyncio.get_running_loop().time() + SETTLE_S
    while True:
        r = await api.get(f"/v1/use-cases/{run}/ledger/verify", headers=auth("eve"))
        if r.status_code == 503 and r.json().get("type", "").endswith("ledger-blocked"):
            problem: dict[str, object] = r.json()
            return problem
        assert asyncio.get_running_loop().time() < deadline, f"never blocked: {r.text}"
        await asyncio.sleep(0.25)


async def test_a_blocked_ledger_is_loud_and_ships_everything_once_fixed(
    temporal_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        store_activities, "BLOCKED_RETRY_DELAY", store_activities.timedelta(seconds=2)
    )
    async with fresh_database("postgresql") as url:
        await upgrade_head(url)
        async with stack(temporal_env, url) as api:
            uc = await walk(api, await create(api, "low"), "risk_signoff")
            run = uc["id"]
            before = await caught_up(api, run, SETTLE_S)
            assert await blocked_gauge(api) == 0

            await operator(
                url,
                f"ALTER TABLE ledger_entries ADD CONSTRAINT {GUARD} CHECK (actor <> 'rita') "
                "NOT VALID",
            )
            r = await approve(api, f"/v1/use-cases/{run}", "risk_signoff", "rita")
            assert r.status_code == 200, r.text  # the decision is the run's: it waits, in order
            problem = await until_blocked(api, run)
            assert problem["status"] == 503
            assert problem["blocked_before_seq"] == len(before) + 1
            assert problem["reason"] == "constraint"
            r = await api.get(f"/v1/use-cases/{run}/ledger", headers=auth("eve"))
            assert r.status_code == 503
            assert r.headers["content-type"] == PROBLEM
            assert int(r.headers["retry-after"]) > 0
            assert await blocked_gauge(api) == 1
            # still blocked after a few more tries, and the run goes on recording
            await asyncio.sleep(5)
            assert (await until_blocked(api, run))["blocked_before_seq"] == len(before) + 1
            r = await approve(api, f"/v1/use-cases/{run}", "ops_handoff", "olga")
            assert r.status_code == 200, r.text

            await operator(url, f"ALTER TABLE ledger_entries DROP CONSTRAINT {GUARD}")
            after = await caught_up(api, run, SETTLE_S)
            assert after[: len(before)] == before
            assert [e["seq"] for e in after] == list(range(1, len(after) + 1))
            decided = [(e["actor"], e["payload"]["gate"]) for e in after if e["kind"] == "decision"]
            assert decided == [("rita", "risk_signoff"), ("olga", "ops_handoff")]
            r = await api.get(f"/v1/use-cases/{run}/ledger/verify", headers=auth("eve"))
            assert r.status_code == 200, r.text
            assert r.json()["ok"] is True
            assert await blocked_gauge(api) == 0
