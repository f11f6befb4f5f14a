"""Break-glass: a stalled gate passed on the record, and the review that must uphold it.

A member of the policy's break-glass group may pass a gate of the run's path that has stalled
(open past its SLA and escalated, or expired) with a justification. It is recorded as
``override`` — never as an approval — the business owner and the risk approvers are told, and a
retrospective review opens beside the run (gate ``override_review``), seated by the policy's
``break_glass.review`` deciders and never by the overrider or whoever asked for the run. It must
pass within ``review_within_hours``. Sent back, rejected, or not passed in time, the override is
not upheld: a live use case is suspended (stop-ship with the rollback hook); one not yet live
goes back to the overridden gate.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from workflows import gates, outbox, policy, transitions
from workflows.activities import NotificationKind
from workflows.model import (
    BreakGlassRule,
    Channel,
    Decision,
    EventKind,
    Gate,
    GateDecision,
    GateOutcome,
    OpenGate,
    Override,
    OverrideGate,
    Role,
    Stage,
)
from workflows.state import Run


def _rule(run: Run) -> BreakGlassRule:
    rule = run.policy.break_glass
    assert rule is not None  # checked by policy.check_override
    return rule


def override(run: Run, cmd: OverrideGate, now: datetime) -> None:
    """Pass the stalled gate now; open its retrospective review; move on as if it passed."""
    state = run.state
    rule = _rule(run)
    open_gate = state.gate if state.gate is not None and state.gate.gate == cmd.gate else None
    seats = policy.review_seats(
        rule,
        run.inp.roster,
        cmd.actor,
        change_raised_by=run.raised_by,
        deputies=run.deputies_at(now),
    )
    candidates = gates.Seats(tuple(frozenset(s) for s in seats))
    due = now + timedelta(hours=rule.review_within_hours)
    review = OpenGate(
        gate=Gate.OVERRIDE_REVIEW,
        eligible=candidates.eligible,
        quorum=len(seats),
        approvals=[],
        opened_at=now,
        due_at=due,
        round=state.round,
        seats=[sorted(c) for c in candidates.candidates],
        pending=candidates.pending([]),
        requested_by=cmd.actor,
        evidence_digests=policy.evidence_digests(state.evidence),
    )
    outbox.record(
        run,
        EventKind.OVERRIDE,
        now,
        actor=cmd.actor,
        channel=cmd.channel,
        gate=cmd.gate,
        comment=cmd.justification,
        extras={
            "round": state.round,
            "waited_on": list(open_gate.pending) if open_gate else [],
            "approvers": gates.approvers(open_gate),
            "evidence_digests": policy.evidence_digests(state.evidence),
            "review_due_at": due.isoformat(),
            "reviewers": review.eligible,
        },
    )
    if open_gate is not None:
        gates.close(run, GateOutcome.OVERRIDDEN, now)
        outbox.gate_notice(
            run,
            NotificationKind.GATE_CLOSED,
            now,
            outcome=GateOutcome.OVERRIDDEN,
            by=cmd.actor,
            comment=cmd.justification,
        )
    state.stalled_gate = None
    state.override = Override(
        gate=cmd.gate,
        round=state.round,
        by=cmd.actor,
        at=now,
        justification=cmd.justification,
        review=review,
    )
    outbox.record(run, EventKind.GATE_OPENED, now, actor=cmd.actor, gate=Gate.OVERRIDE_REVIEW)
    _tell(
        run,
        f"BREAK-GLASS: {cmd.actor} overrode {cmd.gate.value} ({cmd.justification}). "
        f"Retrospective review by {due:%Y-%m-%d %H:%M} UTC, waiting on "
        f"{', '.join(review.pending) or 'nobody'}",
        now,
    )
    transitions.move_to(
        run, policy.next_stage(run.path, Stage(cmd.gate.value)), actor=cmd.actor, now=now
    )


def decide(run: Run, cmd: GateDecision, now: datetime) -> None:
    """A decision on the retrospective review: approvals until its seats are filled (upheld),
    or a request for changes or a rejection (not upheld)."""
    state = run.state
    current = state.override
    assert current is not None  # checked by policy.check_decision
    review = current.review
    gates.record_decision(run, cmd, Gate.OVERRIDE_REVIEW, review, now)
    if cmd.decision != Decision.APPROVE:
        _not_upheld(run, f"{cmd.actor}: {cmd.comment}", actor=cmd.actor, now=now)
        return
    seats = gates.fill_seat(review, cmd, now)
    if seats.met(gates.approvers(review)):
        outbox.record(
            run,
            EventKind.GATE_PASSED,
            now,
            actor=cmd.actor,
            gate=Gate.OVERRIDE_REVIEW,
            extras={"approvers": gates.approvers(review)},
        )
        state.override = None
        _tell(run, f"the override of {current.gate.value} by {current.by} was upheld", now)
    outbox.publish(run)


def review_expired(run: Run, now: datetime) -> None:
    """The review window closed without the review passing: the override is not upheld."""
    current = run.state.override
    assert current is not None
    outbox.record(run, EventKind.GATE_EXPIRED, now, actor=outbox.SYSTEM, gate=Gate.OVERRIDE_REVIEW)
    _not_upheld(
        run,
        f"not reviewed within the policy's {_rule(run).review_within_hours:g} hours",
        actor=outbox.SYSTEM,
        now=now,
    )


def _not_upheld(run: Run, reason: str, *, actor: str, now: datetime) -> None:
    state = run.state
    current = state.override
    assert current is not None
    state.override = None
    if state.stage == Stage.LIVE:
        consequence = "suspended"
    elif state.closed:
        consequence = "none (the run is closed)"
    else:
        consequence = f"back to {current.gate.value}"
    outbox.record(
        run,
        EventKind.OVERRIDE_NOT_UPHELD,
        now,
        actor=actor,
        gate=current.gate,
        comment=reason,
        extras={"overridden_gate": current.gate, "reason": reason, "consequence": consequence},
    )
    _tell(run, f"the override of {current.gate.value} was NOT upheld: {reason}", now)
    if state.stage == Stage.LIVE:
        transitions.suspend(
            run,
            actor=actor,
            channel=Channel.SYSTEM,
            reason=f"break-glass override of {current.gate.value} not upheld: {reason}",
            now=now,
        )
    elif not state.closed and state.stage != Stage.SUSPENDED:
        if state.gate is not None:
            outbox.gate_notice(
                run, NotificationKind.GATE_CLOSED, now, outcome=GateOutcome.CANCELLED, by=actor
            )
        state.round += 1
        transitions.move_to(run, Stage(current.gate.value), actor=actor, now=now)
    outbox.publish(run)


def _tell(run: Run, text: str, now: datetime) -> None:
    """The business owner and the risk approvers hear of every override and its review."""
    roster = run.inp.roster
    recipients = sorted(
        set(roster.get(Role.BUSINESS_OWNER, [])) | set(roster.get(Role.RISK_APPROVER, []))
    )
    outbox.notice(run, NotificationKind.LIVE_EVENT, f"{run.inp.title}: {text}", now, recipients)


def next_deadline(run: Run) -> tuple[datetime, str] | None:
    current = run.state.override
    if current is None or run.state.closed:
        return None
    return current.review.due_at, f"override review of {current.gate.value} due"


__all__ = ["decide", "next_deadline", "override", "review_expired"]
