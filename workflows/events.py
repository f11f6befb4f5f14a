"""Typed payloads of the facts a run records, one model per ``EventKind``.

The workflow writes a fact's payload as ``EventBody`` fields (where the run stood) plus the
kind's own fields below; the ledger stores the flat JSON object. Readers — flow metrics, the
evidence pack, Slack, metrics — parse it back with ``parse_payload(kind, payload)`` instead of
picking strings out of a dict. Unknown extra keys are kept (older runs may have written more).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workflows.model import (
    ChangeStatus,
    Decision,
    EventKind,
    Evidence,
    Gate,
    HookKind,
    Materiality,
    Refusal,
    RiskTier,
    RunOutcome,
    Severity,
    Stage,
    TriggerAction,
    WaiverRequirement,
)

_Parsed = TypeVar("_Parsed", bound=BaseModel)
_Kind = TypeVar("_Kind", bound="Extras")


class EventBody(BaseModel):
    """Fields every fact carries: the stage and round it happened at, and what it concerns."""

    model_config = ConfigDict(extra="allow")
    stage: Stage
    round: int = 1
    gate: Gate | None = None
    decision: Decision | None = None
    comment: str = ""
    evidence: list[Evidence] = Field(default_factory=list)


class Extras(BaseModel):
    """A kind's own fields, written beside the ``EventBody`` fields."""

    model_config = ConfigDict(extra="allow")


class PolicyPin(BaseModel):
    version: str
    sha256: str


class RunStarted(Extras):
    title: str = ""
    risk_tier: RiskTier | None = None
    owners: dict[str, Any] = Field(default_factory=dict)
    roster: dict[str, list[str]] = Field(default_factory=dict)
    policy: PolicyPin | None = None
    path: list[Stage] = Field(default_factory=list)
    change: dict[str, Any] | None = None
    deputies: dict[str, list[dict[str, Any]]] | None = None
    # the control catalog pinned at start, and the EU AI Act marker (runs since the catalog)
    controls: PolicyPin | None = None
    eu_ai_act: dict[str, Any] | None = None


class DeputiesChanged(Extras):
    deputies: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)


class ApprovalsVoided(Extras):
    voided: list[str] = Field(default_factory=list)


class DecisionMade(Extras):
    evidence_digests: list[str] = Field(default_factory=list)
    quorum: int = 0
    # a grantor's decision on a governed exception (no gate): the exception's id
    waiver: str | None = None


class GatePassed(Extras):
    approvers: list[str] = Field(default_factory=list)


class ReminderSent(Extras):
    hours_before_sla: list[float] = Field(default_factory=list)
    to: list[str] = Field(default_factory=list)


class GateEscalated(Extras):
    to: str = ""
    pending: list[str] = Field(default_factory=list)


class IncidentReported(Extras):
    incident: str = ""
    severity: Severity | None = None


class IncidentResolved(Extras):
    """``incident_resolved``: an alert's open incident, and the alert that resolved it."""

    incident: str = ""
    fingerprint: str = ""


class RuntimeReported(Extras):
    """``runtime_reported``: the bundle running against the approved one, and the names of
    the artifacts that differ (none when it matches)."""

    bundle_digest: str = ""
    approved_digest: str = ""
    matches: bool = False
    changed: list[str] = Field(default_factory=list)


class TriggerFired(Extras):
    """``trigger_fired``: a trigger rule fired on an incident (``action`` is the rule's, with
    the rule's count and window, and a material change's ``deadline``), or its deadline passed
    without a material change (``action`` ``suspend``, with the ``reason``)."""

    trigger: str = ""
    # the rule's action, or ``suspend``: its deadline passed without a material change
    action: TriggerAction | Literal["suspend"] | None = None
    incident: str | None = None
    count: int | None = None
    within_days: int | float | None = None  # as the rule holds it (JSON keeps 30 vs 30.0)
    deadline: str | None = None  # ISO 8601, as the run wrote it
    reason: str | None = None


