"""Time: the next thing the clock owes a run, and doing what is due.

An open gate owes reminders before its SLA, an escalation to the escalation owner at the SLA
and, when the policy sets one, an expiry. A live use case owes its periodic review; a
break-glass override, its retrospective review by the end of the policy's window; a governed
exception, its end at its expiry (a waived SLA owes no reminder and no escalation). The
workflow's run loop sleeps until ``next_deadline`` (or until a handler changes the schedule)
and then calls ``fire_due``; each reminder or escalation happens once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from workflows import (
    breakglass,
    gates,
    outbox,
    policy,
    presentation,
    transitions,
    triggers,
    waivers,
)
from workflows.activities import NotificationKind
from workflows.model import EventKind, Gate, Stage
from workflows.state import Run

Deadline = tuple[datetime, str]  # when, and a summary for the Temporal UI's timer


def next_deadline(run: Run) -> Deadline | None:
    """The earliest thing the clock still owes this run."""
    state = run.state
    if state.closed:
        return None
    options: list[Deadline] = []
    gate = state.gate
    if gate is not None and not policy.sla_waived(state.waivers, gate.gate):
        for hours in run.rule(gate.gate).remind_before_hours:
            at = gate.due_at - timedelta(hours=hours)
            if hours not in gate.reminded and at > gate.opened_at:
                options.append((at, f"remind {gate.gate.value} ({hours:g}h before SLA)"))
        if gate.escalated_at is None:
            options.append((gate.due_at, f"escalate {gate.gate.value} at SLA"))
    if gate is not None:
        if gate.expires_at is not None:
            options.append((gate.expires_at, f"expire {gate.gate.value}"))
    elif state.stage == Stage.LIVE and state.next_review_at is not None and not run.change:
        options.append((state.next_review_at, "periodic review due"))
    review = breakglass.next_deadline(run)
    if review is not None:
        options.append(review)
    trigger = triggers.next_deadline(run)  # a trigger rule's deadline (workflows/triggers.py)
    if trigger is not None:
        options.append(trigger)
    exception = waivers.next_deadline(run)  # an exception's expiry (workflows/waivers.py)
    if exception is not None:
        options.append(exception)
    return min(options) if options else None


def fire_due(run: Run, now: datetime) -> None:
    """Do everything the clock owes at ``now``, oldest first."""
    while (deadline := next_deadline(run)) is not None and deadline[0] <= now:
        if not _fire_one(run, now):
            break  # nothing actually due (defensive: never spin)


def _fire_one(run: Run, now: datetime) -> bool:
    review = breakglass.next_deadline(run)
    if review is not None and review[0] <= now:
        breakglass.review_expired(run, now)
        return True
    if waivers.expire_due(run, now):
        return True
    if triggers.deadline_passed(run, now):
        return True
    gate = run.state.gate
    if gate is None:
        transitions.open_beside(run, Gate.PERIODIC_REVIEW, actor=outbox.SYSTEM, now=now)
        return True
    waived = policy.sla_waived(run.state.waivers, gate.gate)  # no reminder, no escalation
    due = [] if waived else gates.due_reminders(run, now)
    if due:
        gate.reminded += due
        outbox.record(
            run,
            EventKind.REMINDER_SENT,
            now,
            actor=outbox.SYSTEM,
            gate=gate.gate,
            extras={"hours_before_sla": due, "to": presentation.pending(run)},
        )
        outbox.gate_notice(run, NotificationKind.REMINDER, now)
        return True
    if gate.escalated_at is None and gate.due_at <= now and not waived:
        gate.escalated_at = now
        outbox.record(
            run,
            EventKind.GATE_ESCALATED,
            now,
            actor=outbox.SYSTEM,
            gate=gate.gate,
            extras={"to": run.inp.owners.escalation_owner, "pending": presentation.pending(run)},
        )
        outbox.gate_notice(run, NotificationKind.ESCALATION, now)
        outbox.publish(run)
        return True
    if gate.expires_at is not None and gate.expires_at <= now:
        transitions.expire(run, now)
        return True
    return False


__all__ = ["Deadline", "fire_due", "next_deadline"]
