"""The pure modules under the workflow shell, driven without a Temporal server.

``gates``, ``transitions``, ``clock``, ``presentation`` and ``outbox`` are plain functions over
``Run`` (pinned input + ``ReleaseState``), so the operating model is tested here directly:
what happens when a gate passes, is sent back, is rejected or expires, and what each step
leaves in the outbox.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.workflows.helpers import evidence, make_input
from workflows import clock, gates, live, outbox, presentation, transitions
from workflows.activities import NotificationKind
from workflows.model import (
    AddEvidence,
    Cancel,
    ChangeOutcome,
    ChangeStatus,
    CompleteStage,
    Decision,
    EventKind,
    Gate,
    GateDecision,
    GateOutcome,
    HookKind,
    Materiality,
    RaiseChange,
    ReportIncident,
    Resume,
    Retire,
    RunOutcome,
    Severity,
    Stage,
    UseCaseInput,
)
from workflows.state import ReleaseState, Run

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def new_run(tier: str = "low", inp: UseCaseInput | None = None) -> Run:
    inp = inp or make_input(tier, key="pure")
    run = Run(inp, ReleaseState.fresh(inp, T0), f"usecase-{inp.key}")
    transitions.start(run, T0)
    return run


def kinds(run: Run) -> list[EventKind]:
    return [r.kind for r in run.state.outbox.ledger]


def complete(run: Run, stage: Stage, *ev: str, actor: str = "dana") -> None:
    cmd = CompleteStage(actor=actor, stage=stage, evidence=[evidence(k) for k in ev])
    transitions.complete_stage(run, cmd, T0)


def to_gate(run: Run) -> None:
    """Complete the work stages of a low-tier run: risk_signoff opens."""
    for stage in (Stage.SCOPING, Stage.SPECIFICATION, Stage.IMPLEMENTATION):
        complete(run, stage)
    complete(run, Stage.VALIDATION, "evaluation_report")


def approve(run: Run, actor: str, gate: Gate, now: datetime = T0) -> None:
    transitions.decide(run, GateDecision(actor=actor, gate=gate, decision=Decision.APPROVE), now)


def test_start_records_the_pin_and_enters_the_first_stage() -> None:
    run = new_run()
    assert kinds(run) == [EventKind.RUN_STARTED, EventKind.STAGE_ENTERED]
    started = run.state.outbox.ledger[0].payload
    assert started["policy"]["sha256"] == run.policy.sha256
    assert started["path"][0] == "scoping"
    assert started["path"][-1] == "live"
    assert run.state.stage == Stage.SCOPING
    assert run.state.event_id == 2
    assert run.state.outbox.publishes == 1


def test_a_gate_opens_with_its_seats_computed_once() -> None:
    run = new_run("high")
    complete(run, Stage.SCOPING)
    gate = run.state.gate
    assert gate is not None
    assert gate.gate == Gate.SCOPE_APPROVAL
    # business owner + one risk approver; the seats are the candidates per seat
    assert sorted(map(tuple, gate.seats)) == [("bo",), ("raj", "rita")]
    assert gate.eligible == ["bo", "raj", "rita"]
    assert gate.pending == ["bo", "raj", "rita"]
    seats = gates.Seats.of(gate)
    assert not seats.met(["rita"])
    assert seats.met(["rita", "bo"])
    assert seats.counts(["rita"], "bo")
    assert not seats.counts(["rita"], "raj")
    assert seats.pending(["rita"]) == ["bo"]


def test_a_gate_that_passes_moves_to_the_next_stage() -> None:
    run = new_run()
    to_gate(run)
    assert run.state.stage == Stage.RISK_SIGNOFF
    approve(run, "rita", Gate.RISK_SIGNOFF)
    assert run.state.stage == Stage.OPS_HANDOFF
    assert run.state.last_closed_gate is not None
    assert run.state.last_closed_gate.outcome == GateOutcome.PASSED
    assert kinds(run)[-3:] == [EventKind.DECISION, EventKind.GATE_PASSED, EventKind.STAGE_ENTERED]
    closed = [n for n in run.state.outbox.notices if n.kind == NotificationKind.GATE_CLOSED]
    assert closed[-1].gate is not None
    assert closed[-1].gate.outcome == GateOutcome.PASSED


def test_a_gate_sent_back_reworks_in_a_new_round() -> None:
    run = new_run()
    to_gate(run)
    transitions.decide(
        run,
        GateDecision(
            actor="rita",
            gate=Gate.RISK_SIGNOFF,
            decision=Decision.REQUEST_CHANGES,
            comment="thin evaluation",
        ),
        T0,
    )
    assert run.state.stage == Stage.IMPLEMENTATION
    assert run.state.round == 2
    assert run.state.gate is None
    assert run.state.last_closed_gate is not None
    assert run.state.last_closed_gate.outcome == GateOutcome.CHANGES_REQUESTED


def test_a_rejected_gate_closes_the_run() -> None:
    run = new_run()
    to_gate(run)
    transitions.decide(
        run,
        GateDecision(actor="rita", gate=Gate.RISK_SIGNOFF, decision=Decision.REJECT, comment="no"),
        T0,
    )
    assert run.state.closed
    assert run.state.stage == Stage.REJECTED
    assert run.state.outcome == RunOutcome.REJECTED
    assert kinds(run)[-1] == EventKind.RUN_CLOSED


def test_new_evidence_voids_approvals_and_rebinds_the_gate() -> None:
    run = new_run("high")
    complete(run, Stage.SCOPING)
    approve(run, "rita", Gate.SCOPE_APPROVAL)
    gate = run.state.gate
    assert gate is not None
    assert gate.pending == ["bo"]
    before = list(gate.evidence_digests)
    transitions.add_evidence(
        run,
        AddEvidence(actor="dana", evidence=[evidence("scope_note")]),
        T0,
    )
    assert gate.approvals == []
    assert gate.pending == ["bo", "raj", "rita"]
    assert gate.evidence_digests != before
    assert [a.actor for a in run.state.voided] == ["rita"]
    assert EventKind.APPROVALS_VOIDED in kinds(run)


def test_the_clock_reminds_escalates_then_expires_into_stalled() -> None:
    run = new_run()
    to_gate(run)
    gate = run.state.gate
    assert gate is not None
    rule = run.rule(gate.gate)
    first = clock.next_deadline(run)
    assert first is not None
    assert first[0] <= gate.due_at
    clock.fire_due(run, gate.due_at)
    assert gate.escalated_at == gate.due_at
    assert EventKind.GATE_ESCALATED in kinds(run)
    if rule.remind_before_hours:
        assert EventKind.REMINDER_SENT in kinds(run)
    if gate.expires_at is not None:
        clock.fire_due(run, gate.expires_at)
        assert run.state.stage == Stage.STALLED
        assert run.state.stalled_gate == Gate.RISK_SIGNOFF
        assert kinds(run)[-2:] == [EventKind.GATE_EXPIRED, EventKind.STAGE_ENTERED]
    # nothing fires twice
    count = len(kinds(run))
    clock.fire_due(run, gate.due_at + timedelta(days=30))
    assert len(kinds(run)) == count or run.state.stage == Stage.STALLED


def to_live(run: Run) -> None:
    to_gate(run)
    approve(run, "rita", Gate.RISK_SIGNOFF)
    approve(run, "olga", Gate.OPS_HANDOFF)
    approve(run, "bo", Gate.GO_LIVE)


def test_going_live_bumps_the_version_and_schedules_review() -> None:
    run = new_run()
    to_live(run)
    assert run.state.stage == Stage.LIVE
    assert run.state.live_version == 1
    assert run.state.next_review_at == T0 + timedelta(days=run.policy.rules.review_period_days)
    deadline = clock.next_deadline(run)
    assert deadline is not None
    assert deadline[1] == "periodic review due"
    clock.fire_due(run, deadline[0])
    assert run.state.gate is not None
    assert run.state.gate.gate == Gate.PERIODIC_REVIEW
    assert run.state.stage == Stage.LIVE  # a live gate opens beside the stage


def test_sev1_suspends_and_resume_reopens_live() -> None:
    run = new_run()
    to_live(run)
    live.report_incident(
        run, ReportIncident(actor="olga", severity=Severity.SEV1, summary="bad answers"), T0
    )
    assert run.state.stage == Stage.SUSPENDED
    assert run.state.incidents[0].suspended
    assert kinds(run)[-2:] == [EventKind.INCIDENT_REPORTED, EventKind.SUSPENDED]
    live.resume(run, Resume(actor="tom", reason="fixed"), T0)
    assert run.state.gate is not None
    assert run.state.gate.gate == Gate.RESUME_APPROVAL
    for actor in run.state.gate.pending:
        if run.state.gate is not None and actor in run.state.gate.pending:
            approve(run, actor, Gate.RESUME_APPROVAL)
    assert run.state.stage == Stage.LIVE
    assert kinds(run)[-1] == EventKind.RESUMED


def test_a_change_is_recorded_then_applied_with_a_deploy_hook() -> None:
    run = new_run()
    to_live(run)
    info, child = live.raise_change(
        run,
        RaiseChange(actor="tom", summary="new prompt", materiality=Materiality.MINOR),
        T0,
        update_id="u-1",
    )
    assert info.change_id == "change-1"
    assert child.change == info
    assert child.state is None
    summary = run.state.changes[0]
    assert summary.workflow_id == "usecase-pure-change-1"
    assert summary.update_id == "u-1"
    live.change_finished(
        run, ChangeOutcome(change_id="change-1", outcome=ChangeStatus.APPLIED, at=T0), T0
    )
    assert run.state.live_version == 2
    assert summary.status == ChangeStatus.APPLIED
    # a repeated report changes nothing
    live.change_finished(
        run, ChangeOutcome(change_id="change-1", outcome=ChangeStatus.APPLIED, at=T0), T0
    )
    assert run.state.live_version == 2


def test_retire_cancels_open_changes() -> None:
    run = new_run()
    to_live(run)
    live.raise_change(
        run,
        RaiseChange(actor="dana", summary="x", materiality=Materiality.MATERIAL),
        T0,
        update_id=None,
    )
    live.retire(run, Retire(actor="bo", reason="done"), T0)
    assert run.state.closed
    assert run.state.outcome == RunOutcome.RETIRED
    assert run.state.changes[0].status == ChangeStatus.CANCELLED
    assert run.state.outbox.cancel_runs == ["usecase-pure-change-1"]


def test_cancel_closes_and_notifies_the_open_gate() -> None:
    run = new_run()
    to_gate(run)
    transitions.cancel(run, Cancel(actor="dana", reason="stop"), T0)
    assert run.state.closed
    assert run.state.outcome == RunOutcome.CANCELLED
    last = run.state.outbox.notices[-1]
    assert last.gate is not None
    assert last.gate.outcome == GateOutcome.CANCELLED


def test_hooks_come_from_the_use_case_or_the_policy() -> None:
    run = new_run()
    outbox.hook(run, HookKind.DEPLOY, {"live_version": 1})
    expected = run.inp.hooks.deploy_url if run.inp.hooks else run.policy.live.hooks.deploy_url
    assert [h.url for h in run.state.outbox.hooks] == ([expected] if expected else [])


def test_presentation_matches_the_state() -> None:
    run = new_run("high")
    complete(run, Stage.SCOPING)
    view = presentation.view(run)
    assert view.open_gate is not None
    assert view.open_gate.pending == ["bo", "raj", "rita"]
    values = presentation.search_values(run)
    assert values.stage == "scope_approval"
    assert values.waiting_on == ["bo", "raj", "rita"]
    assert "Waiting on:** bo, raj, rita" in presentation.details(run)
    row = presentation.registry_row(run)
    assert row.pending_approvers == ["bo", "raj", "rita"]
    assert row.gate == "scope_approval"


def test_state_crosses_continue_as_new_whole() -> None:
    run = new_run()
    to_live(run)
    carried = ReleaseState.model_validate(run.state.model_dump(mode="json"))
    assert carried == run.state


@pytest.mark.parametrize("tier", ["low", "medium", "high"])
def test_each_fact_gets_the_next_event_id(tier: str) -> None:
    run = new_run(tier)
    ids = [r.event_id for r in run.state.outbox.ledger]
    assert ids == list(range(1, len(ids) + 1))
