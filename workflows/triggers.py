"""Trigger rules: what live operation sets in motion by itself (``live.triggers`` of the policy).

A rule matches incidents by severity (``min_severity`` or worse) and/or an alert label; when
``count`` of them were reported within ``within_days`` it fires once and forgets them:

- ``open_review``: the periodic review falls due now (the clock opens it at once, or as soon
  as no other gate is open);
- ``require_material_change``: a material change must be applied within ``deadline_days``;
  if none is by then, the use case is suspended (rollback hook, as any stop-ship).

Each rule's memory in a run is at most ``count`` timestamps and one deadline
(``ReleaseState.triggers``), so it crosses continue-as-new whole and stays small whatever the
incident rate. Every firing is a ledger fact and a live notice. Pure functions over the run.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from workflows import outbox, transitions
from workflows.model import (
    ChangeStatus,
    Channel,
    EventKind,
    Incident,
    Materiality,
    Severity,
    Stage,
    TriggerAction,
    TriggerRule,
    TriggerState,
)

if TYPE_CHECKING:
    from workflows.clock import Deadline
    from workflows.state import Run


def _rank(severity: Severity) -> int:
    return int(severity.value.removeprefix("sev"))


def matches(rule: TriggerRule, severity: Severity, labels: dict[str, str]) -> bool:
    """Whether an incident of ``severity`` with ``labels`` counts toward ``rule``."""
    if rule.min_severity is not None and _rank(severity) > _rank(rule.min_severity):
        return False
    if rule.label is not None:
        if rule.label not in labels:
            return False
        if rule.value is not None and labels[rule.label] != rule.value:
            return False
    return True


def rules(run: Run) -> list[TriggerRule]:
    return list(run.policy.live.triggers or [])


def on_incident(run: Run, incident: Incident, labels: dict[str, str], now: datetime) -> None:
    """An incident was reported: count it toward each rule it matches; fire those now due."""
    if run.change is not None:
        return
    for rule in rules(run):
        if not matches(rule, incident.severity, labels):
            continue
        memory = run.state.triggers.setdefault(rule.name, TriggerState(name=rule.name))
        since = now - timedelta(days=rule.within_days)
        recent = [at for at in memory.marks if at > since]
        keep = rule.count - 1  # the latest that may still count with this one
        memory.marks = [*recent[max(0, len(recent) - keep) :], now] if keep else [now]
        if len(memory.marks) >= rule.count:
            memory.marks = []
            _fire(run, rule, memory, incident, now)


def _fire(
    run: Run, rule: TriggerRule, memory: TriggerState, incident: Incident, now: datetime
) -> None:
    state = run.state
    memory.fired_at = now
    extras: dict[str, object] = {
        "trigger": rule.name,
        "action": rule.action.value,
        "incident": incident.id,
        "count": rule.count,
        "within_days": rule.within_days,
    }
    if rule.action == TriggerAction.OPEN_REVIEW:
        state.next_review_at = now  # the clock opens the review as soon as no gate is open
        text = (
            f"trigger {rule.name}: {rule.count} incident(s) within {rule.within_days:g} "
            "days; the periodic review opens now"
        )
    else:
        assert rule.deadline_days is not None  # the rule's own validator
        deadline = now + timedelta(days=rule.deadline_days)
        memory.deadline = min(memory.deadline, deadline) if memory.deadline else deadline
        extras["deadline"] = memory.deadline.isoformat()
        text = (
            f"trigger {rule.name}: a material change must be applied by "
            f"{memory.deadline:%Y-%m-%d %H:%M} UTC, else the use case is suspended"
        )
    outbox.record(run, EventKind.TRIGGER_FIRED, now, actor=outbox.SYSTEM, extras=extras)
    outbox.live_notice(run, text, now)
    outbox.publish(run)


def on_material_change(run: Run, now: datetime) -> None:
    """A material change was applied: every open ``require_material_change`` deadline is met."""
    for memory in run.state.triggers.values():
        if memory.deadline is not None:
            _satisfied(run, memory, now)


def _satisfied(run: Run, memory: TriggerState, now: datetime) -> None:
    memory.deadline = None
    outbox.record(
        run, EventKind.TRIGGER_SATISFIED, now, actor=outbox.SYSTEM, extras={"trigger": memory.name}
    )
    outbox.live_notice(run, f"trigger {memory.name}: a material change was applied in time", now)
    outbox.publish(run)


def next_deadline(run: Run) -> Deadline | None:
    """The earliest open trigger deadline (only a live or suspended use case's)."""
    if run.state.closed or run.change is not None:
        return None
    due = [
        (m.deadline, f"trigger {m.name}: material change due")
        for m in run.state.triggers.values()
        if m.deadline is not None
    ]
    return min(due) if due else None


def _material_change_since(run: Run, since: datetime) -> bool:
    return any(
        c.materiality == Materiality.MATERIAL
        and c.status == ChangeStatus.APPLIED
        and c.closed_at is not None
        and c.closed_at >= since
        for c in run.state.changes
    )


def deadline_passed(run: Run, now: datetime) -> bool:
    """Handle one trigger deadline due at ``now``: met by a material change applied since it
    fired, else the use case is suspended. False when none is due."""
    state = run.state
    memory = next(
        (m for m in state.triggers.values() if m.deadline is not None and m.deadline <= now),
        None,
    )
    if memory is None:
        return False
    if memory.fired_at is not None and _material_change_since(run, memory.fired_at):
        _satisfied(run, memory, now)
        return True
    memory.deadline = None
    reason = f"trigger {memory.name}: no material change applied in time"
    outbox.record(
        run,
        EventKind.TRIGGER_FIRED,
        now,
        actor=outbox.SYSTEM,
        extras={"trigger": memory.name, "action": "suspend", "reason": reason},
    )
    if state.stage == Stage.LIVE:
        transitions.suspend(
            run, actor=outbox.SYSTEM, channel=Channel.SYSTEM, reason=reason, now=now
        )
    else:
        outbox.live_notice(run, reason, now)
        outbox.publish(run)
    return True


__all__ = ["deadline_passed", "matches", "next_deadline", "on_incident", "on_material_change"]
