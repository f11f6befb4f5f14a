"""Values at the API's limits reach PostgreSQL, and a value no retry can store is loud.

PostgreSQL enforces varchar lengths (SQLite does not), so this is where a column too narrow
for what the API accepts shows: a use case keyed with 63 characters raises a change whose run
records ``<key>/change-1`` (77) and ``<title> — change-1: <summary…>`` (up to 298). Before the
columns were sized from ``workflows.limits`` every ledger entry and read-model row of that run
was refused, and the activity retried forever without a word.

A value that really cannot be stored (a refused Signal claiming a 300-character actor) is
recorded as a blocked ledger: the API answers 503 ``ledger-blocked`` for the run, the gauge
counts it, and the worker logs it.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from services.store.db import make_engine, make_sessionmaker, session_scope
from services.store.migrate import upgrade_head
from services.store.models import LedgerBlock, UseCase
from tests.api.conftest import approve, auth
from tests.api.test_use_cases import new_body, walk
from tests.faults.test_ledger_outage import caught_up, stack
from tests.store.conftest import fresh_database
from workflows import limits
from workflows.model import Channel, Decision, Gate, GateDecision
from workflows.release import UseCaseRelease

PROBLEM = "application/problem+json"
SETTLE_S = 30.0


def _longest_body() -> dict[str, Any]:
    key = f"k{uuid.uuid4().hex}"
    key = (key + "-" * limits.USE_CASE_KEY_MAX)[: limits.USE_CASE_KEY_MAX - 1] + "z"
    return new_body("low", key=key, title="T" * limits.TITLE_MAX)


async def _registry_row(url: str, workflow_id: str, timeout: float = SETTLE_S) -> UseCase:
    engine = make_engine(url)
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            async with session_scope(make_sessionmaker(engine)) as session:
                row = await session.get(UseCase, workflow_id)
            if row is not None:
                return row
            assert asyncio.get_running_loop().time() < deadline, f"{workflow_id} never synced"
            await asyncio.sleep(0.25)
    finally:
        await engine.dispose()


async def _caught_up(api: httpx.AsyncClient, run: str, state_path: str) -> list[dict[str, Any]]:
    """The run's ledger once it holds every event the run has recorded (its state at
    ``/v1/use-cases/<state_path>``)."""
    deadline = asyncio.get_running_loop().time() + SETTLE_S
    last = ""
    while asyncio.get_running_loop().time() < deadline:
        state = (await api.get(f"/v1/use-cases/{state_path}", headers=auth("eve"))).json()
        r = await api.get(f"/v1/use-cases/{run}/ledger", headers=auth("eve"))
        last = f"{r.status_code} {r.text[:200]}"
        if r.status_code == 200 and len(r.json()) == state["event_count"]:
            entries: list[dict[str, Any]] = r.json()
            return entries
        await asyncio.sleep(0.25)
    raise AssertionError(f"the ledger of {run} did not catch up in {SETTLE_S} s: {last}")


async def test_longest_key_and_title_reach_postgresql(temporal_env: WorkflowEnvironment) -> None:
    async with fresh_database("postgresql") as url:
        await upgrade_head(url)
        async with stack(temporal_env, url) as api:
            body = _longest_body()
            assert len(body["key"]) == limits.USE_CASE_KEY_MAX
            r = await api.post("/v1/use-cases", json=body, headers=auth("dana"))
            assert r.status_code == 201, r.text
            uc = await walk(api, r.json(), "live")
            r = await api.post(
                f"/v1/use-cases/{uc['id']}/changes",
                json={"summary": "S" * limits.TEXT_MAX, "materiality": "minor"},
                headers=auth("dana"),
            )
            assert r.status_code == 201, r.text
            change = r.json()

            row = await _registry_row(url, change["id"])
            assert row.key == limits.change_run_key(body["key"], "change-1")
            assert len(row.key) == limits.RUN_KEY_MAX - len("99999")  # change-1, not -999999
            assert row.title == limits.change_run_title(body["title"], "change-1", "S" * 4000)
            # a change's run is read through its use case (its id names no use case)
            for run, state_path in (
                (uc["id"], uc["id"]),
                (change["id"], f"{uc['id']}/changes/change-1"),
            ):
                entries = await _caught_up(api, run, state_path)
                verify = await api.get(f"/v1/use-cases/{run}/ledger/verify", headers=auth("eve"))
                assert verify.json() == {
                    "ok": True,
                    "entries": len(entries),
                    "first_bad_seq": None,
                    "expected_entries": len(entries),
                }


async def test_an_unstorable_claim_from_a_refused_signal_never_blocks_the_ledger(
    temporal_env: WorkflowEnvironment,
) -> None:
    """A Signal sent around the API claimed a 300-character actor; kept as a refused attempt
    under that claim, the value was too long for PostgreSQL and blocked the run's ledger. The
    run now records what a refused sender claimed as the ledger can hold it (bounded, no NUL):
    the attempt is on the record and the ledger stays whole. (The store's loud refusal of a
    value no retry can store, should one ever get through, is tested in tests/worker and
    tests/api/test_outages.py.)"""
    async with fresh_database("postgresql") as url:
        await upgrade_head(url)
        async with stack(temporal_env, url) as api:
            r = await api.post("/v1/use-cases", json=new_body("low"), headers=auth("dana"))
            assert r.status_code == 201, r.text
            uc = await walk(api, r.json(), "risk_signoff")
            before = await caught_up(api, uc["id"], SETTLE_S)

            handle = temporal_env.client.get_workflow_handle(uc["id"])
            claimed = "m" * (limits.ACTOR_MAX + 100) + "\x00"
            await handle.signal(
                UseCaseRelease.decide_signal,
                GateDecision(
                    actor=claimed,
                    gate=Gate.RISK_SIGNOFF,
                    decision=Decision.APPROVE,
                    channel=Channel.SIGNAL,
                ),
            )
            for _ in range(int(SETTLE_S * 4)):
                after = await caught_up(api, uc["id"], SETTLE_S)
                if len(after) > len(before):
                    break
                await asyncio.sleep(0.25)
            refused = after[-1]
            assert refused["kind"] == "refused"
            assert len(refused["actor"]) == limits.ACTOR_MAX
            assert "\x00" not in refused["actor"]
            r = await api.get(f"/v1/use-cases/{uc['id']}/ledger/verify", headers=auth("eve"))
            assert r.status_code == 200, r.text
            assert r.json()["ok"] is True
            assert await _no_block(url, uc["id"])
            r = await approve(api, f"/v1/use-cases/{uc['id']}", "risk_signoff", "rita")
            assert r.status_code == 200, r.text
            assert r.json()["stage"] == "ops_handoff"


async def _no_block(url: str, workflow_id: str) -> bool:
    engine = make_engine(url)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            block = await session.scalar(
                select(LedgerBlock).where(LedgerBlock.workflow_id == workflow_id)
            )
        return block is None
    finally:
        await engine.dispose()


async def _blocked(url: str, workflow_id: str) -> LedgerBlock:
    engine = make_engine(url)
    try:
        deadline = asyncio.get_running_loop().time() + SETTLE_S
        while True:
            async with session_scope(make_sessionmaker(engine)) as session:
                block = await session.scalar(
                    select(LedgerBlock).where(LedgerBlock.workflow_id == workflow_id)
                )
            if block is not None:
                return block
            assert asyncio.get_running_loop().time() < deadline, "the ledger was never blocked"
            await asyncio.sleep(0.25)
    finally:
        await engine.dispose()
