"""Governed exceptions (issue 17, part 2) on a time-skipping test server of this module's own:
requested, granted by its seats (never by its requester), refused, and expired — after which
the requirement is back: a pending gate needs the evidence again, a waived SLA escalates, a
live use case opens its periodic review."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from tests.conftest import own_clock, start_on
from tests.workflows.drive import advance_to, decide, refusal_of
from tests.workflows.helpers import make_input
from workflows.model import (
    DecideWaiver,
    Gate,
    RequestWaiver,
    Stage,
    UseCaseView,
    Waiver,
    WaiverKind,
    WaiverRequirement,
    WaiverStatus,
    WaiverVerdict,
)
from workflows.release import UseCaseRelease

WHY = "the vendor's assessment lands next sprint; the model is unchanged since last year"
RISK_ASSESSMENT = WaiverRequirement(
    kind=WaiverKind.EVIDENCE, gate=Gate.RISK_SIGNOFF, evidence_kind="risk_assessment"
)


@pytest.fixture(scope="module")
async def ts(store_url: str) -> AsyncIterator[tuple]:
    """This module's own clock: its runs sleep through days the shared server must not see."""
    async with own_clock(store_url, "waivers") as clocked:
        yield clocked


async def start(ts: tuple, tier: str, **kw: object) -> WorkflowHandle:
    return await start_on(ts, make_input(tier, **kw))  # type: ignore[arg-type]


async def now(ts: tuple) -> datetime:
    env: WorkflowEnvironment = ts[0]
    return await env.get_current_time()


async def ask(
    handle: WorkflowHandle,
    actor: str,
    requirement: WaiverRequirement,
    expires_at: datetime,
    why: str = WHY,
) -> UseCaseView:
    return await handle.execute_update(
        UseCaseRelease.request_waiver,
        RequestWaiver(
            actor=actor, requirement=requirement, justification=why, expires_at=expires_at
        ),
    )


async def rule_on(
    handle: WorkflowHandle,
    actor: str,
    waiver_id: str,
    verdict: WaiverVerdict = WaiverVerdict.GRANT,
    comment: str = "",
) -> UseCaseView:
    return await handle.execute_update(
        UseCaseRelease.decide_waiver,
        DecideWaiver(actor=actor, waiver_id=waiver_id, decision=verdict, comment=comment),
    )


def the(view: UseCaseView, waiver_id: str) -> Waiver:
    return next(w for w in view.waivers if w.id == waiver_id)


async def kinds(handle: WorkflowHandle) -> list[str]:
    return [e.kind.value for e in await handle.query(UseCaseRelease.events)]


async def test_a_granted_evidence_exception_lets_the_gate_pass_without_the_item(ts: tuple) -> None:
    handle = await start(ts, "medium")
    await advance_to(handle, "risk_signoff", "medium")  # risk_signoff needs risk_assessment
    assert (await refusal_of(decide(handle, "raj", "risk_signoff"))).type == "evidence_missing"

    view = await ask(handle, "dana", RISK_ASSESSMENT, await now(ts) + timedelta(days=30))
    [waiver] = view.waivers
    assert waiver.id == "w-1"
    assert waiver.status == WaiverStatus.PENDING
    # medium: a risk approver and the business owner; never dana, who asked
    assert waiver.quorum == 2
    assert "dana" not in waiver.eligible
    assert {"bo", "rita", "raj"} <= set(waiver.eligible)
    assert view.required_evidence == ["risk_assessment"]  # pending is not granted

    # who may not grant, and what a grant that fills no seat is
    assert (await refusal_of(rule_on(handle, "dana", "w-1"))).type == "not_eligible"
    assert (await refusal_of(rule_on(handle, "olga", "w-1"))).type == "not_eligible"
    view = await rule_on(handle, "raj", "w-1")
    assert the(view, "w-1").status == WaiverStatus.PENDING
    assert the(view, "w-1").pending == ["bo"]
    assert (await refusal_of(rule_on(handle, "rita", "w-1"))).type == "already_decided"
    view = await rule_on(handle, "bo", "w-1")

    granted = the(view, "w-1")
    assert granted.status == WaiverStatus.GRANTED
    assert view.required_evidence == []
    assert view.waived_evidence == ["risk_assessment"]  # waived, never present
    assert not [e for e in view.evidence if e.kind == "risk_assessment"]
    assert (await refusal_of(rule_on(handle, "rita", "w-1"))).type == "gate_not_open"

    view = await decide(handle, "raj", "risk_signoff")
    assert view.stage == Stage.OPS_HANDOFF
    history = await kinds(handle)
    assert history.count("waiver_requested") == history.count("waiver_granted") == 1
    assert history.index("waiver_granted") < history.index("gate_passed")