class TriggerSatisfied(Extras):
    """``trigger_satisfied``: a material change was applied before the trigger's deadline."""

    trigger: str = ""


class ChangeRaised(Extras):
    change: str = ""
    materiality: Materiality | None = None


class ChangeClosed(Extras):
    """``change_applied``, ``change_awaiting_resume``, ``change_rejected``, ``change_cancelled``."""

    change: str = ""
    live_version: int | None = None
    reason: str | None = None


class RunClosed(Extras):
    outcome: RunOutcome | None = None


class HookOutcome(Extras):
    """``hook_called`` (status code) and ``hook_failed`` (error)."""

    hook: HookKind | None = None
    url: str = ""
    status_code: int | None = None
    ok: bool | None = None
    error: str | None = None


class Refused(Extras):
    command: str = ""
    refusal: Refusal | None = None
    detail: str = ""


class Overridden(Extras):
    """``override``: a stalled gate passed by break-glass (the justification is the comment)."""

    round: int | None = None
    waited_on: list[str] = Field(default_factory=list)
    approvers: list[str] = Field(default_factory=list)
    evidence_digests: list[str] = Field(default_factory=list)
    review_due_at: str | None = None
    reviewers: list[str] = Field(default_factory=list)


class OverrideNotUpheld(Extras):
    """``override_not_upheld``: its review rejected it or did not pass in time."""

    overridden_gate: Gate | None = None
    reason: str = ""
    consequence: str = ""


class WaiverFact(Extras):
    """What every governed-exception fact names: the exception and the requirement it waives."""

    waiver: str = ""
    requirement: WaiverRequirement | None = None
    expires_at: str | None = None


class WaiverRequested(WaiverFact):
    """``waiver_requested`` (the justification is the comment): who may grant it."""

    grantors: list[str] = Field(default_factory=list)
    quorum: int | None = None


class WaiverGranted(WaiverFact):
    """``waiver_granted``: the grantors whose seats granted it; a periodic review it moved."""

    grantors: list[str] = Field(default_factory=list)
    next_review_at: str | None = None
    deferred_review_from: str | None = None


class WaiverRefused(WaiverFact):
    """``waiver_refused`` (the refusal's reason is the comment)."""


class WaiverExpired(WaiverFact):
    """``waiver_expired``: whether it had been granted, and what follows (the requirement
    applies again; a live use case's periodic review opens)."""

    was_granted: bool | None = None
    consequence: str = ""


EXTRAS: dict[EventKind, type[Extras]] = {
    EventKind.WAIVER_REQUESTED: WaiverRequested,
    EventKind.WAIVER_GRANTED: WaiverGranted,
    EventKind.WAIVER_REFUSED: WaiverRefused,
    EventKind.WAIVER_EXPIRED: WaiverExpired,
    EventKind.OVERRIDE: Overridden,
    EventKind.OVERRIDE_NOT_UPHELD: OverrideNotUpheld,
    EventKind.RUN_STARTED: RunStarted,
    EventKind.APPROVALS_VOIDED: ApprovalsVoided,
    EventKind.DECISION: DecisionMade,
    EventKind.GATE_PASSED: GatePassed,
    EventKind.REMINDER_SENT: ReminderSent,
    EventKind.GATE_ESCALATED: GateEscalated,
    EventKind.INCIDENT_REPORTED: IncidentReported,
    EventKind.INCIDENT_RESOLVED: IncidentResolved,
    EventKind.RUNTIME_REPORTED: RuntimeReported,
    EventKind.TRIGGER_FIRED: TriggerFired,
    EventKind.TRIGGER_SATISFIED: TriggerSatisfied,
    EventKind.CHANGE_RAISED: ChangeRaised,
    EventKind.CHANGE_AWAITING_RESUME: ChangeClosed,
    EventKind.CHANGE_APPLIED: ChangeClosed,
    EventKind.CHANGE_REJECTED: ChangeClosed,
    EventKind.CHANGE_CANCELLED: ChangeClosed,
    EventKind.RUN_CLOSED: RunClosed,
    EventKind.HOOK_CALLED: HookOutcome,
    EventKind.HOOK_FAILED: HookOutcome,
    EventKind.REFUSED: Refused,
    EventKind.DEPUTIES_CHANGED: DeputiesChanged,
}

