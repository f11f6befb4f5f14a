"""Governed exceptions (waivers): a policy requirement set aside, on the record, until a date.

The delivery lead or the technical owner asks for an exception to one requirement of the pinned
policy — a required evidence kind at a work stage or gate, a gate's SLA, the periodic review
date — with a justification and an expiry no later than the tier's ``waivers.max_days``. Like
the retrospective review of a break-glass override (``workflows.breakglass``), the request is
seated beside the run's path by the tier's ``grantors`` (never its requester, the delivery
lead or a change's raiser) and granted once every seat is filled; one refusal ends it.

While granted: a waived evidence kind no longer blocks completing the stage or approving the
gate (listed as waived, never as present); a waived SLA does not remind or escalate; a waived
periodic review falls due at the exception's expiry. At the expiry the requirement is back: an
open gate needs the evidence again (or escalates at once, its SLA long past), and a live use
case opens its periodic review. Every step is a ledger fact. Pure functions over the run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from workflows import gates, outbox, policy
from workflows.activities import NotificationKind
from workflows.model import (
    Approval,
    DecideWaiver,
    Decision,
    EventKind,
    RequestWaiver,
    Role,
    Stage,
    Waiver,
    WaiverKind,
    WaiverRule,
    WaiverStatus,
    WaiverVerdict,
)

if TYPE_CHECKING:
    from workflows.clock import Deadline
    from workflows.state import Run

# closed (refused or expired) exceptions a run keeps beside its open ones; the ledger keeps all
KEEP_CLOSED = 10


def _rule(run: Run) -> WaiverRule:
    rule = run.policy.waivers
    assert rule is not None  # checked by policy.check_waiver_request
    return rule


def _facts(waiver: Waiver) -> dict[str, object]:
    return {
        "waiver": waiver.id,
        "requirement": waiver.requirement.model_dump(mode="json", exclude_none=True),
        "expires_at": waiver.expires_at.isoformat(),
    }


def request(run: Run, cmd: RequestWaiver, now: datetime, *, update_id: str | None = None) -> None:
    """Record the request and seat it: the grantors it waits on are told."""
    state = run.state
    rule = _rule(run)
    seats = gates.Seats(
        tuple(
            frozenset(s)
            for s in policy.waiver_seats(
                rule,
                run.inp.roster,
                cmd.actor,
                change_raised_by=run.raised_by,
                deputies=run.deputies_at(now),
            )
        )
    )
    state.waiver_seq += 1
    waiver = Waiver(
        id=f"w-{state.waiver_seq}",
        requirement=cmd.requirement,
        justification=cmd.justification,
        requested_by=cmd.actor,
        requested_at=now,
        expires_at=cmd.expires_at.astimezone(UTC),  # shown and compared as UTC
        quorum=len(seats.candidates),
        eligible=seats.eligible,
        seats=[sorted(c) for c in seats.candidates],
        pending=seats.pending([]),
        update_id=update_id,
    )
    state.waivers.append(waiver)
    outbox.record(
        run,
        EventKind.WAIVER_REQUESTED,
        now,
        actor=cmd.actor,
        channel=cmd.channel,
        comment=cmd.justification,
        extras={**_facts(waiver), "grantors": waiver.eligible, "quorum": waiver.quorum},
    )
    _tell(
        run,
        f"{cmd.actor} asks for an exception to {waiver.requirement.describe()} until "
        f"{waiver.expires_at:%Y-%m-%d %H:%M} UTC ({waiver.id}): {cmd.justification}",
        now,
        waiver.pending,
    )
    outbox.publish(run)


def decide(run: Run, cmd: DecideWaiver, now: datetime) -> None:
    """A grant fills a seat (granted once all are filled); a refusal ends the request."""
    waiver = _find(run, cmd.waiver_id)
    verdict = Decision.APPROVE if cmd.decision == WaiverVerdict.GRANT else Decision.REJECT
    outbox.record(
        run,
        EventKind.DECISION,
        now,
        actor=cmd.actor,
        channel=cmd.channel,
        decision=verdict,
        comment=cmd.comment,
        extras={"waiver": waiver.id, "quorum": waiver.quorum},
    )
    if cmd.decision == WaiverVerdict.REFUSE:
        _refused(run, waiver, cmd, now)
        return
    waiver.approvals.append(
        Approval(actor=cmd.actor, at=now, channel=cmd.channel, comment=cmd.comment)
    )
    seats = gates.Seats(tuple(frozenset(s) for s in waiver.seats))
    approvers = policy.waiver_approvers(waiver)
    waiver.pending = seats.pending(approvers)
    if seats.met(approvers):
        _granted(run, waiver, cmd.actor, now)
    outbox.publish(run)


def _refused(run: Run, waiver: Waiver, cmd: DecideWaiver, now: datetime) -> None:
    waiver.status = WaiverStatus.REFUSED
    waiver.refused_by = cmd.actor
    waiver.refused_at = now
    waiver.comment = cmd.comment
    waiver.pending = []
    outbox.record(
        run,
        EventKind.WAIVER_REFUSED,
        now,
        actor=cmd.actor,
        channel=cmd.channel,
        comment=cmd.comment,
        extras=_facts(waiver),
    )
    _tell(
        run,
        f"the exception to {waiver.requirement.describe()} ({waiver.id}) was refused by "
        f"{cmd.actor}: {cmd.comment}",
        now,
    )
    _trim(run)
    outbox.publish(run)


def _granted(run: Run, waiver: Waiver, actor: str, now: datetime) -> None:
    state = run.state
    waiver.status = WaiverStatus.GRANTED
    waiver.granted_at = now
    waiver.pending = []
    extras: dict[str, object] = {**_facts(waiver), "grantors": policy.waiver_approvers(waiver)}
    if waiver.requirement.kind == WaiverKind.PERIODIC_REVIEW and state.next_review_at is not None:
        # the review falls due at the expiry, never earlier than it already was
        waiver.deferred_review_from = state.next_review_at
        state.next_review_at = max(state.next_review_at, waiver.expires_at)
        extras["deferred_review_from"] = waiver.deferred_review_from.isoformat()
        extras["next_review_at"] = state.next_review_at.isoformat()
    outbox.record(run, EventKind.WAIVER_GRANTED, now, actor=actor, extras=extras)
    _requirement_changed(run, waiver, now)
    _tell(run, f"exception granted: {waiver.summary()}", now)


def _requirement_changed(run: Run, waiver: Waiver, now: datetime) -> None:
    """An open gate's required evidence follows the exceptions in force."""
    gate = run.state.gate
    requirement = waiver.requirement
    if (
        requirement.kind == WaiverKind.EVIDENCE
        and gate is not None
        and requirement.scope == gate.gate.value
    ):
        gates.refresh_evidence(run)
        outbox.gate_notice(run, NotificationKind.GATE_UPDATED, now)


