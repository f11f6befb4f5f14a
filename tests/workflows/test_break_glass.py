"""Break-glass (issue 12): a stalled gate overridden on the record, never as an approval, and a
retrospective review that must uphold it in time — under the time-skipping test server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio.client import WorkflowHandle

from tests.conftest import own_clock, start_on
from tests.workflows.drive import advance_to, decide, refusal_of
from tests.workflows.helpers import make_input
from workflows import policy
from workflows.model import (
    CommandName,
    Decision,
    Gate,
    GateOutcome,
    OverrideGate,
    Refusal,
    Role,
    Stage,
)
from workflows.release import UseCaseRelease

WHY = "model owner on leave; regulator deadline Friday, approved by the COO"


@pytest.fixture(scope="module")
async def ts(store_url: str) -> AsyncIterator[tuple]:
    """This module's own clock: its runs sleep through days the shared server must not see."""
    async with own_clock(store_url, "breakglass") as clocked:
        yield clocked


async def start(ts: tuple, tier: str = "low", **kw: str) -> WorkflowHandle:
    return await start_on(ts, make_input(tier, **kw))  # type: ignore[arg-type]


async def override(handle: WorkflowHandle, actor: str, gate: str, why: str = WHY):  # type: ignore[no-untyped-def]
    return await handle.execute_update(
        UseCaseRelease.override_gate, OverrideGate(actor=actor, gate=Gate(gate), justification=why)
    )


async def kinds(handle: WorkflowHandle) -> list[str]:
    return [e.kind for e in await handle.query(UseCaseRelease.events)]


async def stalled_risk_signoff(ts: tuple, **kw: str) -> WorkflowHandle:
    env = ts[0]
    handle = await start(ts, **kw)
    await advance_to(handle, "risk_signoff", "low")  # SLA 72 h
    await env.sleep(timedelta(hours=73))
    view = await handle.query(UseCaseRelease.state)
    assert view.open_gate is not None
    assert view.open_gate.escalated_at is not None
    return handle


async def test_override_passes_a_stalled_gate_on_the_record_and_the_review_upholds_it(
    ts: tuple,
) -> None:
    env = ts[0]
    handle = await start(ts)
    await advance_to(handle, "risk_signoff", "low")
    # on time: nothing is stalled, so nothing to override
    assert (await refusal_of(override(handle, "eve", "risk_signoff"))).type == "wrong_stage"
    await env.sleep(timedelta(hours=73))

    # only the policy's break-glass group, with a real justification
    assert (await refusal_of(override(handle, "bo", "risk_signoff"))).type == "not_eligible"
    assert (await refusal_of(override(handle, "eve", "risk_signoff", "urgent"))).type == "invalid"
    assert (await refusal_of(override(handle, "eve", "go_live"))).type == "wrong_stage"

    view = await override(handle, "eve", "risk_signoff")
    assert view.stage == Stage.OPS_HANDOFF
    assert view.last_closed_gate is not None
    assert view.last_closed_gate.outcome == GateOutcome.OVERRIDDEN
    assert view.override is not None
    review = view.override.review
    assert review.gate == Gate.OVERRIDE_REVIEW
    assert review.due_at - review.opened_at == timedelta(hours=72)
    # seated by risk and the business owner, never the overrider nor the delivery lead
    assert "eve" not in review.eligible
    assert "dana" not in review.eligible
    assert {"bo", "rita"} <= set(review.eligible)

    events = await handle.query(UseCaseRelease.events)
    recorded = [e for e in events if e.kind == "override"]
    assert len(recorded) == 1
    assert recorded[0].actor == "eve"
    assert recorded[0].comment == WHY
    # never an approval of the gate it passed
    assert not [e for e in events if e.kind == "decision" and e.gate == Gate.RISK_SIGNOFF]
    assert not [e for e in events if e.kind == "gate_passed" and e.gate == Gate.RISK_SIGNOFF]

    # the overrider never reviews; a second override waits for this review
    assert (await refusal_of(decide(handle, "eve", "override_review"))).type == "not_eligible"
    await env.sleep(timedelta(hours=49))  # ops_handoff stalls too
    err = await refusal_of(override(handle, "sam", "ops_handoff"))
    assert err.type == "wrong_stage"
    assert "still under retrospective review" in err.message

    await decide(handle, "bo", "override_review")
    view = await decide(handle, "rita", "override_review")
    assert view.override is None
    assert (await kinds(handle)).count("gate_passed") == 1  # the review's own
    assert view.stage == Stage.OPS_HANDOFF  # the path goes on where it was


async def test_a_review_not_passed_in_time_sends_the_run_back_to_the_gate(ts: tuple) -> None:
    env = ts[0]
    handle = await stalled_risk_signoff(ts)
    view = await override(handle, "sam", "risk_signoff")
    assert view.stage == Stage.OPS_HANDOFF
    await decide(handle, "bo", "override_review")  # one seat of two: not enough
    await env.sleep(timedelta(hours=73))
    view = await handle.query(UseCaseRelease.state)
    assert view.override is None
    assert view.stage == Stage.RISK_SIGNOFF
    assert view.round == 2
    events = await handle.query(UseCaseRelease.events)
    [not_upheld] = [e for e in events if e.kind == "override_not_upheld"]
    assert not_upheld.gate == Gate.RISK_SIGNOFF
    assert "gate_expired" in [e.kind for e in events if e.gate == Gate.OVERRIDE_REVIEW]


async def test_a_rejected_review_of_a_live_use_case_stops_it(ts: tuple) -> None:
    env = ts[0]
    handle = await start(ts)
    await advance_to(handle, "go_live", "low")  # go_live SLA 48 h
    await env.sleep(timedelta(hours=49))
    view = await override(handle, "eve", "go_live")
    assert view.stage == Stage.LIVE
    view = await decide(
        handle, "rita", "override_review", Decision.REJECT, comment="no reason to rush this"
    )
    assert view.stage == Stage.SUSPENDED
    assert view.override is None
    assert "override_not_upheld" in await kinds(handle)


def test_whoever_asked_never_breaks_glass() -> None:
    # sam is in the break-glass group, and the delivery lead of this run
    roster = make_input("low", delivery_lead="sam").roster
    assert "sam" in roster[Role.BREAK_GLASS]
    with pytest.raises(policy.PolicyViolation, match="never overrides") as info:
        policy.check_actor(CommandName.OVERRIDE_GATE, roster, "sam")
    assert info.value.refusal == Refusal.NOT_ELIGIBLE
    policy.check_actor(CommandName.OVERRIDE_GATE, roster, "eve")  # another member may


def test_an_override_nobody_could_review_is_refused() -> None:
    inp = make_input("low")
    rule = inp.policy.break_glass
    assert rule is not None
    roster = {**inp.roster, Role.RISK_APPROVER: ["eve"]}  # the only risk approver overrides
    with pytest.raises(policy.PolicyViolation, match="cannot be staffed"):
        policy.check_review_staffable(rule, roster, "eve")