CHANGE_CLOSED_KIND: dict[ChangeStatus, EventKind] = {
    ChangeStatus.APPLIED: EventKind.CHANGE_APPLIED,
    ChangeStatus.REJECTED: EventKind.CHANGE_REJECTED,
    ChangeStatus.CANCELLED: EventKind.CHANGE_CANCELLED,
}


def extras_model(kind: EventKind | str) -> type[Extras]:
    try:
        return EXTRAS.get(EventKind(kind), Extras)
    except ValueError:
        return Extras


def parse_payload(
    kind: EventKind | str, payload: Mapping[str, Any] | object
) -> tuple[EventBody, Extras]:
    """A stored payload as (where the run stood, the kind's own fields).

    Tolerant by design: the ledger holds what older versions wrote (and what someone with
    database access may have edited), so a field that does not parse is left out and reads as
    its default, and a payload that is not a JSON object reads as an empty one. Whether a
    field was really recorded is ``name in model.model_fields_set``: a defaulted field
    (``stage`` included) is never in it.
    """
    stored: Mapping[str, Any] = payload if isinstance(payload, Mapping) else {}
    fields = {k: v for k, v in stored.items() if k in EventBody.model_fields}
    own = {k: v for k, v in stored.items() if k not in EventBody.model_fields}
    body = _lenient(EventBody, fields, defaults={"stage": Stage.SCOPING})
    return body, _lenient(extras_model(kind), own)


def extras_as(model: type[_Kind], extras: Extras) -> _Kind:
    """``extras`` as the model its kind maps to (what ``parse_payload`` returns for that kind),
    or that model's defaults when the payload was parsed under another kind."""
    return extras if isinstance(extras, model) else model()


def _lenient(
    model: type[_Parsed], fields: dict[str, Any], defaults: Mapping[str, Any] | None = None
) -> _Parsed:
    """``model`` from ``fields`` minus those that do not parse; ``defaults`` fill required
    fields that are absent and stay out of ``model_fields_set``."""
    defaults = defaults or {}
    try:
        parsed = model.model_validate({**defaults, **fields})
    except ValidationError as exc:
        bad = {err["loc"][0] for err in exc.errors() if err["loc"]}
        fields = {k: v for k, v in fields.items() if k not in bad}
        parsed = model.model_validate({**defaults, **fields})
    for name in defaults.keys() - fields.keys():
        parsed.model_fields_set.discard(name)  # the live set: a default is not a recorded value
    return parsed


def payload_of(body: EventBody, extras: Extras | None = None) -> dict[str, Any]:
    """The flat JSON object the ledger stores: body fields then the kind's own fields."""
    out: dict[str, Any] = {"stage": body.stage.value, "round": body.round}
    if body.gate is not None:
        out["gate"] = body.gate.value
    if body.decision is not None:
        out["decision"] = body.decision.value
    if body.comment:
        out["comment"] = body.comment
    if body.evidence:
        out["evidence"] = [e.model_dump(mode="json") for e in body.evidence]
    if extras is not None:
        out.update(extras.model_dump(mode="json", exclude_none=True))
    return out


__all__ = [
    "CHANGE_CLOSED_KIND",
    "EXTRAS",
    "EventBody",
    "Extras",
    "IncidentResolved",
    "RuntimeReported",
    "TriggerFired",
    "TriggerSatisfied",
    "WaiverExpired",
    "WaiverFact",
    "WaiverGranted",
    "WaiverRefused",
    "WaiverRequested",
    "extras_as",
    "extras_model",
    "parse_payload",
    "payload_of",
]
