"""Gates: opening one, its seats, approvals, evidence binding, and how a decision ends it.

A gate's seats are computed once when it opens (``Seats``: candidates per quorum seat, after
separation of duties); every later question — who is eligible, who it still waits on, whether
an approval fills an empty seat, whether the quorum is met — is answered from those seats and
the approvals so far. What the run does once a gate has ended (next stage, rework, closed,
stalled) is ``transitions.follow``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from workflows import bundles, outbox, policy
from workflows.activities import NotificationKind
from workflows.model import (
    Approval,
    ClosedGate,
    Decision,
    EventKind,
    Gate,
    GateDecision,
    GateOutcome,
    OpenGate,
    Refusal,
)
from workflows.state import Run


@dataclass(frozen=True)
class Seats:
    """A gate's quorum seats: for each, the distinct people who may fill it."""

    candidates: tuple[frozenset[str], ...]

    @classmethod
    def of(cls, gate: OpenGate) -> Seats:
        return cls(tuple(frozenset(s) for s in gate.seats))

    @property
    def eligible(self) -> list[str]:
        return sorted(set().union(*self.candidates)) if self.candidates else []

    def filled(self, approvers: list[str]) -> int:
        """How many seats distinct approvers fill (bipartite matching; seats are few)."""
        return policy.max_matching([set(c) for c in self.candidates], approvers)

    def met(self, approvers: list[str]) -> bool:
        return self.filled(approvers) >= len(self.candidates)

    def counts(self, approvers: list[str], actor: str) -> bool:
        """Would ``actor``'s approval fill a seat the approvals so far leave empty?"""
        return self.filled([*approvers, actor]) > self.filled(approvers)

    def pending(self, approvers: list[str]) -> list[str]:
        """Who can still fill an empty seat: the gate waits on them."""
        base = self.filled(approvers)
        return [
            p
            for p in self.eligible
            if p not in approvers
            and policy.max_matching([set(c) for c in self.candidates], [*approvers, p]) > base
        ]


def approvers(gate: OpenGate | None) -> list[str]:
    return [a.actor for a in gate.approvals] if gate else []


def seats_for(run: Run, gate: Gate, now: datetime, requested_by: str | None = None) -> Seats:
    """The gate's seats on this run: holders and deputies in force, whoever asked excluded."""
    rule = run.rule(gate)
    excluded = policy.excluded_from_gate(
        gate,
        run.inp.roster,
        validation_completed_by=run.state.validation_completed_by,
        change_raised_by=run.raised_by,
        resume_requested_by=requested_by,
        allow_requester=rule.allow_requester,
    )
    slots = policy.seat_candidates(
        rule,
        run.inp.roster,
        excluded,
        change_raised_by=run.raised_by,
        deputies=run.deputies_at(now),
    )
    return Seats(tuple(frozenset(s) for s in slots))


def reseat(run: Run, now: datetime) -> None:
    """Compute the open gate's seats again (deputies changed, or a gate carried from a version
    that did not keep them); approvals given stay."""
    gate = run.state.gate
    if gate is None:
        return
    seats = seats_for(run, gate.gate, now, gate.requested_by)
    gate.seats = [sorted(c) for c in seats.candidates]
    gate.eligible = seats.eligible
    gate.pending = seats.pending(approvers(gate))


def ensure_seats(run: Run) -> None:
    """A gate carried from a version that did not keep its seats gets them computed now."""
    gate = run.state.gate
    if gate is not None and not gate.seats:
        reseat(run, run.state.updated_at)


def open_gate(run: Run, gate: Gate, now: datetime, requested_by: str | None = None) -> None:
    """Open ``gate`` for the run's current round: seats, SLA, expiry and its evidence."""
    rule = run.rule(gate)
    seats = seats_for(run, gate, now, requested_by)
    run.state.gate = OpenGate(
        gate=gate,
        eligible=seats.eligible,
        quorum=rule.quorum,
        approvals=[],
        opened_at=now,
        due_at=now + timedelta(hours=rule.sla_hours),
        round=run.state.round,
        expires_at=now + timedelta(hours=rule.expire_after_hours)
        if rule.expire_after_hours
        else None,
        seats=[sorted(c) for c in seats.candidates],
        pending=seats.pending([]),
        requested_by=requested_by,
    )
    refresh_evidence(run)


def refresh_evidence(run: Run) -> None:
    """The open gate binds to the run's evidence as it is now."""
    gate = run.state.gate
    if gate is None:
        return
    # the bundle under approval is bound beside the evidence (workflows/bundles.py)
    gate.evidence_digests = bundles.bound_digests(run, policy.evidence_digests(run.state.evidence))
    gate.required_evidence = policy.missing_evidence(
        run.rule(gate.gate).evidence, run.state.evidence
    )
    if run.state.waivers:  # kinds a granted exception waives do not block (workflows/waivers.py)
        waived = policy.waived_evidence(run.state.waivers, gate.gate.value)
        gate.required_evidence = [k for k in gate.required_evidence if k not in waived]


