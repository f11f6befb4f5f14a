"""Activity names and payload types. Implementations live in ``services.worker``.

Activities are at-least-once: every implementation must be idempotent on its natural key
((workflow_id, event_id) for the ledger, (workflow_id, event_id) as a version for the registry).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from workflows.model import (
    Approval,
    ChangeStatus,
    Channel,
    EventKind,
    Evidence,
    EvidenceRecord,
    GateOutcome,
    HookKind,
)

LEDGER_APPEND = "ledger.append"
REGISTRY_SYNC = "registry.sync"


class LedgerRecord(BaseModel):
    """One fact the workflow wants in the tamper-evident ledger.

    ``event_id`` is assigned by the workflow, contiguous from 1 per workflow id, and is the
    idempotency key together with ``workflow_id``: the store writes each (workflow_id, event_id)
    exactly once and chains entries in event_id order.
    """

    workflow_id: str
    use_case_key: str
    event_id: int = Field(ge=1)
    at: datetime
    kind: EventKind
    actor: str
    channel: Channel
    payload: dict[str, Any] = Field(default_factory=dict)
    policy_version: str
    # evidence items this entry introduces (kind "evidence_added" / "stage_completed")
    evidence: list[EvidenceRecord] = Field(default_factory=list)


class LedgerBatch(BaseModel):
    records: list[LedgerRecord] = Field(min_length=1)


class SideDecisionKind(StrEnum):
    """What a side decision is (its values are what the read model and the inbox API carry)."""

    # a break-glass override's retrospective review (``ref`` is the gate, ``override_review``)
    OVERRIDE_REVIEW = "override_review"
    WAIVER = "waiver"  # a pending exception (``ref`` is its id)


class SideDecision(BaseModel):
    """A decision waiting beside the run's open gate: a break-glass override's retrospective
    review (``ref`` = ``override_review``) or a pending exception (``ref`` = the waiver id)."""

    kind: SideDecisionKind
    ref: str
    pending: list[str] = Field(default_factory=list)
    quorum: int | None = None
    approvals: list[str] = Field(default_factory=list)
    due_at: datetime | None = None
    round: int = 1


class RegistryRow(BaseModel):
    """The read model behind listing and the approvals inbox; newer ``event_id`` wins."""

    workflow_id: str
    key: str
    title: str
    risk_tier: str
    stage: str
    closed: bool
    business_owner: str
    owners: dict[str, Any]
    pending_approvers: list[str] = Field(default_factory=list)
    gate: str | None = None
    quorum: int | None = None
    approvals: list[str] = Field(default_factory=list)
    due_at: datetime | None = None
    round: int = 1
    updated_at: datetime
    event_id: int = Field(ge=0)
    # who the run's side decisions wait on (the inbox lists them beside the open gate's)
    side_decisions: list[SideDecision] = Field(default_factory=list)


# --------------------------------------------------------------------------- notifications

NOTIFY = "notify"


class NotificationKind(StrEnum):
    GATE_OPENED = "gate_opened"  # post a fresh card (also when a rework round reopens a gate)
    GATE_UPDATED = "gate_updated"  # update posted cards in place (an approval, voided approvals)
    GATE_CLOSED = "gate_closed"  # final state of the cards: passed, changes requested, rejected…
    REMINDER = "reminder"
    ESCALATION = "escalation"
    LIVE_EVENT = "live_event"  # incidents, suspend/resume, changes, retirement


class MessageRef(BaseModel):
    """Where an adapter posted a card, so later notifications can update it in place."""

    adapter: str
    channel: str
    ts: str


class GateCard(BaseModel):
    gate: str
    round: int
    quorum: int
    eligible: list[str]
    pending: list[str]
    approvals: list[Approval]
    due_at: datetime
    outcome: GateOutcome | None = None
    decided_by: str | None = None
    comment: str = ""
    # the run's deputies (delegation of authority): role -> "person" or "person (until …)"
    deputies: dict[str, list[str]] = Field(default_factory=dict)
    # governed exceptions pending or in force on the run, one line each (workflows/waivers.py)
    exceptions: list[str] = Field(default_factory=list)


class Notification(BaseModel):
    kind: NotificationKind
    workflow_id: str
    key: str
    title: str
    risk_tier: str
    stage: str
    round: int
    at: datetime
    text: str  # plain-text fallback every adapter can use
    gate: GateCard | None = None
    evidence: list[Evidence] = Field(default_factory=list)
    recipients: list[str] = Field(default_factory=list)  # person ids to message directly
    slack_channel: str | None = None
    message_refs: list[MessageRef] = Field(default_factory=list)


class NotifyResult(BaseModel):
    message_refs: list[MessageRef] = Field(default_factory=list)


# --------------------------------------------------------------------------- the store, in one trip

STORE_PERSIST = "store.persist"


class StoreBatch(BaseModel):
    """What one workflow task leaves for the store: its ledger records (possibly none) and the
    read model's row as of them, written in one transaction by one local activity. Idempotent
    like its parts: the ledger on (workflow_id, event_id), the row by its ``event_id``.

    ``notices``: the notices queued so far. A worker whose only notification channel is its
    log logs them after the commit (``StoreResult.notices_logged``), so the run schedules no
    notification activity when nothing would be delivered anywhere else."""

    records: list[LedgerRecord] = Field(default_factory=list)
    row: RegistryRow
    notices: list[Notification] = Field(default_factory=list)


class StoreResult(BaseModel):
    written: int = 0  # ledger entries newly written
    notices_logged: bool = False  # the batch's notices are done (the worker only logs them)


class NotifyProgress(BaseModel):
    """What one notice achieved so far, across its activity's attempts: the notify activity
    heartbeats it after every post and reads it back on a retry (so nothing is posted twice),
    and a failed notice carries it (heartbeat details of a timeout, details of its error), so
    the run knows every card it has to close."""

    # "<adapter>:<target>" (a channel or a person's Slack id) -> the message posted there
    posted: dict[str, MessageRef] = Field(default_factory=dict)
    # adapters that have delivered the notice in full (a webhook that answered)
    delivered: list[str] = Field(default_factory=list)

    def refs(self) -> list[MessageRef]:
        return list(self.posted.values())


# --------------------------------------------------------------------------- deploy/rollback hooks

HOOK_CALL = "hooks.call"


class HookFailure(StrEnum):
    """What the ledger may say about a failed hook call (the ``ApplicationError`` type the
    worker raises): an outcome class, never a host, port or network error text."""

    REFUSED = "hook_refused"
    UNREACHABLE = "hook_unreachable"
    TIMEOUT = "hook_timeout"
    HTTP_ERROR = "hook_http_error"
    FAILED = "hook_failed"  # anything else


class HookRequest(BaseModel):
    """One outbound webhook call. ``idempotency_key`` is stable across retries, so the receiver
    can recognise a repeated delivery."""

    workflow_id: str
    use_case_key: str
    hook: HookKind
    url: str
    idempotency_key: str
    payload: dict[str, Any] = Field(default_factory=dict)


class HookResult(BaseModel):
    status_code: int
    ok: bool


# --------------------------------------------------------------------------- run-to-run facts

CHANGE_OUTCOME = "runs.change_outcome"


class ChangeCheck(BaseModel):
    """Ask Temporal, not the signal, how a change request's run ended."""

    parent_id: str
    workflow_id: str
    change_id: str


class ChangeCheckResult(BaseModel):
    """How the change's own run ended (None: it has not, or it is not this use case's)."""

    outcome: ChangeStatus | None = None
    reason: str = ""
