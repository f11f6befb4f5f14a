"""Request and response bodies of the HTTP API (the actor always comes from the token)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.controls.coverage import ControlGapItem
from workflows import limits
from workflows.model import (
    Bundle,
    ChangeSummary,
    Decision,
    DeputiesIn,
    Evidence,
    EvidenceRecord,
    Incident,
    Materiality,
    Severity,
    Sha256,
    UseCaseView,
    deputy_roles_checked,
)


class CompleteStageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    evidence: list[Evidence] = Field(default_factory=list, max_length=100)
    comment: str = Field(default="", max_length=limits.TEXT_MAX)


class EvidenceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    evidence: list[Evidence] = Field(min_length=1, max_length=100)
    comment: str = Field(default="", max_length=limits.TEXT_MAX)


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Decision
    comment: str = Field(default="", max_length=limits.TEXT_MAX)
    evidence_digests: list[Sha256] | None = Field(default=None, max_length=200)


class OverrideBody(BaseModel):
    """Body of a break-glass override: why the gate cannot wait (recorded, shown to the
    business owner and the risk approvers)."""

    model_config = ConfigDict(extra="forbid")
    justification: str = Field(min_length=1, max_length=limits.TEXT_MAX)


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=limits.TEXT_MAX)


class UseCaseSummary(BaseModel):
    id: str
    key: str
    title: str
    risk_tier: str
    stage: str
    closed: bool
    business_owner: str
    gate: str | None = None
    pending_approvers: list[str] = Field(default_factory=list)
    due_at: datetime | None = None
    round: int = 1
    updated_at: datetime


class UseCasePage(BaseModel):
    items: list[UseCaseSummary]
    next_cursor: str | None = None


class PendingApproval(BaseModel):
    id: str
    key: str
    title: str
    risk_tier: str
    gate: str
    quorum: int | None = None
    approvals: list[str] = Field(default_factory=list)
    due_at: datetime | None = None
    round: int = 1
    url: str
    # what waits: the open gate (``gate``), a break-glass override's retrospective review
    # (``override_review``) or a pending exception (``waiver``, with its id)
    kind: str = "gate"
    waiver_id: str | None = None
    # where the decision is sent
    decide_url: str | None = None


class PendingPage(BaseModel):
    items: list[PendingApproval]
    # live use cases of the caller (business owner or risk approver) with open control gaps: a
    # distinct kind of item (``kind: control_gap``), gone once the missing facts land
    control_gaps: list[ControlGapItem] = Field(default_factory=list)


class IncidentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    severity: Severity
    summary: str = Field(min_length=1, max_length=limits.TEXT_MAX)


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=limits.TEXT_MAX)


class DeputiesBody(BaseModel):
    """Body of ``PUT /v1/use-cases/{id}/deputies``: the roles named here get these deputies
    (an empty list removes a role's deputies); roles not named keep theirs."""

    model_config = ConfigDict(extra="forbid")
    deputies: DeputiesIn
    comment: str = Field(default="", max_length=limits.TEXT_MAX)

    @field_validator("deputies")
    @classmethod
    def _roles(cls, v: DeputiesIn) -> DeputiesIn:
        return deputy_roles_checked(v)


class OptionalReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=limits.TEXT_MAX)


class ChangeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    summary: str = Field(min_length=1, max_length=limits.TEXT_MAX)
    materiality: Materiality
    evidence: list[Evidence] = Field(default_factory=list, max_length=100)
    # the bundle the change makes live (a bundle change is a change request)
    bundle: Bundle | None = None


class ChangeState(UseCaseView):
    """A change request's own state, as ``POST …/changes`` answers it, with the change's id."""

    change_id: str | None = None


# --------------------------------------------------------------------------- list pages
# The lists that grow with a run's life, from the ledger (the state carries the latest few).
# ``next_cursor`` is null on the last page; pass it as ``cursor`` for the next one.


class IncidentPage(BaseModel):
    items: list[Incident]
    next_cursor: str | None = None


class EvidencePage(BaseModel):
    items: list[EvidenceRecord]
    next_cursor: str | None = None


class ChangePage(BaseModel):
    items: list[ChangeSummary]
    next_cursor: str | None = None