def check_counts(run: Run, cmd: GateDecision) -> None:
    """An approval must fill an empty quorum seat; a person never counts twice."""
    gate = run.state.gate
    if cmd.gate == Gate.OVERRIDE_REVIEW:  # a break-glass override's retrospective review
        gate = run.state.override.review if run.state.override else None
    if cmd.decision != Decision.APPROVE or gate is None:
        return
    if not Seats.of(gate).counts(approvers(gate), cmd.actor):
        raise policy.PolicyViolation(
            Refusal.ALREADY_DECIDED,
            f"the seats {cmd.actor} can fill on {gate.gate.value} are already taken",
        )


def void_approvals(run: Run, actor: str, channel: object, now: datetime) -> None:
    """Approvals are bound to the evidence they saw: new evidence voids them."""
    gate = run.state.gate
    if gate is None or not gate.approvals:
        return
    voided = gate.approvals
    run.state.voided += voided
    gate.approvals = []
    gate.pending = Seats.of(gate).pending([])
    outbox.record(
        run,
        EventKind.APPROVALS_VOIDED,
        now,
        actor=actor,
        channel=channel,  # type: ignore[arg-type]
        gate=gate.gate,
        extras={"voided": [a.actor for a in voided]},
    )


def record_decision(run: Run, cmd: GateDecision, name: Gate, gate: OpenGate, now: datetime) -> None:
    """The decision on gate ``name`` on the record, bound to the evidence ``gate`` shows."""
    outbox.record(
        run,
        EventKind.DECISION,
        now,
        actor=cmd.actor,
        channel=cmd.channel,
        gate=name,
        decision=cmd.decision,
        comment=cmd.comment,
        extras={"evidence_digests": gate.evidence_digests, "quorum": gate.quorum},
    )


def fill_seat(gate: OpenGate, cmd: GateDecision, now: datetime) -> Seats:
    """An approval of ``gate`` (bound to its evidence) fills a seat; its seats after it."""
    gate.approvals.append(
        Approval(
            actor=cmd.actor,
            at=now,
            channel=cmd.channel,
            evidence_digests=list(gate.evidence_digests),
            comment=cmd.comment,
        )
    )
    seats = Seats.of(gate)
    gate.pending = seats.pending(approvers(gate))
    return seats


def decide(run: Run, cmd: GateDecision, now: datetime) -> GateOutcome | None:
    """Record a decision on the open gate; the gate's outcome once it ends, else None."""
    gate = run.state.gate
    assert gate is not None  # checked by policy.check_decision
    record_decision(run, cmd, gate.gate, gate, now)
    if cmd.decision == Decision.APPROVE:
        seats = fill_seat(gate, cmd, now)
        if not seats.met(approvers(gate)):
            outbox.publish(run)
            outbox.gate_notice(run, NotificationKind.GATE_UPDATED, now)
            return None
        outbox.record(
            run,
            EventKind.GATE_PASSED,
            now,
            actor=cmd.actor,
            gate=gate.gate,
            extras={"approvers": approvers(gate)},
        )
        outbox.gate_notice(
            run, NotificationKind.GATE_CLOSED, now, outcome=GateOutcome.PASSED, by=cmd.actor
        )
        close(run, GateOutcome.PASSED, now)
        return GateOutcome.PASSED
    outcome = (
        GateOutcome.CHANGES_REQUESTED
        if cmd.decision == Decision.REQUEST_CHANGES
        else GateOutcome.REJECTED
    )
    close(run, outcome, now)
    outbox.gate_notice(
        run, NotificationKind.GATE_CLOSED, now, outcome=outcome, by=cmd.actor, comment=cmd.comment
    )
    return outcome


def close(run: Run, outcome: GateOutcome, now: datetime) -> None:
    """Remember the gate visit that just ended (what it waited, for metrics and clients)."""
    gate = run.state.gate
    assert gate is not None
    run.state.last_closed_gate = ClosedGate(
        gate=gate.gate,
        round=gate.round,
        opened_at=gate.opened_at,
        closed_at=now,
        outcome=outcome,
    )


def due_reminders(run: Run, now: datetime) -> list[float]:
    """Reminder marks (hours before the SLA) that are due now and not yet sent."""
    gate = run.state.gate
    if gate is None:
        return []
    return [
        h
        for h in run.rule(gate.gate).remind_before_hours
        if h not in gate.reminded
        and gate.due_at - timedelta(hours=h) <= now
        and gate.due_at - timedelta(hours=h) > gate.opened_at
    ]


__all__ = [
    "Seats",
    "approvers",
    "check_counts",
    "close",
    "decide",
    "due_reminders",
    "ensure_seats",
    "fill_seat",
    "open_gate",
    "record_decision",
    "refresh_evidence",
    "seats_for",
    "void_approvals",
]