def _find(run: Run, waiver_id: str) -> Waiver:
    waiver = next((w for w in run.state.waivers if w.id == waiver_id), None)
    assert waiver is not None  # checked by policy.check_waiver_decision
    return waiver


def _trim(run: Run) -> None:
    """Keep the open exceptions and the latest closed ones (the ledger holds every one)."""
    state = run.state
    closed = [w for w in state.waivers if not w.is_open]
    drop = {w.id for w in closed[: max(0, len(closed) - KEEP_CLOSED)]}
    if drop:
        state.waivers = [w for w in state.waivers if w.id not in drop]


def next_deadline(run: Run) -> Deadline | None:
    """The earliest expiry of a pending or granted exception of an open run."""
    if run.state.closed:
        return None
    due = [(w.expires_at, f"exception {w.id} expires") for w in run.state.waivers if w.is_open]
    return min(due) if due else None


def expire_due(run: Run, now: datetime) -> bool:
    """End one exception whose expiry has come; False when none has."""
    waiver = next(
        (w for w in run.state.waivers if w.is_open and w.expires_at <= now),
        None,
    )
    if waiver is None:
        return False
    _expired(run, waiver, now)
    return True


def _expired(run: Run, waiver: Waiver, now: datetime) -> None:
    state = run.state
    was_granted = waiver.status == WaiverStatus.GRANTED
    waiver.status = WaiverStatus.EXPIRED
    waiver.expired_at = now
    waiver.pending = []
    live = state.stage in (Stage.LIVE, Stage.SUSPENDED) and run.change is None
    if not was_granted:
        consequence = "lapsed before it was granted"
    elif live:
        consequence = "the requirement applies again; the periodic review opens"
    else:
        consequence = "the requirement applies again"
    outbox.record(
        run,
        EventKind.WAIVER_EXPIRED,
        now,
        actor=outbox.SYSTEM,
        extras={**_facts(waiver), "was_granted": was_granted, "consequence": consequence},
    )
    if was_granted:
        gate = state.gate
        if (
            waiver.requirement.kind == WaiverKind.SLA
            and gate is not None
            and gate.gate == waiver.requirement.gate
        ):
            # reminders the exception held back are past: only the escalation is still owed
            gate.reminded += [h for h in gates.due_reminders(run, now) if h not in gate.reminded]
        _requirement_changed(run, waiver, now)
        if live and (state.next_review_at is None or state.next_review_at > now):
            # a live use case whose exception ended is reviewed: the clock opens the review as
            # soon as no other gate is open
            state.next_review_at = now
        _tell(run, f"exception {waiver.id} expired: {consequence}", now)
    _trim(run)
    outbox.publish(run)


def _tell(run: Run, text: str, now: datetime, also: list[str] | None = None) -> None:
    """The business owner and the risk approvers hear of every exception (and ``also``)."""
    roster = run.inp.roster
    recipients = sorted(
        set(roster.get(Role.BUSINESS_OWNER, []))
        | set(roster.get(Role.RISK_APPROVER, []))
        | set(also or [])
    )
    outbox.notice(run, NotificationKind.LIVE_EVENT, f"{run.inp.title}: {text}", now, recipients)


def lines(run: Run) -> list[str]:
    """The exceptions in force and those asked for, one line each (cards, details)."""
    return [w.summary() for w in run.state.waivers if w.is_open]


__all__ = ["decide", "expire_due", "lines", "next_deadline", "request"]
