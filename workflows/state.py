"""A run's one mutable state, and the pinned facts the pure modules read beside it.

``ReleaseState`` is everything a run has become since it started; it is the workflow's only
mutable attribute and crosses continue-as-new whole (the input carries it). ``Run`` pairs it with
the input pinned at start (owners, roster, policy), so the pure modules — ``gates``,
``transitions``, ``clock``, ``presentation``, ``outbox`` — take one argument and need no
Temporal server to test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, Field

from workflows import policy
from workflows.activities import HookRequest, LedgerRecord, MessageRef, Notification
from workflows.model import (
    Approval,
    BundleArtifact,
    ChangeInfo,
    ChangeOutcome,
    ChangeSummary,
    ClosedGate,
    Deputies,
    EvidenceRecord,
    Gate,
    GateRule,
    HistoryEvent,
    Incident,
    OpenGate,
    Override,
    PinnedPolicy,
    RefusedAttempt,
    Role,
    RunOutcome,
    RuntimeSeen,
    Stage,
    TriggerState,
    UseCaseInput,
    Waiver,
)


class Outbox(BaseModel):
    """What handlers recorded and the run loop still has to ship, in order."""

    ledger: list[LedgerRecord] = Field(default_factory=list)
    notices: list[Notification] = Field(default_factory=list)
    hooks: list[HookRequest] = Field(default_factory=list)
    parent_report: ChangeOutcome | None = None
    cancel_runs: list[str] = Field(default_factory=list)
    # change runs that say they ended: confirmed with Temporal before anything is applied
    change_reports: list[ChangeOutcome] = Field(default_factory=list)
    read_model_stale: bool = True
    # how many times the state was published since the shell last synced search attributes
    publishes: int = 0

    def has_work(self) -> bool:
        return bool(
            self.ledger
            or self.notices
            or self.hooks
            or self.read_model_stale
            or self.parent_report
            or self.change_reports
        )


class ReleaseState(BaseModel):
    started_at: datetime
    updated_at: datetime
    stage: Stage
    stage_entered_at: datetime
    round: int = 1
    closed: bool = False
    outcome: RunOutcome | None = None
    evidence: list[EvidenceRecord] = Field(default_factory=list)
    gate: OpenGate | None = None
    stalled_gate: Gate | None = None
    validation_completed_by: str | None = None
    history: list[HistoryEvent] = Field(default_factory=list)
    refused: list[RefusedAttempt] = Field(default_factory=list)
    voided: list[Approval] = Field(default_factory=list)
    last_closed_gate: ClosedGate | None = None
    event_id: int = 0  # the last fact's id: contiguous from 1, the ledger's idempotency key
    live_version: int = 0
    live_since: datetime | None = None
    next_review_at: datetime | None = None
    incidents: list[Incident] = Field(default_factory=list)
    changes: list[ChangeSummary] = Field(default_factory=list)
    runs: int = 1  # how many runs (continue-as-new) this use case has had
    # how many of each growing list continue-as-new left behind (``workflows.bounded``): the
    # lists keep the latest few, the ledger keeps them all, numbering continues after these
    incidents_before: int = 0
    changes_before: int = 0
    history_before: int = 0
    # posted gate cards per "gate:round", so later notices update them in place
    cards: dict[str, list[MessageRef]] = Field(default_factory=dict)
    # deputies per owner role: named at start, changed by the business owner's command
    deputies: Deputies = Field(default_factory=dict)
    # a break-glass override whose retrospective review has not passed yet
    override: Override | None = None
    # monitoring: open alerts (fingerprint -> incident id), one incident each until resolved;
    # the bundle the live version was approved with once a change replaced the release's; the
    # bundle last reported running; each trigger rule's memory, by name (workflows/triggers.py)
    alerts: dict[str, str] = Field(default_factory=dict)
    approved_bundle: list[BundleArtifact] | None = None
    runtime: RuntimeSeen | None = None
    triggers: dict[str, TriggerState] = Field(default_factory=dict)
    # governed exceptions (workflows/waivers.py): the open ones and the latest closed, and how
    # many were ever asked for (their ids number on from it)
    waivers: list[Waiver] = Field(default_factory=list)
    waiver_seq: int = 0
    outbox: Outbox = Field(default_factory=Outbox)

    @classmethod
    def fresh(cls, inp: UseCaseInput, now: datetime) -> ReleaseState:
        return cls(
            started_at=now,
            updated_at=now,
            stage=path_of(inp)[0],
            stage_entered_at=now,
            deputies={r: list(d) for r, d in inp.deputies.items()},
        )


def path_of(inp: UseCaseInput) -> list[Stage]:
    """The stages a run walks: its tier's path, or a change request's own path."""
    if inp.change:
        return policy.change_path(inp.policy.rules, inp.change.materiality)
    return policy.stage_path(inp.policy.rules)


@dataclass
class Run:
    """A run as the pure modules see it: pinned input, mutable state, its workflow id."""

    inp: UseCaseInput
    state: ReleaseState
    workflow_id: str

    @property
    def policy(self) -> PinnedPolicy:
        return self.inp.policy

    @property
    def change(self) -> ChangeInfo | None:
        return self.inp.change

    @property
    def raised_by(self) -> str | None:
        return self.inp.change.raised_by if self.inp.change else None

    @property
    def starter(self) -> str:
        """Who asked for this run: the delivery lead, or the person who raised the change."""
        return self.inp.change.raised_by if self.inp.change else self.inp.owners.delivery_lead

    @property
    def path(self) -> list[Stage]:
        return path_of(self.inp)

    def deputies_at(self, now: datetime) -> dict[Role, set[str]]:
        """Deputies whose delegation is in force at ``now``."""
        return policy.active_deputies(self.state.deputies, now)

    def rule(self, gate: Gate) -> GateRule:
        rule = policy.gate_rule(self.inp.policy, gate)
        if rule is None:  # the pinned policy built the path, so this cannot happen
            raise ValueError(f"no rule for gate {gate.value}")
        return rule


__all__ = ["Outbox", "ReleaseState", "Run", "path_of"]
