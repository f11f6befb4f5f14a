"""How a run moves: the one stage transition, and what follows when a gate ends.

``move_to`` is the only place a run enters a stage of its path (opening the stage's gate when
the stage is a gate, going live at the end). ``follow`` answers "what happens when a gate passes,
is sent back, is rejected or expires". The work commands (complete a stage, add evidence,
reopen, cancel) are here too; live operation is in ``workflows.live``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from workflows import bundles, gates, limits, outbox, policy
from workflows.activities import NotificationKind
from workflows.model import (
    GATE_STAGES,
    GATES_BESIDE_STAGE,
    AddEvidence,
    Cancel,
    ChangeStatus,
    ChangeSummary,
    Channel,
    CommandName,
    CompleteStage,
    Decision,
    EventKind,
    Evidence,
    EvidenceRecord,
    Gate,
    GateDecision,
    GateOutcome,
    HookKind,
    Refusal,
    RefusedAttempt,
    ReopenGate,
    RunOutcome,
    RunSignal,
    Stage,
    UseCaseInput,
)
from workflows.state import Run

# ----------------------------------------------------------------------------- the path


def enter(run: Run, stage: Stage, now: datetime) -> None:
    """The one place a run's stage changes: ``move_to`` along the path, ``close``, stop-ship
    and resume, and a stalled gate all enter their stage here."""
    run.state.stage = stage
    run.state.stage_entered_at = now


def move_to(run: Run, stage: Stage, *, actor: str, now: datetime) -> None:
    """Enter ``stage``: open its gate if it is one; at ``live``, go live."""
    state = run.state
    enter(run, stage, now)
    state.gate = None
    if stage in GATE_STAGES:
        gates.open_gate(run, Gate(stage.value), now)
    outbox.record(run, EventKind.STAGE_ENTERED, now, actor=actor)
    if stage == Stage.LIVE:
        _went_live(run, actor, now)
    outbox.publish(run)
    if state.gate is not None:
        outbox.gate_notice(run, NotificationKind.GATE_OPENED, now)


def start(run: Run, now: datetime) -> None:
    """The first facts of a fresh run: what was pinned, then its first stage."""
    inp = run.inp
    outbox.record(
        run,
        EventKind.RUN_STARTED,
        now,
        actor=run.starter,
        extras={
            "title": inp.title,
            "risk_tier": inp.risk_tier.value,
            "owners": inp.owners.model_dump(mode="json"),
            "roster": {r.value: ids for r, ids in inp.roster.items()},
            "policy": {"version": run.policy.version, "sha256": run.policy.sha256},
            "path": [s.value for s in run.path],
            "change": inp.change.model_dump(mode="json") if inp.change else None,
            "deputies": {
                r.value: [d.model_dump(mode="json") for d in ds] for r, ds in inp.deputies.items()
            }
            or None,
            # only when pinned: runs started before the catalog record exactly what they did
            **_pinned_additions(inp),
        },
    )
    move_to(run, run.path[0], actor=run.starter, now=now)


def _pinned_additions(inp: UseCaseInput) -> dict[str, Any]:
    """The control catalog pin and the EU AI Act marker, for the run_started fact."""
    extras: dict[str, Any] = {}
    if inp.controls is not None:
        extras["controls"] = inp.controls.model_dump(mode="json")
    if inp.eu_ai_act is not None:
        extras["eu_ai_act"] = inp.eu_ai_act.model_dump(mode="json")
    if inp.bundle is not None:  # what the gates approve (workflows/bundles.py)
        extras["bundle"] = [a.model_dump(mode="json") for a in inp.bundle]
        extras["bundle_digest"] = bundles.digest(inp.bundle)
    return extras


def _went_live(run: Run, actor: str, now: datetime) -> None:
    state = run.state
    if run.change is not None:
        # a passed change request: its use case's live version becomes this one
        outbox.report_to_parent(run, ChangeStatus.APPLIED, now)
        close(run, Stage.LIVE, RunOutcome.APPLIED, actor=actor, now=now)
        return
    state.live_version += 1
    state.live_since = state.live_since or now
    state.next_review_at = now + timedelta(days=run.policy.rules.review_period_days)
    outbox.hook(run, HookKind.DEPLOY, {"live_version": state.live_version})


def close(run: Run, stage: Stage, outcome: RunOutcome, *, actor: str, now: datetime) -> None:
    state = run.state
    enter(run, stage, now)
    state.gate = None
    state.closed = True
    state.outcome = outcome
    outbox.record(run, EventKind.RUN_CLOSED, now, actor=actor, extras={"outcome": outcome})
    if run.change is not None and outcome != RunOutcome.APPLIED:
        outbox.report_to_parent(run, ChangeStatus(outcome.value), now)
    outbox.publish(run)


def open_beside(
    run: Run, gate: Gate, *, actor: str, now: datetime, requested_by: str | None = None
) -> None:
    """A live gate opens beside the stage (live or suspended), which does not change."""
    gates.open_gate(run, gate, now, requested_by)
    outbox.record(run, EventKind.GATE_OPENED, now, actor=actor, gate=gate)
    outbox.publish(run)
    outbox.gate_notice(run, NotificationKind.GATE_OPENED, now)


def suspend(run: Run, *, actor: str, channel: Channel, reason: str, now: datetime) -> None:
    """Stop-ship: the live version is pulled (rollback hook) until resume is approved."""
    state = run.state
    enter(run, Stage.SUSPENDED, now)
    if state.gate is not None:
        outbox.gate_notice(
            run, NotificationKind.GATE_CLOSED, now, outcome=GateOutcome.CANCELLED, by=actor
        )
        state.gate = None
    outbox.record(run, EventKind.SUSPENDED, now, actor=actor, channel=channel, comment=reason)
    outbox.hook(run, HookKind.ROLLBACK, {"live_version": state.live_version, "reason": reason})
    outbox.live_notice(run, f"SUSPENDED by {actor}: {reason}", now)
    outbox.publish(run)


# ----------------------------------------------------------------------------- gates


def decide(run: Run, cmd: GateDecision, now: datetime) -> None:
    """A valid decision on the open gate, and whatever follows from it."""
    gate = run.state.gate
    assert gate is not None  # checked by policy.check_decision
    outcome = gates.decide(run, cmd, now)
    if outcome is not None:
        follow(run, gate.gate, outcome, cmd, now)


def follow(run: Run, gate: Gate, outcome: GateOutcome, cmd: GateDecision, now: datetime) -> None:
    """What happens when a gate ends by a decision.

    - passed: the next stage of the path (a live gate: resumed, or the next review scheduled);
    - changes requested: a new round at the gate's rework stage;
    - rejected: the run closes as rejected (a live gate: it just closes; a rejected periodic
      review stops the live system).
    """
    state = run.state
    if gate in GATES_BESIDE_STAGE:
        _live_gate_ended(run, gate, outcome, cmd, now)
    elif outcome == GateOutcome.PASSED:
        move_to(run, policy.next_stage(run.path, state.stage), actor=cmd.actor, now=now)
    elif outcome == GateOutcome.CHANGES_REQUESTED:
        state.round += 1
        rework = run.rule(gate).rework_stage
        move_to(run, rework if rework in run.path else run.path[0], actor=cmd.actor, now=now)
    else:
        close(run, Stage.REJECTED, RunOutcome.REJECTED, actor=cmd.actor, now=now)


def _live_gate_ended(
    run: Run, gate: Gate, outcome: GateOutcome, cmd: GateDecision, now: datetime
) -> None:
    state = run.state
    state.gate = None
    review_period = timedelta(days=run.policy.rules.review_period_days)
    if outcome == GateOutcome.PASSED and gate == Gate.RESUME_APPROVAL:
        enter(run, Stage.LIVE, now)
        outbox.record(run, EventKind.RESUMED, now, actor=cmd.actor)
        deploy: dict[str, object] = {"live_version": state.live_version, "resumed": True}
        held = _apply_held_changes(run, now)
        if held:
            deploy |= {"live_version": state.live_version, "changes": held}
        outbox.hook(run, HookKind.DEPLOY, deploy)
    elif gate == Gate.PERIODIC_REVIEW:
        state.next_review_at = now + review_period
        if cmd.decision == Decision.REJECT and state.stage == Stage.LIVE:
            # a review that rejects the live system stops it
            reason = f"periodic review rejected: {cmd.comment}"
            suspend(run, actor=cmd.actor, channel=cmd.channel, reason=reason, now=now)
            return
    outbox.publish(run)


def apply_change(run: Run, change: ChangeSummary, now: datetime) -> None:
    """A passed change request becomes the use case's live version."""
    run.state.live_version += 1
    change.status = ChangeStatus.APPLIED
    if change.bundle is not None:  # the change's bundle is the approved one from now on
        run.state.approved_bundle = list(change.bundle)
    outbox.record(
        run,
        EventKind.CHANGE_APPLIED,
        now,
        actor=change.raised_by,
        comment=change.summary,
        extras={"change": change.change_id, "live_version": run.state.live_version},
    )


