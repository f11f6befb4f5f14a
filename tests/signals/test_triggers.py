"""Trigger rules (``live.triggers``) evaluated by the workflow, on a time-skipping test server
of this module's own: incidents counted within a window open the periodic review early; an
alert labelled ``drift`` requires a material change in time, else the use case is suspended."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio.client import WorkflowHandle

from tests.conftest import own_clock, start_on
from tests.harness import ReleaseHarness
from tests.workflows.drive import advance_to
from tests.workflows.helpers import make_input
from workflows.model import (
    Gate,
    Materiality,
    RaiseChange,
    ReportIncident,
    Severity,
    Stage,
    TriggerAction,
    TriggerRule,
    UseCaseView,
)
from workflows.release import UseCaseRelease

REPEATED = TriggerRule(
    name="repeated-incidents",
    min_severity=Severity.SEV2,
    count=3,
    within_days=30,
    action=TriggerAction.OPEN_REVIEW,
)
DRIFT = TriggerRule(
    name="drift-revalidation",
    label="drift",
    value="true",
    action=TriggerAction.REQUIRE_MATERIAL_CHANGE,
    deadline_days=14,
)


@pytest.fixture(scope="module")
async def ts(store_url: str) -> AsyncIterator[tuple]:
    """This module's own clock: its runs sleep through days the shared server must not see."""
    async with own_clock(store_url, "triggers") as clocked:
        yield clocked


async def live_with_triggers(ts: tuple) -> WorkflowHandle:
    inp = make_input("low")
    live = inp.policy.live.model_copy(update={"triggers": [REPEATED, DRIFT]})
    inp = inp.model_copy(update={"policy": inp.policy.model_copy(update={"live": live})})
    handle = await start_on(ts, inp)
    await advance_to(handle, "live", "low")
    return handle


async def incident(
    handle: WorkflowHandle, severity: Severity, *, drift: bool = False
) -> UseCaseView:
    if drift:
        cmd = ReportIncident(
            actor="signal:alertmanager",
            severity=severity,
            summary="prediction drift above threshold",
            fingerprint=uuid.uuid4().hex[:16],
            labels={"alertname": "ModelDrift", "drift": "true"},
        )
    else:
        cmd = ReportIncident(actor="olga", severity=severity, summary="slow answers")
    view: UseCaseView = await handle.execute_update(UseCaseRelease.report_incident, cmd)
    return view


async def fired(handle: WorkflowHandle) -> list[str]:
    return [e.kind for e in await handle.query(UseCaseRelease.events) if "trigger" in e.kind]


async def test_incidents_within_the_window_open_the_periodic_review_early(ts: tuple) -> None:
    env = ts[0]
    handle = await live_with_triggers(ts)
    regular = (await handle.query(UseCaseRelease.state)).next_review_at
    await incident(handle, Severity.SEV2)  # day 0: leaves the window before the third
    await env.sleep(timedelta(days=35))
    await incident(handle, Severity.SEV2)
    await env.sleep(timedelta(days=5))
    await incident(handle, Severity.SEV2)
    await incident(handle, Severity.SEV3)  # not sev2 or worse: does not count
    view = await handle.query(UseCaseRelease.state)
    assert view.open_gate is None
    assert await fired(handle) == []
    await env.sleep(timedelta(days=10))
    view = await incident(handle, Severity.SEV2)  # the third within 30 days (days 35, 40, 50)
    assert await fired(handle) == ["trigger_fired"]
    for _ in range(50):
        view = await handle.query(UseCaseRelease.state)
        if view.open_gate is not None:
            break
        await env.sleep(timedelta(seconds=1))
    assert view.open_gate is not None
    assert view.open_gate.gate == Gate.PERIODIC_REVIEW
    assert regular is not None
    assert view.open_gate.opened_at < regular - timedelta(days=300)  # low tier: 365 days
    memory = {t.name: t for t in view.triggers}["repeated-incidents"]
    assert memory.marks == []  # fired and forgot: the next needs three again
    assert memory.fired_at is not None


async def test_drift_without_a_material_change_in_time_suspends(ts: tuple) -> None:
    env = ts[0]
    handle = await live_with_triggers(ts)
    view = await incident(handle, Severity.SEV3, drift=True)
    deadline = {t.name: t for t in view.triggers}["drift-revalidation"].deadline
    assert deadline is not None
    assert view.stage == Stage.LIVE
    await env.sleep(timedelta(days=13))
    assert (await handle.query(UseCaseRelease.state)).stage == Stage.LIVE
    await env.sleep(timedelta(days=2))
    view = await handle.query(UseCaseRelease.state)
    assert view.stage == Stage.SUSPENDED
    events = await handle.query(UseCaseRelease.events)
    suspended = [e for e in events if e.kind == "suspended"]
    assert len(suspended) == 1
    assert "drift-revalidation" in suspended[0].comment
    assert await fired(handle) == ["trigger_fired", "trigger_fired"]


async def test_drift_met_by_a_material_change_in_time(release: ReleaseHarness) -> None:
    """On the dev server (the time-skipping server cannot describe a change's run, which its
    use case asks before applying it): the deadline is met the moment the change applies."""
    inp = make_input("low")
    live = inp.policy.live.model_copy(update={"triggers": [REPEATED, DRIFT]})
    handle = await release.start(
        inp.model_copy(update={"policy": inp.policy.model_copy(update={"live": live})})
    )
    await advance_to(handle, "live", "low")
    view = await incident(handle, Severity.SEV3, drift=True)
    assert {t.name: t for t in view.triggers}["drift-revalidation"].deadline is not None
    view = await handle.execute_update(
        UseCaseRelease.raise_change,
        RaiseChange(
            actor="dana", summary="retrain on fresh data", materiality=Materiality.MATERIAL
        ),
    )
    child = release.client.get_workflow_handle(view.changes[-1].workflow_id)
    await advance_to(child, "live", "low")
    for _ in range(200):
        view = await handle.query(UseCaseRelease.state)
        if view.live_version == 2:
            break
        await asyncio.sleep(0.05)
    assert view.live_version == 2
    assert await fired(handle) == ["trigger_fired", "trigger_satisfied"]
    assert {t.name: t for t in view.triggers}["drift-revalidation"].deadline is None
    assert view.stage == Stage.LIVE
