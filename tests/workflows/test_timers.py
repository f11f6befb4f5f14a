"""Gate SLAs and the periodic review under the time-skipping test server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from services.store.db import make_engine, make_sessionmaker
from services.worker.main import release_activities
from services.worker.notify import LogAdapter
from tests.harness import release_worker
from tests.workflows.drive import advance_to, decide, refusal_of
from tests.workflows.helpers import make_input
from workflows.model import Cancel, Gate, ReopenGate, Stage
from workflows.release import UseCaseRelease


@pytest.fixture(scope="module")
async def ts(time_skipping_env: WorkflowEnvironment, store_url: str) -> AsyncIterator[tuple]:
    engine = make_engine(store_url)
    task_queue = f"timers-{uuid.uuid4().hex[:8]}"
    async with (
        httpx.AsyncClient() as http,
        release_worker(
            time_skipping_env.client,
            task_queue,
            release_activities(make_sessionmaker(engine), [LogAdapter()], http, None),
        ),
    ):
        yield time_skipping_env, task_queue
    await engine.dispose()


async def start(ts: tuple, tier: str) -> WorkflowHandle:
    env, task_queue = ts
    inp = make_input(tier)
    return await env.client.start_workflow(
        UseCaseRelease.run, inp, id=f"usecase-{inp.key}", task_queue=task_queue
    )


async def kinds(handle: WorkflowHandle, gate: str | None = None) -> list[str]:
    events = await handle.query(UseCaseRelease.events)
    return [e.kind for e in events if gate is None or (e.gate and e.gate.value == gate)]


async def test_reminder_then_escalation_each_once(ts: tuple) -> None:
    env, _ = ts
    handle = await start(ts, "low")
    view = await advance_to(handle, "risk_signoff", "low")  # SLA 72 h, reminder 24 h before
    assert view.open_gate is not None

    await env.sleep(timedelta(hours=47))
    assert "reminder_sent" not in await kinds(handle, "risk_signoff")
    await env.sleep(timedelta(hours=2))  # 49 h: the 24-hours-before reminder is due
    assert (await kinds(handle, "risk_signoff")).count("reminder_sent") == 1
    assert "gate_escalated" not in await kinds(handle, "risk_signoff")

    await env.sleep(timedelta(hours=24))  # 73 h: past the SLA
    events = await handle.query(UseCaseRelease.events)
    escalations = [e for e in events if e.kind == "gate_escalated"]
    assert len(escalations) == 1
    view = await handle.query(UseCaseRelease.state)
    assert view.open_gate is not None
    assert view.open_gate.escalated_at is not None

    await env.sleep(timedelta(days=30))  # nothing is ever sent twice
    got = await kinds(handle, "risk_signoff")
    assert got.count("reminder_sent") == 1
    assert got.count("gate_escalated") == 1
    assert (await handle.query(UseCaseRelease.state)).stage == Stage.RISK_SIGNOFF


async def test_decision_cancels_the_gate_timers(ts: tuple) -> None:
    env, _ = ts
    handle = await start(ts, "low")
    await advance_to(handle, "risk_signoff", "low")
    await env.sleep(timedelta(hours=10))
    await decide(handle, "rita", "risk_signoff")
    await env.sleep(timedelta(days=10))
    got = await kinds(handle, "risk_signoff")
    assert "reminder_sent" not in got
    assert "gate_escalated" not in got
    # the next gate has its own clock: ops_handoff (48 h SLA) escalated meanwhile
    assert "gate_escalated" in await kinds(handle, "ops_handoff")


async def test_expiry_stalls_until_reopened_or_cancelled(ts: tuple) -> None:
    env, _ = ts
    handle = await start(ts, "high")  # high risk_signoff expires after 336 h
    await advance_to(handle, "risk_signoff", "high")
    await env.sleep(timedelta(hours=337))
    view = await handle.query(UseCaseRelease.state)
    assert view.stage == Stage.STALLED
    assert view.stalled_gate == Gate.RISK_SIGNOFF
    assert view.open_gate is None
    assert "gate_expired" in await kinds(handle, "risk_signoff")
    # never a silent approve: deciding the expired gate is refused
    err = await refusal_of(decide(handle, "rita", "risk_signoff"))
    assert err.type == "gate_not_open"
    err = await refusal_of(
        handle.execute_update(UseCaseRelease.reopen_gate, ReopenGate(actor="tom"))
    )
    assert err.type == "not_eligible"

    view = await handle.execute_update(UseCaseRelease.reopen_gate, ReopenGate(actor="dana"))
    assert view.stage == Stage.RISK_SIGNOFF
    assert view.open_gate is not None
    assert view.open_gate.due_at - view.open_gate.opened_at == timedelta(hours=120)

    await env.sleep(timedelta(hours=337))
    assert (await handle.query(UseCaseRelease.state)).stage == Stage.STALLED
    view = await handle.execute_update(UseCaseRelease.cancel, Cancel(actor="dana", reason="dead"))
    assert view.stage == Stage.CANCELLED


async def test_periodic_review_opens_and_escalates(ts: tuple) -> None:
    env, _ = ts
    handle = await start(ts, "low")  # review every 365 days; review SLA 336 h
    view = await advance_to(handle, "live", "low")
    assert view.next_review_at is not None
    await env.sleep(timedelta(days=364))
    assert (await handle.query(UseCaseRelease.state)).open_gate is None

    await env.sleep(timedelta(days=2))
    view = await handle.query(UseCaseRelease.state)
    assert view.stage == Stage.LIVE
    assert view.open_gate is not None
    assert view.open_gate.gate == Gate.PERIODIC_REVIEW
    assert sorted(view.open_gate.eligible) == ["bo", "raj", "rita"]

    await env.sleep(timedelta(hours=337))
    assert "gate_escalated" in await kinds(handle, "periodic_review")

    await decide(handle, "bo", "periodic_review")
    view = await decide(handle, "raj", "periodic_review")
    assert view.open_gate is None
    assert view.next_review_at is not None
    assert view.next_review_at - view.stage_entered_at > timedelta(days=364)