def _apply_held_changes(run: Run, now: datetime) -> list[str]:
    """Changes that passed while the use case was suspended become live with the resume."""
    held = [c for c in run.state.changes if c.status == ChangeStatus.AWAITING_RESUME]
    for change in held:
        change.closed_at = now
        apply_change(run, change, now)
    return [c.change_id for c in held]


def expire(run: Run, now: datetime) -> None:
    """The open gate's expiry passed with no decision: never a silent approve. A release gate
    leaves the run ``stalled`` until the delivery lead reopens it or cancels."""
    state = run.state
    gate = state.gate
    assert gate is not None
    outbox.record(run, EventKind.GATE_EXPIRED, now, actor=outbox.SYSTEM, gate=gate.gate)
    outbox.gate_notice(run, NotificationKind.GATE_CLOSED, now, outcome=GateOutcome.EXPIRED)
    state.gate = None
    if gate.gate not in GATES_BESIDE_STAGE:
        state.stalled_gate = gate.gate
        enter(run, Stage.STALLED, now)
        outbox.record(run, EventKind.STAGE_ENTERED, now, actor=outbox.SYSTEM)
    outbox.publish(run)


def _storable(text: str, limit: int) -> str:
    """Text from an unverified sender, as the ledger can hold it (no NUL, bounded)."""
    return text.replace("\x00", "\ufffd")[:limit]


