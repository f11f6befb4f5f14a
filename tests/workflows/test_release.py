"""UseCaseRelease on the real Temporal dev server, with the real store activities."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from services.store.ledger import LedgerRepository
from services.store.registry import RegistryRepository
from tests.harness import ReleaseHarness
from tests.workflows.drive import advance_to, complete, decide, refusal_of
from tests.workflows.helpers import EXPECTED_PATH, evidence, make_input
from workflows import search
from workflows.model import (
    AddEvidence,
    Cancel,
    CompleteStage,
    Decision,
    Gate,
    GateDecision,
    RiskTier,
    Stage,
    UseCaseView,
)
from workflows.release import UseCaseRelease


async def history_length(handle: WorkflowHandle) -> int:
    return len([e async for e in handle.fetch_history_events()])


async def settled_history_length(handle: WorkflowHandle) -> int:
    """History length once the run loop has shipped everything (no activity in flight)."""
    last = -1
    for _ in range(100):
        n = await history_length(handle)
        if n == last:
            return n
        last = n
        await asyncio.sleep(0.15)
    raise AssertionError("history never settled")


async def wait_ledger(release: ReleaseHarness, wid: str, entries: int) -> None:
    """The run loop ships entries right after each change; give it a moment."""
    for _ in range(100):
        async with release.sessionmaker() as session:
            result = await LedgerRepository(session).verify(wid)
        if result.entries >= entries:
            assert result.ok, result
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"ledger of {wid} has {result.entries} entries, expected {entries}")


async def wait_registry(release: ReleaseHarness, wid: str, stage: str) -> None:
    for _ in range(100):
        async with release.sessionmaker() as session:
            row = await RegistryRepository(session).get(wid)
        if row is not None and row.stage == stage:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"read model of {wid} never reached {stage}")


@pytest.mark.parametrize("tier", ["low", "medium", "high"])
async def test_happy_path_reaches_live(release: ReleaseHarness, tier: str) -> None:
    handle = await release.start(make_input(tier))
    view = await advance_to(handle, "live", tier)

    assert view.stage == Stage.LIVE
    assert not view.closed
    assert view.open_gate is None
    entered = [
        e.stage.value
        for e in await handle.query(UseCaseRelease.events)
        if e.kind == "stage_entered"
    ]
    assert entered == EXPECTED_PATH[tier]

    desc = await handle.describe()
    assert desc.typed_search_attributes.get(search.STAGE) == "live"
    assert desc.typed_search_attributes.get(search.PENDING_APPROVERS) is None

    await wait_ledger(release, handle.id, view.event_count)
    await wait_registry(release, handle.id, "live")


async def test_gate_shows_eligible_quorum_due_and_waits_on(release: ReleaseHarness) -> None:
    handle = await release.start(make_input("high"))
    view = await complete(handle, "scoping", "high")
    gate = view.open_gate
    assert gate is not None
    assert gate.gate == Gate.SCOPE_APPROVAL
    assert gate.eligible == ["bo", "raj", "rita"]
    assert gate.quorum == 2
    assert (gate.due_at - gate.opened_at).total_seconds() == 72 * 3600

    desc = await handle.describe()
    assert sorted(desc.typed_search_attributes.get(search.PENDING_APPROVERS) or []) == [
        "bo",
        "raj",
        "rita",
    ]
    # the state names whom the gate waits on: the same people as PendingApprovers
    assert gate.pending == ["bo", "raj", "rita"]
    assert desc.typed_search_attributes.get(search.GATE_DUE_AT) is not None

    view = await decide(handle, "rita", "scope_approval")
    assert [a.actor for a in view.open_gate.approvals] == ["rita"]
    desc = await handle.describe()
    # raj would fill no seat rita left empty: the gate waits on the business owner only.
    assert list(desc.typed_search_attributes.get(search.PENDING_APPROVERS) or []) == ["bo"]
    assert view.open_gate.pending == ["bo"]


async def test_rework_loop_counts_rounds(release: ReleaseHarness) -> None:
    handle = await release.start(make_input("low"))
    await advance_to(handle, "risk_signoff", "low")

    view = await decide(
        handle, "rita", "risk_signoff", Decision.REQUEST_CHANGES, "bias eval missing"
    )
    assert view.stage == Stage.IMPLEMENTATION
    assert view.round == 2

    view = await advance_to(handle, "risk_signoff", "low")
    assert view.round == 2
    assert view.open_gate is not None
    assert view.open_gate.round == 2
    view = await decide(handle, "raj", "risk_signoff", Decision.REQUEST_CHANGES, "still missing")
    assert view.round == 3

    view = await advance_to(handle, "live", "low")
    assert view.round == 3
    events = await handle.query(UseCaseRelease.events)
    asks = [e for e in events if e.decision == Decision.REQUEST_CHANGES]
    assert [(e.actor, e.round, e.comment) for e in asks] == [
        ("rita", 1, "bias eval missing"),
        ("raj", 2, "still missing"),
    ]


async def test_high_scope_approval_reworks_to_scoping(release: ReleaseHarness) -> None:
    handle = await release.start(make_input("high"))
    await complete(handle, "scoping", "high")
    view = await decide(handle, "bo", "scope_approval", Decision.REQUEST_CHANGES, "narrow it")
    assert view.stage == Stage.SCOPING
    assert view.round == 2


async def test_reject_closes_the_run(release: ReleaseHarness) -> None:
    handle = await release.start(make_input("medium"))
    await advance_to(handle, "ops_handoff", "medium")
    view = await decide(handle, "olga", "ops_handoff", Decision.REJECT, "no on-call coverage")
    assert view.stage == Stage.REJECTED
    assert view.closed
    result = await handle.result()
    assert result.outcome == "rejected"

    await wait_ledger(release, handle.id, view.event_count)


async def test_cancel_by_business_owner_and_refused_for_others(release: ReleaseHarness) -> None:
    handle = await release.start(make_input("low"))
    await complete(handle, "scoping", "low")
    err = await refusal_of(
        handle.execute_update(UseCaseRelease.cancel, Cancel(actor="rita", reason="no"))
    )
    assert err.type == "not_eligible"
    view = await handle.execute_update(UseCaseRelease.cancel, Cancel(actor="bo", reason="budget"))
    assert view.stage == Stage.CANCELLED
    assert view.closed
    assert (await handle.result()).outcome == "cancelled"


async def test_cancel_refused_once_live(release: ReleaseHarness) -> None:
    handle = await release.start(make_input("low"))
    await advance_to(handle, "live", "low")
    err = await refusal_of(
        handle.execute_update(UseCaseRelease.cancel, Cancel(actor="dana", reason="late"))
    )
    assert err.type == "wrong_stage"


@pytest.mark.parametrize(
    ("command", "refusal"),
    [
        ("ineligible", "not_eligible"),
        ("wrong_gate", "gate_not_open"),
        ("no_comment", "invalid"),
        ("missing_gate_evidence", "evidence_missing"),
        ("twice", "already_decided"),
        ("stale_digests", "evidence_changed"),
        ("wrong_stage_complete", "wrong_stage"),
        ("validation_without_evidence", "evidence_missing"),
    ],
)
async def test_refused_commands_leave_history_unchanged(
    release: ReleaseHarness, command: str, refusal: str
) -> None:
    handle = await release.start(make_input("medium"))
    if command == "validation_without_evidence":
        await advance_to(handle, "validation", "medium")
    else:
        await advance_to(handle, "risk_signoff", "medium")
    if command in ("twice", "stale_digests"):
        await handle.execute_update(
            UseCaseRelease.add_evidence,
            AddEvidence(actor="dana", evidence=[evidence("risk_assessment")]),
        )
    before = await settled_history_length(handle)
    state_before = await handle.query(UseCaseRelease.state)

    def cmd(
        actor: str,
        gate: str = "risk_signoff",
        decision: Decision = Decision.APPROVE,
        comment: str = "",
        digests: list[str] | None = None,
    ) -> GateDecision:
        return GateDecision(
            actor=actor,
            gate=Gate(gate),
            decision=decision,
            comment=comment,
            evidence_digests=digests,
        )

    call = {
        "ineligible": lambda: handle.execute_update(UseCaseRelease.decide, cmd("olga")),
        "wrong_gate": lambda: handle.execute_update(UseCaseRelease.decide, cmd("bo", "go_live")),
        "no_comment": lambda: handle.execute_update(
            UseCaseRelease.decide, cmd("rita", decision=Decision.REJECT)
        ),
        "missing_gate_evidence": lambda: handle.execute_update(UseCaseRelease.decide, cmd("rita")),
        "twice": None,
        "stale_digests": lambda: handle.execute_update(
            UseCaseRelease.decide, cmd("rita", digests=["a" * 64])
        ),
        "wrong_stage_complete": lambda: handle.execute_update(
            UseCaseRelease.complete_stage, CompleteStage(actor="dana", stage=Stage.SCOPING)
        ),
        "validation_without_evidence": lambda: handle.execute_update(
            UseCaseRelease.complete_stage, CompleteStage(actor="dana", stage=Stage.VALIDATION)
        ),
    }[command]
    if command == "twice":
        # rita approves on a second use case whose risk panel needs two people
        handle = await release.start(make_input("high"))
        await advance_to(handle, "risk_signoff", "high")
        await handle.execute_update(
            UseCaseRelease.add_evidence,
            AddEvidence(actor="dana", evidence=[evidence("risk_assessment")]),
        )
        await decide(handle, "rita", "risk_signoff")
        before = await settled_history_length(handle)
        state_before = await handle.query(UseCaseRelease.state)
        call = lambda: handle.execute_update(UseCaseRelease.decide, cmd("rita"))  # noqa: E731

    err = await refusal_of(call())
    assert err.type == refusal
    if refusal == "not_eligible":
        assert err.message == "not eligible for this gate"
    assert await settled_history_length(handle) == before
    assert await handle.query(UseCaseRelease.state) == state_before


async def test_same_idempotency_key_is_one_decision(release: ReleaseHarness) -> None:
    handle = await release.start(make_input("high"))
    await advance_to(handle, "risk_signoff", "high")
    await handle.execute_update(
        UseCaseRelease.add_evidence,
        AddEvidence(actor="dana", evidence=[evidence("risk_assessment")]),
    )
    first = await decide(handle, "rita", "risk_signoff", update_id="click-123")
    second = await decide(handle, "rita", "risk_signoff", update_id="click-123")
    assert first == second
    assert [a.actor for a in second.open_gate.approvals] == ["rita"]
    decisions = [e for e in await handle.query(UseCaseRelease.events) if e.kind == "decision"]
    assert len([d for d in decisions if d.gate == Gate.RISK_SIGNOFF]) == 1


async def test_twenty_concurrent_approvals_count_exactly_the_quorum(
    release: ReleaseHarness,
) -> None:
    panel = ["group:risk-committee", "carla", "omar"]  # four eligible people, quorum 2
    handle = await release.start(make_input("high", risk_approvers=panel))
    await advance_to(handle, "risk_signoff", "high")
    view = await handle.execute_update(
        UseCaseRelease.add_evidence,
        AddEvidence(actor="dana", evidence=[evidence("risk_assessment")]),
    )
    assert view.open_gate.eligible == ["carla", "omar", "raj", "rita"]

    people = ["rita", "raj", "carla", "omar"] * 5
    results = await asyncio.gather(
        *(decide(handle, p, "risk_signoff", update_id=f"c-{i}") for i, p in enumerate(people)),
        return_exceptions=True,
    )
    ok = [r for r in results if isinstance(r, UseCaseView)]
    refused = [r for r in results if isinstance(r, WorkflowUpdateFailedError)]
    assert len(ok) == 2, results
    assert len(refused) == 18
    assert {r.cause.type for r in refused} <= {"gate_not_open", "already_decided"}

    events = await handle.query(UseCaseRelease.events)
    approvals = [e.actor for e in events if e.kind == "decision" and e.gate == Gate.RISK_SIGNOFF]
    assert len(approvals) == 2
    assert len(set(approvals)) == 2
    passed = [e for e in events if e.kind == "gate_passed" and e.gate == Gate.RISK_SIGNOFF]
    assert len(passed) == 1
    assert (await handle.query(UseCaseRelease.state)).stage == Stage.OPS_HANDOFF


async def test_new_evidence_voids_earlier_approvals(release: ReleaseHarness) -> None:
    handle = await release.start(make_input("high"))
    await advance_to(handle, "risk_signoff", "high")
    first = evidence("risk_assessment", "v1")
    view = await handle.execute_update(
        UseCaseRelease.add_evidence, AddEvidence(actor="dana", evidence=[first])
    )
    seen = view.open_gate.evidence_digests
    view = await decide(handle, "rita", "risk_signoff")
    assert view.open_gate.approvals[0].evidence_digests == seen

    view = await handle.execute_update(
        UseCaseRelease.add_evidence,
        AddEvidence(actor="tom", evidence=[evidence("risk_assessment", "v2")]),
    )
    assert view.open_gate.approvals == []
    assert len(view.open_gate.evidence_digests) == len(seen) + 1
    voided = await handle.query(UseCaseRelease.voided_approvals)
    assert [v.actor for v in voided] == ["rita"]

    # An approval bound to the old evidence set is refused; the current set is accepted.
    err = await refusal_of(
        handle.execute_update(
            UseCaseRelease.decide,
            GateDecision(
                actor="rita",
                gate=Gate.RISK_SIGNOFF,
                decision=Decision.APPROVE,
                evidence_digests=seen,
            ),
        )
    )
    assert err.type == "evidence_changed"
    view = await handle.execute_update(
        UseCaseRelease.decide,
        GateDecision(
            actor="rita",
            gate=Gate.RISK_SIGNOFF,
            decision=Decision.APPROVE,
            evidence_digests=view.open_gate.evidence_digests,
        ),
    )
    assert [a.actor for a in view.open_gate.approvals] == ["rita"]


async def test_signals_apply_valid_and_record_invalid(release: ReleaseHarness) -> None:
    handle = await release.start(make_input("low"))
    await advance_to(handle, "ops_handoff", "low")

    await handle.signal(
        UseCaseRelease.decide_signal,
        GateDecision(actor="rita", gate=Gate.OPS_HANDOFF, decision=Decision.APPROVE),
    )
    await handle.signal(
        UseCaseRelease.decide_signal,
        GateDecision(actor="bo", gate=Gate.GO_LIVE, decision=Decision.APPROVE),
    )
    view = await handle.query(UseCaseRelease.state)
    assert view.stage == Stage.OPS_HANDOFF  # neither invalid signal changed anything
    refused = await handle.query(UseCaseRelease.refused_attempts)
    assert [(r.actor, r.refusal.value, r.channel.value) for r in refused] == [
        ("rita", "not_eligible", "signal"),
        ("bo", "gate_not_open", "signal"),
    ]

    await handle.signal(
        UseCaseRelease.decide_signal,
        GateDecision(actor="olga", gate=Gate.OPS_HANDOFF, decision=Decision.APPROVE),
    )
    view = await handle.query(UseCaseRelease.state)
    assert view.stage == Stage.GO_LIVE
    events = await handle.query(UseCaseRelease.events)
    ops = [e for e in events if e.kind == "decision" and e.gate == Gate.OPS_HANDOFF]
    assert [(e.actor, e.channel.value) for e in ops] == [("olga", "signal")]

    await wait_ledger(release, handle.id, view.event_count)
    async with release.sessionmaker() as session:
        entries = await LedgerRepository(session).entries(handle.id)
    assert [e.kind for e in entries].count("refused") == 2


async def test_visibility_finds_run_by_stage(release: ReleaseHarness) -> None:
    key = f"vis-{uuid.uuid4().hex[:8]}"
    handle = await release.start(make_input(RiskTier.LOW, key=key))
    await advance_to(handle, "risk_signoff", "low")
    query = f'WorkflowId = "{handle.id}" AND Stage = "risk_signoff" AND PendingApprovers = "rita"'
    for _ in range(50):
        found = [w.id async for w in release.client.list_workflows(query)]
        if found:
            break
        await asyncio.sleep(0.1)
    assert found == [handle.id]
