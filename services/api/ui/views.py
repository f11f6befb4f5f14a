"""What the console shows, as pure functions of a run's state, history and the policy.

Nothing here does I/O or decides anything new: who may decide comes from the open gate the
workflow computed (its eligible people, seats and pending list), so the page never disagrees
with what the command layer will answer. The routes fetch; these functions arrange.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from workflows.model import (
    Approval,
    Decision,
    EventKind,
    Gate,
    GateRule,
    HistoryEvent,
    OpenGate,
    Stage,
    UseCaseView,
)


class SlaState(StrEnum):
    """Where a gate stands against its SLA (the workflow's clock does the same arithmetic)."""

    ON_TIME = "on time"
    REMINDED = "reminded"
    ESCALATED = "escalated"
    EXPIRED = "expired"


def sla_state(due_at: datetime | None, rule: GateRule | None, now: datetime) -> SlaState:
    """``due_at`` is the gate's SLA; reminders fall ``remind_before_hours`` before it, the
    escalation at it, the expiry ``expire_after_hours`` after the gate opened."""
    if due_at is None:
        return SlaState.ON_TIME
    opened = due_at - timedelta(hours=rule.sla_hours) if rule else None
    if rule and rule.expire_after_hours and opened is not None:
        if now >= opened + timedelta(hours=rule.expire_after_hours):
            return SlaState.EXPIRED
    if now >= due_at:
        return SlaState.ESCALATED
    for hours in rule.remind_before_hours if rule else []:
        at = due_at - timedelta(hours=hours)
        if at <= now and (opened is None or at > opened):
            return SlaState.REMINDED
    return SlaState.ON_TIME


def opened_at(due_at: datetime | None, rule: GateRule | None) -> datetime | None:
    """When a gate opened, from its due time and its SLA (the read model keeps only the due)."""
    if due_at is None:
        return None
    return due_at - timedelta(hours=rule.sla_hours) if rule else due_at


# --------------------------------------------------------------------------- deciding


class Eligibility(StrEnum):
    """Whether the signed-in person may decide the gate, and if not, why not."""

    MAY_DECIDE = "may decide"
    NOT_OPEN = "not open"
    NOT_ELIGIBLE = "not eligible"
    ALREADY_APPROVED = "already approved"
    SEAT_TAKEN = "seat taken"


ELIGIBILITY_TEXT: dict[Eligibility, str] = {
    Eligibility.MAY_DECIDE: "You may decide this gate.",
    Eligibility.NOT_OPEN: "No gate is open on this use case: there is nothing to decide.",
    Eligibility.NOT_ELIGIBLE: "You are not eligible for this gate.",
    Eligibility.ALREADY_APPROVED: "You already approved this gate in this round.",
    Eligibility.SEAT_TAKEN: "The seats you could fill on this gate are already taken.",
}


def eligibility(view: UseCaseView, person_id: str) -> Eligibility:
    """From the open gate as the workflow keeps it: ``eligible`` after separation of duties,
    ``pending`` the people whose approval would still fill an empty seat."""
    gate = view.open_gate
    if view.closed or gate is None:
        return Eligibility.NOT_OPEN
    if person_id not in gate.eligible:
        return Eligibility.NOT_ELIGIBLE
    if any(a.actor == person_id for a in gate.approvals):
        return Eligibility.ALREADY_APPROVED
    if person_id not in gate.pending:
        return Eligibility.SEAT_TAKEN
    return Eligibility.MAY_DECIDE


@dataclass(frozen=True)
class Seat:
    number: int
    candidates: list[str]
    filled_by: Approval | None


def seats(gate: OpenGate) -> list[Seat]:
    """The gate's seats and who filled each: approvals in order, each into the first empty
    seat it may fill (a display of the workflow's matching; the quorum count is its own)."""
    filled: list[Approval | None] = [None] * len(gate.seats)
    for approval in gate.approvals:
        for i, candidates in enumerate(gate.seats):
            if filled[i] is None and approval.actor in candidates:
                filled[i] = approval
                break
    return [Seat(i + 1, list(candidates), filled[i]) for i, candidates in enumerate(gate.seats)]


# --------------------------------------------------------------------------- the story


@dataclass(frozen=True)
class StageVisit:
    stage: Stage
    entered_at: datetime
    entered_by: str
    left_at: datetime | None
    round: int

    def duration(self, now: datetime) -> timedelta:
        return (self.left_at or now) - self.entered_at


def timeline(history: list[HistoryEvent]) -> list[StageVisit]:
    """Each stage the run entered: when, who moved it there, until when (None: still there)."""
    entered = [e for e in history if e.kind == EventKind.STAGE_ENTERED]
    visits = []
    for i, event in enumerate(entered):
        left = entered[i + 1].at if i + 1 < len(entered) else None
        visits.append(StageVisit(event.stage, event.at, event.actor, left, event.round))
    return visits


@dataclass(frozen=True)
class DecisionRow:
    event: HistoryEvent
    voided: bool = False


def decisions(history: list[HistoryEvent]) -> list[DecisionRow]:
    """Every decision, an approval marked voided when evidence added later in the same gate
    visit voided it (``approvals_voided`` after it, same gate and round)."""
    rows = []
    for i, event in enumerate(history):
        if event.kind != EventKind.DECISION:
            continue
        voided = event.decision == Decision.APPROVE and any(
            later.kind == EventKind.APPROVALS_VOIDED
            and later.gate == event.gate
            and later.round == event.round
            for later in history[i + 1 :]
        )
        rows.append(DecisionRow(event, voided))
    return rows


def human_duration(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m"
    return f"{seconds}s"


@dataclass
class InboxItem:
    workflow_id: str
    key: str
    title: str
    risk_tier: str
    gate: str
    round: int
    quorum: int
    approvals: list[str]
    due_at: datetime | None
    opened_at: datetime | None
    sla: SlaState
    escalated_to_me: bool = False

    @property
    def seats_left(self) -> int:
        return max(self.quorum - len(self.approvals), 0)


@dataclass
class Inbox:
    items: list[InboxItem] = field(default_factory=list)

    @property
    def counts(self) -> dict[SlaState, int]:
        out = dict.fromkeys(SlaState, 0)
        for item in self.items:
            out[item.sla] += 1
        return out


def gate_of(value: str | None) -> Gate | None:
    try:
        return Gate(value) if value else None
    except ValueError:
        return None


__all__ = [
    "ELIGIBILITY_TEXT",
    "DecisionRow",
    "Eligibility",
    "Inbox",
    "InboxItem",
    "Seat",
    "SlaState",
    "StageVisit",
    "decisions",
    "eligibility",
    "gate_of",
    "human_duration",
    "opened_at",
    "seats",
    "sla_state",
    "timeline",
]