def refuse(run: Run, cmd: GateDecision, err: policy.PolicyViolation, now: datetime) -> None:
    """A decision that arrived as a Signal and was refused: kept, and changes nothing else."""
    cmd = cmd.model_copy(
        update={
            "actor": _storable(cmd.actor, limits.ACTOR_MAX),
            "comment": _storable(cmd.comment, limits.TEXT_MAX),
        }
    )
    run.state.refused.append(
        RefusedAttempt(
            at=now,
            actor=cmd.actor,
            channel=cmd.channel,
            command=CommandName.DECIDE,
            refusal=err.refusal,
            detail=err.detail,
        )
    )
    outbox.record(
        run,
        EventKind.REFUSED,
        now,
        actor=cmd.actor,
        channel=cmd.channel,
        gate=cmd.gate,
        decision=cmd.decision,
        comment=cmd.comment,
        extras={
            "command": CommandName.DECIDE.value,
            "refusal": err.refusal.value,
            "detail": err.detail,
        },
    )


def refuse_run_signal(
    run: Run, signal: RunSignal, claimed_by: str, detail: str, now: datetime
) -> None:
    """A run-to-run Signal the run could not verify (a forged ``seed_evidence``, a change's
    end its own run does not confirm): kept as a refused attempt, and changes nothing else."""
    actor = _storable(f"unverified:{claimed_by}", limits.ACTOR_MAX)
    detail = _storable(detail, limits.TEXT_MAX)
    run.state.refused.append(
        RefusedAttempt(
            at=now,
            actor=actor,
            channel=Channel.SIGNAL,
            command=signal,
            refusal=Refusal.UNAUTHENTICATED,
            detail=detail,
        )
    )
    outbox.record(
        run,
        EventKind.REFUSED,
        now,
        actor=actor,
        channel=Channel.SIGNAL,
        extras={
            "command": signal.value,
            "refusal": Refusal.UNAUTHENTICATED.value,
            "detail": detail,
        },
    )