async def test_an_expired_exception_makes_the_pending_gate_need_the_item_again(
    ts: tuple,
) -> None:
    env = ts[0]
    handle = await start(ts, "medium")
    await advance_to(handle, "risk_signoff", "medium")
    await ask(handle, "tom", RISK_ASSESSMENT, await now(ts) + timedelta(days=2))
    await rule_on(handle, "rita", "w-1")
    view = await rule_on(handle, "bo", "w-1")
    assert view.open_gate is not None
    assert view.open_gate.required_evidence == []

    await env.sleep(timedelta(days=2, hours=1))
    view = await handle.query(UseCaseRelease.state)
    assert the(view, "w-1").status == WaiverStatus.EXPIRED
    assert view.required_evidence == ["risk_assessment"]
    assert view.waived_evidence == []
    assert view.stage == Stage.RISK_SIGNOFF
    assert (await refusal_of(decide(handle, "raj", "risk_signoff"))).type == "evidence_missing"
    events = await handle.query(UseCaseRelease.events)
    [expired] = [e for e in events if e.kind == "waiver_expired"]
    assert expired.actor == "system"


async def test_the_requester_never_grants_and_one_refusal_ends_the_request(ts: tuple) -> None:
    # tom is the technical owner and also a risk approver (a low tier allows it)
    handle = await start(ts, "low", risk_approvers=["tom", "rita"])
    await advance_to(handle, "validation", "low")
    requirement = WaiverRequirement(
        kind=WaiverKind.EVIDENCE, stage=Stage.VALIDATION, evidence_kind="evaluation_report"
    )
    view = await ask(handle, "tom", requirement, await now(ts) + timedelta(days=10))
    assert "tom" not in the(view, "w-1").eligible
    err = await refusal_of(rule_on(handle, "tom", "w-1"))
    assert err.type == "not_eligible"
    assert "never decides" in err.message

    err = await refusal_of(rule_on(handle, "rita", "w-1", WaiverVerdict.REFUSE))
    assert err.type == "invalid"  # a refusal says why
    view = await rule_on(handle, "rita", "w-1", WaiverVerdict.REFUSE, "run the evaluation")
    refused = the(view, "w-1")
    assert refused.status == WaiverStatus.REFUSED
    assert refused.refused_by == "rita"
    assert view.required_evidence == ["evaluation_report"]
    assert "waiver_refused" in await kinds(handle)
    # a refused exception can be asked for again; the same one twice at once cannot
    view = await ask(handle, "tom", requirement, await now(ts) + timedelta(days=10))
    assert the(view, "w-2").status == WaiverStatus.PENDING
    err = await refusal_of(ask(handle, "dana", requirement, await now(ts) + timedelta(days=5)))
    assert err.type == "wrong_stage"


async def test_an_expiry_beyond_the_tier_maximum_or_an_unstated_requirement_is_refused(
    ts: tuple,
) -> None:
    handle = await start(ts, "high")
    await advance_to(handle, "validation", "high")
    dpia = WaiverRequirement(kind=WaiverKind.EVIDENCE, stage=Stage.VALIDATION, evidence_kind="dpia")
    at = await now(ts)
    err = await refusal_of(ask(handle, "dana", dpia, at + timedelta(days=31)))  # high: 30 days
    assert err.type == "invalid"
    assert "at most 30 days" in err.message
    assert (await refusal_of(ask(handle, "dana", dpia, at - timedelta(hours=1)))).type == "invalid"
    assert (await refusal_of(ask(handle, "dana", dpia, at + timedelta(days=3), "x"))).type == (
        "invalid"
    )
    unstated = WaiverRequirement(
        kind=WaiverKind.EVIDENCE, stage=Stage.SCOPING, evidence_kind="dpia"
    )
    assert (await refusal_of(ask(handle, "dana", unstated, at + timedelta(days=3)))).type == (
        "invalid"
    )
    assert (await refusal_of(ask(handle, "rita", dpia, at + timedelta(days=3)))).type == (
        "not_eligible"
    )
    view = await ask(handle, "dana", dpia, at + timedelta(days=30))
    waiver = the(view, "w-1")
    assert waiver.quorum == 3  # high: two risk approvers and the business owner
    assert not [e for e in await kinds(handle) if e == "refused"]  # refusals record nothing