# ----------------------------------------------------------------------------- work commands


def add_evidence_records(
    run: Run, items: list[Evidence], actor: str, *, scope: str, now: datetime
) -> list[EvidenceRecord]:
    records = [
        EvidenceRecord(
            **e.model_dump(), scope=scope, round=run.state.round, submitted_by=actor, at=now
        )
        for e in items
    ]
    run.state.evidence += records
    return records


def complete_stage(run: Run, cmd: CompleteStage, now: datetime) -> None:
    state = run.state
    stage = state.stage
    records = add_evidence_records(run, cmd.evidence, cmd.actor, scope=stage.value, now=now)
    if stage == Stage.VALIDATION:
        state.validation_completed_by = cmd.actor
    outbox.record(
        run,
        EventKind.STAGE_COMPLETED,
        now,
        actor=cmd.actor,
        channel=cmd.channel,
        comment=cmd.comment,
        evidence=records,
    )
    move_to(run, policy.next_stage(run.path, stage), actor=cmd.actor, now=now)


def add_evidence(run: Run, cmd: AddEvidence, now: datetime) -> None:
    """Evidence for the open work stage or gate; new evidence voids the gate's approvals."""
    state = run.state
    scope = state.gate.gate.value if state.gate else state.stage.value
    records = add_evidence_records(run, cmd.evidence, cmd.actor, scope=scope, now=now)
    outbox.record(
        run,
        EventKind.EVIDENCE_ADDED,
        now,
        actor=cmd.actor,
        channel=cmd.channel,
        comment=cmd.comment,
        evidence=records,
    )
    if state.gate is not None:
        gates.refresh_evidence(run)
        gates.void_approvals(run, cmd.actor, cmd.channel, now)
        outbox.publish(run)
        outbox.gate_notice(run, NotificationKind.GATE_UPDATED, now)


def reopen(run: Run, cmd: ReopenGate, now: datetime) -> None:
    """After a gate expired, the delivery lead opens it again (a fresh SLA, same round)."""
    state = run.state
    gate = state.stalled_gate
    assert gate is not None  # checked by policy.check_reopen
    state.stalled_gate = None
    outbox.record(
        run,
        EventKind.GATE_REOPENED,
        now,
        actor=cmd.actor,
        channel=cmd.channel,
        gate=gate,
        comment=cmd.comment,
    )
    move_to(run, Stage(gate.value), actor=cmd.actor, now=now)


def cancel(run: Run, cmd: Cancel, now: datetime) -> None:
    outbox.record(
        run, EventKind.CANCELLED, now, actor=cmd.actor, channel=cmd.channel, comment=cmd.reason
    )
    if run.state.gate is not None:
        outbox.gate_notice(
            run,
            NotificationKind.GATE_CLOSED,
            now,
            outcome=GateOutcome.CANCELLED,
            by=cmd.actor,
            comment=cmd.reason,
        )
    close(run, Stage.CANCELLED, RunOutcome.CANCELLED, actor=cmd.actor, now=now)


__all__ = [
    "add_evidence",
    "cancel",
    "close",
    "complete_stage",
    "decide",
    "expire",
    "follow",
    "move_to",
    "open_beside",
    "refuse",
    "reopen",
    "start",
    "suspend",
]