async def test_a_waived_sla_does_not_escalate_until_the_exception_expires(ts: tuple) -> None:
    env = ts[0]
    handle = await start(ts, "low")
    await advance_to(handle, "risk_signoff", "low")  # SLA 72 h, a reminder 24 h before
    sla = WaiverRequirement(kind=WaiverKind.SLA, gate=Gate.RISK_SIGNOFF)
    await ask(handle, "dana", sla, await now(ts) + timedelta(days=6))
    view = await rule_on(handle, "rita", "w-1")
    assert the(view, "w-1").status == WaiverStatus.GRANTED

    await env.sleep(timedelta(days=5))  # two days past the SLA
    view = await handle.query(UseCaseRelease.state)
    assert view.open_gate is not None
    assert view.open_gate.escalated_at is None
    history = await kinds(handle)
    assert "gate_escalated" not in history
    assert "reminder_sent" not in history

    await env.sleep(timedelta(days=1, hours=1))
    view = await handle.query(UseCaseRelease.state)
    assert the(view, "w-1").status == WaiverStatus.EXPIRED
    assert view.open_gate is not None
    assert view.open_gate.escalated_at is not None
    history = await kinds(handle)
    assert history.index("waiver_expired") < history.index("gate_escalated")
    assert "reminder_sent" not in history  # past reminders are not sent late


async def test_a_live_use_case_reviews_when_its_exception_ends(ts: tuple) -> None:
    env = ts[0]
    handle = await start(ts, "low")  # review every 365 days, exceptions up to 90 days
    view = await advance_to(handle, "live", "low")
    assert view.next_review_at is not None
    review_due = view.next_review_at
    review = WaiverRequirement(kind=WaiverKind.PERIODIC_REVIEW)
    # an exception moves the review later, never earlier, and not while it is open
    err = await refusal_of(ask(handle, "dana", review, await now(ts) + timedelta(days=30)))
    assert err.type == "invalid"

    await env.sleep(timedelta(days=300))
    moved_to = await now(ts) + timedelta(days=80)  # 15 days after the review date
    await ask(handle, "dana", review, moved_to)
    view = await rule_on(handle, "rita", "w-1")
    assert the(view, "w-1").deferred_review_from == review_due
    assert view.next_review_at == moved_to

    await env.sleep(timedelta(days=70))  # past the review's own date
    view = await handle.query(UseCaseRelease.state)
    assert view.open_gate is None
    assert "gate_opened" not in await kinds(handle)

    await env.sleep(timedelta(days=11))
    view = await handle.query(UseCaseRelease.state)
    assert the(view, "w-1").status == WaiverStatus.EXPIRED
    assert view.open_gate is not None
    assert view.open_gate.gate == Gate.PERIODIC_REVIEW
    history = await kinds(handle)
    assert history.index("waiver_expired") < history.index("gate_opened")

    # an evidence exception that outlives go-live: its end opens a review too
    view = await decide(handle, "bo", "periodic_review")
    view = await decide(handle, "rita", "periodic_review")
    assert view.open_gate is None
    slow = WaiverRequirement(kind=WaiverKind.SLA, gate=Gate.CHANGE_APPROVAL)
    await ask(handle, "tom", slow, await now(ts) + timedelta(days=5))
    await rule_on(handle, "rita", "w-2")
    await env.sleep(timedelta(days=5, hours=1))
    view = await handle.query(UseCaseRelease.state)
    assert the(view, "w-2").status == WaiverStatus.EXPIRED
    assert view.open_gate is not None
    assert view.open_gate.gate == Gate.PERIODIC_REVIEW
