"""Payload models shared by the workflow, the API, Slack and the worker.

Everything that crosses a Temporal boundary (workflow input, update/signal arguments, query
results, activity inputs) is one of these pydantic models, serialised by
``temporalio.contrib.pydantic.pydantic_data_converter``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    field_validator,
    model_serializer,
    model_validator,
)

from workflows import ids
from workflows.credentials import Credential

PersonId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")
]
EvidenceKind = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")]
# a slug that can never alias another run's id (no `usecase-` prefix, no `-change-N` suffix)
UseCaseKey = Annotated[
    str,
    StringConstraints(pattern=ids.USE_CASE_KEY_PATTERN),
    AfterValidator(ids.check_use_case_key),
]


class RiskTier(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Severity(StrEnum):
    SEV1 = "sev1"
    SEV2 = "sev2"
    SEV3 = "sev3"
    SEV4 = "sev4"


class Stage(StrEnum):
    SCOPING = "scoping"
    SCOPE_APPROVAL = "scope_approval"
    SPECIFICATION = "specification"
    IMPLEMENTATION = "implementation"
    VALIDATION = "validation"
    RISK_SIGNOFF = "risk_signoff"
    OPS_HANDOFF = "ops_handoff"
    GO_LIVE = "go_live"
    CHANGE_APPROVAL = "change_approval"  # a minor change request's only gate
    LIVE = "live"
    STALLED = "stalled"
    SUSPENDED = "suspended"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    RETIRED = "retired"
    # a change request that passed while its use case is suspended: held until resume (shown
    # on the change's own state; its run has ended, its use case applies it on resume)
    AWAITING_RESUME = "awaiting_resume"


WORK_STAGES: tuple[Stage, ...] = (
    Stage.SCOPING,
    Stage.SPECIFICATION,
    Stage.IMPLEMENTATION,
    Stage.VALIDATION,
)
TERMINAL_STAGES: tuple[Stage, ...] = (Stage.REJECTED, Stage.CANCELLED, Stage.RETIRED)


class Gate(StrEnum):
    SCOPE_APPROVAL = "scope_approval"
    RISK_SIGNOFF = "risk_signoff"
    OPS_HANDOFF = "ops_handoff"
    GO_LIVE = "go_live"
    CHANGE_APPROVAL = "change_approval"
    RESUME_APPROVAL = "resume_approval"
    PERIODIC_REVIEW = "periodic_review"
    # the retrospective review a break-glass override opens beside the run's path
    OVERRIDE_REVIEW = "override_review"


RELEASE_GATES: tuple[Gate, ...] = (
    Gate.SCOPE_APPROVAL,
    Gate.RISK_SIGNOFF,
    Gate.OPS_HANDOFF,
    Gate.GO_LIVE,
)
# Gates a policy may list under ``live.gates`` (they concern a live use case or its changes).
LIVE_POLICY_GATES: tuple[Gate, ...] = (
    Gate.CHANGE_APPROVAL,
    Gate.RESUME_APPROVAL,
    Gate.PERIODIC_REVIEW,
)
# Gates a break-glass override may pass: the gates of a run's path (never a resume or a review).
OVERRIDABLE_GATES: tuple[Gate, ...] = (*RELEASE_GATES, Gate.CHANGE_APPROVAL)
# Gates that open beside a live or suspended use case without moving its stage.
GATES_BESIDE_STAGE: tuple[Gate, ...] = (Gate.RESUME_APPROVAL, Gate.PERIODIC_REVIEW)
# Stages that are gates: the stage a run is at while that gate is open.
GATE_STAGES: frozenset[Stage] = frozenset(Stage(g.value) for g in Gate if g.value in set(Stage))


class Decision(StrEnum):
    APPROVE = "approve"
    REQUEST_CHANGES = "request_changes"
    REJECT = "reject"


class Role(StrEnum):
    DELIVERY_LEAD = "delivery_lead"
    BUSINESS_OWNER = "business_owner"
    TECHNICAL_OWNER = "technical_owner"
    OPERATIONS_OWNER = "operations_owner"
    RISK_APPROVER = "risk_approver"
    ESCALATION_OWNER = "escalation_owner"
    STOP_AUTHORITY = "stop_authority"
    # the policy's break-glass group, pinned at start: may override a stalled gate
    BREAK_GLASS = "break_glass"


class Channel(StrEnum):
    API = "api"
    SLACK = "slack"
    WEB = "web"  # the approver console (services/api/ui)
    SIGNAL = "signal"
    SYSTEM = "system"
    # a monitoring source (Alertmanager, a generic signed signal, a runtime report)
    MONITORING = "monitoring"


class EventKind(StrEnum):
    """Every kind of fact the workflow records: its history, the ledger's ``kind`` column."""

    RUN_STARTED = "run_started"
    STAGE_ENTERED = "stage_entered"
    STAGE_COMPLETED = "stage_completed"
    EVIDENCE_ADDED = "evidence_added"
    APPROVALS_VOIDED = "approvals_voided"
    DECISION = "decision"
    GATE_OPENED = "gate_opened"
    GATE_PASSED = "gate_passed"
    GATE_REOPENED = "gate_reopened"
    GATE_ESCALATED = "gate_escalated"
    GATE_EXPIRED = "gate_expired"
    REMINDER_SENT = "reminder_sent"
    CANCELLED = "cancelled"
    INCIDENT_REPORTED = "incident_reported"
    SUSPENDED = "suspended"
    RESUME_REQUESTED = "resume_requested"
    RESUMED = "resumed"
    CHANGE_RAISED = "change_raised"
    CHANGE_AWAITING_RESUME = "change_awaiting_resume"
    CHANGE_APPLIED = "change_applied"
    CHANGE_REJECTED = "change_rejected"
    CHANGE_CANCELLED = "change_cancelled"
    RETIRED = "retired"
    RUN_CLOSED = "run_closed"
    HOOK_CALLED = "hook_called"
    HOOK_FAILED = "hook_failed"
    REFUSED = "refused"
    DEPUTIES_CHANGED = "deputies_changed"
    # break-glass: a stalled gate passed by the emergency group, never an approval
    OVERRIDE = "override"
    # the override's retrospective review did not uphold it (rejected or not passed in time)
    OVERRIDE_NOT_UPHELD = "override_not_upheld"
    # monitoring: an alert's incident resolved; the bundle a live use case reports running
    INCIDENT_RESOLVED = "incident_resolved"
    RUNTIME_REPORTED = "runtime_reported"
    # a policy trigger rule fired (workflows/triggers.py)
    TRIGGER_FIRED = "trigger_fired"
    # a trigger's deadline met (a material change applied in time)
    TRIGGER_SATISFIED = "trigger_satisfied"
    # governed exceptions (workflows/waivers.py): asked for, granted by its seats, refused,
    # and ended at its expiry (the requirement applies again)
    WAIVER_REQUESTED = "waiver_requested"
    WAIVER_GRANTED = "waiver_granted"
    WAIVER_REFUSED = "waiver_refused"
    WAIVER_EXPIRED = "waiver_expired"


class GateOutcome(StrEnum):
    """How a gate visit ended."""

    PASSED = "passed"
    CHANGES_REQUESTED = "changes_requested"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"  # the run was cancelled, suspended or retired while it was open
    OVERRIDDEN = "overridden"  # passed by a break-glass override, never by its seats


class ChangeStatus(StrEnum):
    OPEN = "open"
    # passed while its use case was suspended: applied (and deployed) once resume is approved
    AWAITING_RESUME = "awaiting_resume"
    APPLIED = "applied"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class RunOutcome(StrEnum):
    """Why a run closed (``outcome`` of a closed run)."""

    REJECTED = "rejected"
    CANCELLED = "cancelled"
    RETIRED = "retired"
    APPLIED = "applied"  # a change request's run that passed: its parent runs the change


class HookKind(StrEnum):
    DEPLOY = "deploy"
    ROLLBACK = "rollback"


class CommandName(StrEnum):
    """The commands that change a run (the workflow's update names)."""

    COMPLETE_STAGE = "complete_stage"
    ADD_EVIDENCE = "add_evidence"
    DECIDE = "decide"
    REOPEN_GATE = "reopen_gate"
    CANCEL = "cancel"
    REPORT_INCIDENT = "report_incident"
    SUSPEND = "suspend"
    RESUME = "resume"
    RAISE_CHANGE = "raise_change"
    RETIRE = "retire"
    SET_DEPUTIES = "set_deputies"
    OVERRIDE_GATE = "override_gate"
    # monitoring signals: an alert's resolution, the bundle that is running
    RESOLVE_INCIDENT = "resolve_incident"
    REPORT_RUNTIME = "report_runtime"
    # governed exceptions: ask for one, and a grantor's grant or refusal
    REQUEST_WAIVER = "request_waiver"
    DECIDE_WAIVER = "decide_waiver"


class RunSignal(StrEnum):
    """Signals one run sends another (never a person's command): a change request's run
    reports how it ended; runs before authenticated commands seeded a change's evidence."""

    CHANGE_FINISHED = "change_finished"
    SEED_EVIDENCE = "seed_evidence"


class Refusal(StrEnum):
    """Why the workflow refused a command. The API maps each to an HTTP status."""

    NOT_ELIGIBLE = "not_eligible"  # 403
    WRONG_STAGE = "wrong_stage"  # 409
    GATE_NOT_OPEN = "gate_not_open"  # 409
    RUN_CLOSED = "run_closed"  # 409
    ALREADY_DECIDED = "already_decided"  # 409
    EVIDENCE_MISSING = "evidence_missing"  # 409
    EVIDENCE_CHANGED = "evidence_changed"  # 409
    INVALID = "invalid"  # 422
    UNAUTHENTICATED = "unauthenticated"  # no credential the run can verify
    OVER_LIMIT = "over_limit"  # 422: beyond a per-run cap of the policy's ``limits``
    RATE_LIMITED = "rate_limited"  # 429 with Retry-After: too many in the policy's window


# --------------------------------------------------------------------------- policy payloads


class Requirement(BaseModel):
    """``count`` distinct people holding ``role`` must approve."""

    model_config = ConfigDict(extra="forbid")
    role: Role
    count: int = Field(default=1, ge=1, le=10)


class GateRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gate: Gate
    deciders: list[Requirement] = Field(min_length=1)
    sla_hours: float = Field(gt=0)
    remind_before_hours: list[float] = Field(default_factory=list)
    expire_after_hours: float | None = Field(default=None, gt=0)
    evidence: list[EvidenceKind] = Field(default_factory=list)
    rework_stage: Stage = Stage.IMPLEMENTATION
    # whoever asked (the delivery lead, the raiser of a change, the asker of a resume) never
    # fills a seat of this gate unless the policy says so here, explicitly
    allow_requester: bool = False

    @property
    def quorum(self) -> int:
        return sum(r.count for r in self.deciders)

    @field_validator("rework_stage")
    @classmethod
    def _rework_is_work_stage(cls, v: Stage) -> Stage:
        if v not in WORK_STAGES:
            raise ValueError(f"rework_stage must be one of {[s.value for s in WORK_STAGES]}")
        return v


class TierRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gates: list[GateRule] = Field(min_length=1)
    evidence: dict[Stage, list[EvidenceKind]] = Field(default_factory=dict)
    review_period_days: int = Field(gt=0)
    # owner roles that must be held by different people (separation of duties)
    distinct_roles: list[Role] = Field(default_factory=list)


class Hooks(BaseModel):
    """Outbound webhooks called with an HMAC-signed body (deploy at go-live and on an applied
    change; rollback on stop-ship)."""

    model_config = ConfigDict(extra="forbid")
    deploy_url: str | None = Field(default=None, max_length=2000, pattern=r"^https?://")
    rollback_url: str | None = Field(default=None, max_length=2000, pattern=r"^https?://")


# a monitoring source's name (RELEASEGATE_SIGNAL_TOKENS), and its identity in a run: "signal:<name>"
SourceName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
SIGNAL_ACTOR_PREFIX = "signal:"
# the name of one artifact of a bundle: model, prompt, config, code, …
ArtifactName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")]


def _default_alert_severities() -> dict[str, Severity]:
    return {
        "critical": Severity.SEV1,
        "page": Severity.SEV1,
        "high": Severity.SEV2,
        "error": Severity.SEV2,
        "warning": Severity.SEV3,
        "info": Severity.SEV4,
    }


class AlertSeverityRule(BaseModel):
    """How an alert's labels name its incident's severity (``live.alert_severity``): the value
    of ``label`` looked up in ``values`` (case-insensitive), else ``default``."""

    model_config = ConfigDict(extra="forbid")
    label: str = Field(default="severity", min_length=1, max_length=128)
    values: dict[str, Severity] = Field(default_factory=_default_alert_severities)
    default: Severity = Severity.SEV3


def _default_mismatch_severity() -> dict[RiskTier, Severity]:
    return {
        RiskTier.LOW: Severity.SEV2,
        RiskTier.MEDIUM: Severity.SEV2,
        RiskTier.HIGH: Severity.SEV1,
    }


class BundleRule(BaseModel):
    """What runs is what was approved (``live.bundle``): the artifacts whose change makes a
    change request material, and the severity of the ``unauthorized_change`` incident a
    running bundle other than the approved one opens, per tier."""

    model_config = ConfigDict(extra="forbid")
    material_artifacts: list[ArtifactName] = Field(
        default_factory=lambda: ["model", "prompt", "code"], max_length=50
    )
    mismatch_severity: dict[RiskTier, Severity] = Field(default_factory=_default_mismatch_severity)


class TriggerAction(StrEnum):
    OPEN_REVIEW = "open_review"  # the periodic review gate opens now, not at its date
    # a material change must be applied within ``deadline_days``, else the use case is suspended
    REQUIRE_MATERIAL_CHANGE = "require_material_change"


class TriggerRule(BaseModel):
    """A rule the workflow evaluates on live operation (``live.triggers``): when ``count``
    incidents matching it (severity ``min_severity`` or worse, and/or an alert label) were
    reported within ``within_days``, ``action`` follows."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    min_severity: Severity | None = None
    label: str | None = Field(default=None, min_length=1, max_length=128)
    value: str | None = Field(default=None, max_length=1024)
    count: int = Field(default=1, ge=1, le=100)
    within_days: float = Field(default=30, gt=0, le=3650)
    action: TriggerAction
    deadline_days: float | None = Field(default=None, gt=0, le=3650)

    @model_validator(mode="after")
    def _complete(self) -> TriggerRule:
        if self.min_severity is None and self.label is None:
            raise ValueError(f"trigger {self.name}: name min_severity, label, or both")
        if self.value is not None and self.label is None:
            raise ValueError(f"trigger {self.name}: value needs a label")
        if (self.action == TriggerAction.REQUIRE_MATERIAL_CHANGE) != (
            self.deadline_days is not None
        ):
            raise ValueError(
                f"trigger {self.name}: deadline_days goes with require_material_change (only)"
            )
        return self


# LiveRule fields added after signed starts existed: left out of the dump while unset, so the
# canonical bytes of a start signed before them (``workflows.credentials``) stay the same.
LIVE_FIELDS_OMITTED_WHEN_UNSET: tuple[str, ...] = (
    "alert_severity",
    "signal_sources",
    "bundle",
    "triggers",
)


class LiveRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sev1_suspends: bool = True
    gates: list[GateRule] = Field(default_factory=list)
    hooks: Hooks = Field(default_factory=Hooks)
    # monitoring signals: label → severity; which sources a run takes signals from (None: any
    # source the API authenticates); bundle rules; trigger rules (None: the defaults)
    alert_severity: AlertSeverityRule | None = None
    signal_sources: list[SourceName] | None = Field(default=None, max_length=50)
    bundle: BundleRule | None = None
    triggers: list[TriggerRule] | None = Field(default=None, max_length=50)

    @property
    def alert_severity_rule(self) -> AlertSeverityRule:
        return self.alert_severity if self.alert_severity is not None else AlertSeverityRule()

    @property
    def bundle_rule(self) -> BundleRule:
        return self.bundle if self.bundle is not None else BundleRule()

    @model_serializer(mode="wrap")
    def _omit_unset_additions(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name in LIVE_FIELDS_OMITTED_WHEN_UNSET:
                if name in data and data[name] is None:
                    del data[name]
        return data


class RunLimits(BaseModel):
    """Per-run caps the policy states (``limits:``), so a run's size and its history stay
    bounded whatever channel sends the commands. Runs pinned before the section existed get
    these defaults."""

    model_config = ConfigDict(extra="forbid")
    # evidence items one run holds, all stages and gates together (a change request's run
    # counts its own)
    max_evidence_items: int = Field(default=200, ge=1, le=10_000)
    # incidents one person may report on one use case within the window
    max_incidents_per_reporter: int = Field(default=20, ge=1, le=10_000)
    incident_window_seconds: int = Field(default=60, ge=1, le=86_400)


class BreakGlassRule(BaseModel):
    """Break-glass (``break_glass:``): who may override a stalled gate, and the retrospective
    review every override opens, which must pass within the window."""

    model_config = ConfigDict(extra="forbid")
    # a directory group, pinned into each run at start
    group: str = Field(min_length=1, max_length=64)
    review_within_hours: float = Field(default=72, gt=0, le=24 * 90)
    review: list[Requirement] = Field(
        default_factory=lambda: [
            Requirement(role=Role.RISK_APPROVER, count=1),
            Requirement(role=Role.BUSINESS_OWNER),
        ],
        min_length=1,
    )
    justification_min_chars: int = Field(default=20, ge=1, le=2000)


class WaiverRule(BaseModel):
    """Governed exceptions of one tier (``waivers:``): the longest an exception may run, and
    who grants it (distinct people filling these seats; whoever asked for the exception or for
    the run never does)."""

    model_config = ConfigDict(extra="forbid")
    max_days: int = Field(ge=1, le=3650)
    grantors: list[Requirement] = Field(min_length=1)
    justification_min_chars: int = Field(default=20, ge=1, le=2000)

    @property
    def quorum(self) -> int:
        return sum(r.count for r in self.grantors)


class PinnedPolicy(BaseModel):
    """The slice of the policy a run is bound to, pinned into its input at start."""

    version: str
    sha256: str
    tier: RiskTier
    rules: TierRule
    live: LiveRule = Field(default_factory=LiveRule)
    # the policy's ``limits:`` (None: pinned before the section existed; the defaults apply)
    limits: RunLimits | None = None
    break_glass: BreakGlassRule | None = None
    # the tier's governed exceptions (None: pinned before they existed, or the policy grants none)
    waivers: WaiverRule | None = None

    @property
    def run_limits(self) -> RunLimits:
        return self.limits if self.limits is not None else RunLimits()

    @model_serializer(mode="wrap")
    def _omit_unset_additions(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Fields added after signed starts existed are left out while unset, so the canonical
        # bytes of a start signed before them (``workflows.credentials``) stay the same.
        data = handler(self)
        if isinstance(data, dict):
            for name in PINNED_FIELDS_OMITTED_WHEN_UNSET:
                if name in data and data[name] is None:
                    del data[name]
        return data


PINNED_FIELDS_OMITTED_WHEN_UNSET: tuple[str, ...] = ("limits", "break_glass", "waivers")


# --------------------------------------------------------------------------- use case payloads


class Evidence(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: EvidenceKind
    name: str = Field(min_length=1, max_length=200)
    uri: str = Field(min_length=1, max_length=2000)
    sha256: Sha256

    @field_validator("sha256")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.lower()

    @field_validator("uri")
    @classmethod
    def _uri_has_scheme(cls, v: str) -> str:
        scheme, sep, rest = v.partition(":")
        if not sep or not rest or not scheme.isascii() or not scheme[:1].isalpha():
            raise ValueError("uri must be absolute, e.g. https://… or s3://…")
        if any(c.isspace() for c in v):
            raise ValueError("uri must not contain whitespace")
        return v


class BundleArtifact(BaseModel):
    """One artifact that makes a use case's behaviour: ``model`` (id and version),
    ``prompt``, ``config``, ``code`` (commit), … by name, and the sha256 of its content."""

    model_config = ConfigDict(extra="forbid")
    name: ArtifactName
    sha256: Sha256

    @field_validator("sha256")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.lower()


MAX_BUNDLE_ARTIFACTS = 50


def bundle_checked(bundle: list[BundleArtifact] | None) -> list[BundleArtifact] | None:
    """A bundle names each artifact once, and at most ``MAX_BUNDLE_ARTIFACTS`` of them."""
    if bundle is None:
        return None
    if not bundle or len(bundle) > MAX_BUNDLE_ARTIFACTS:
        raise ValueError(f"a bundle names 1 to {MAX_BUNDLE_ARTIFACTS} artifacts")
    names = [a.name for a in bundle]
    if len(set(names)) != len(names):
        raise ValueError("a bundle names each artifact once")
    return sorted(bundle, key=lambda a: a.name)


Bundle = Annotated[list[BundleArtifact], AfterValidator(bundle_checked)]


class EvidenceRecord(Evidence):
    """Evidence as the run holds it: what, for which stage or gate, by whom, when."""

    model_config = ConfigDict(extra="ignore")
    scope: str
    round: int
    submitted_by: str
    at: datetime


# Owner roles whose seats a deputy may fill.
DEPUTY_ROLES: tuple[Role, ...] = (
    Role.BUSINESS_OWNER,
    Role.TECHNICAL_OWNER,
    Role.OPERATIONS_OWNER,
)


class DeputyIn(BaseModel):
    """A deputy as named in a request: a person id or ``group:NAME``, optionally until a time.
    A bare string is accepted for ``{"who": ...}``."""

    model_config = ConfigDict(extra="forbid")
    who: str = Field(min_length=1, max_length=70)
    until: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, v: Any) -> Any:
        return {"who": v} if isinstance(v, str) else v


class Deputy(BaseModel):
    """A deputy as a run holds it: one person (groups resolved at naming), optionally until."""

    person: str
    until: datetime | None = None


DeputiesIn = dict[Role, list[DeputyIn]]
Deputies = dict[Role, list[Deputy]]
MAX_DEPUTIES_PER_ROLE = 20


def deputy_roles_checked(deputies: DeputiesIn) -> DeputiesIn:
    """Deputies only for owner roles that fill seats, and a bounded number of them."""
    for role, entries in deputies.items():
        if role not in DEPUTY_ROLES:
            raise ValueError(
                f"{role.value} takes no deputies (only {[r.value for r in DEPUTY_ROLES]})"
            )
        if len(entries) > MAX_DEPUTIES_PER_ROLE:
            raise ValueError(f"{role.value}: at most {MAX_DEPUTIES_PER_ROLE} deputies")
    return deputies


class OwnersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    business_owner: PersonId
    technical_owner: PersonId
    operations_owner: PersonId
    risk_approvers: list[str] = Field(min_length=1, max_length=50)
    escalation_owner: PersonId
    stop_authority: list[PersonId] | None = None
    deputies: DeputiesIn | None = None

    @field_validator("deputies")
    @classmethod
    def _deputy_roles(cls, v: DeputiesIn | None) -> DeputiesIn | None:
        return None if v is None else deputy_roles_checked(v)


class Owners(BaseModel):
    delivery_lead: str
    business_owner: str
    technical_owner: str
    operations_owner: str
    risk_approvers: list[str]
    escalation_owner: str
    stop_authority: list[str]


class EuAiActMarker(BaseModel):
    """Where a use case falls under the EU AI Act's Annex III (high-risk areas), as its
    business declares it at start: points such as ``5b`` (creditworthiness) or ``5c`` (life and
    health insurance pricing)."""

    model_config = ConfigDict(extra="forbid")
    annex_iii: list[Annotated[str, StringConstraints(pattern=r"^[1-8][a-h]?$")]] = Field(
        min_length=1, max_length=16
    )


class UseCaseCreate(BaseModel):
    """Body of ``POST /v1/use-cases``."""

    model_config = ConfigDict(extra="forbid")
    key: UseCaseKey
    title: str = Field(min_length=1, max_length=200)
    summary: str = Field(default="", max_length=4000)
    risk_tier: RiskTier
    owners: OwnersIn
    slack_channel: str | None = Field(default=None, max_length=80)
    hooks: Hooks | None = None
    # EU AI Act marker: the Annex III points the use case falls under (e.g. ["5b"] for credit
    # scoring); the control catalog makes a FRIA applicable only where it is set
    eu_ai_act: EuAiActMarker | None = None
    # what runs: the artifacts the release approves (approvals bind to their digest)
    bundle: Bundle | None = None


class Materiality(StrEnum):
    MINOR = "minor"
    MATERIAL = "material"


class ChangeInfo(BaseModel):
    """Set on a change request's own run (a child of the live use case)."""

    parent_id: str
    change_id: str
    number: int
    summary: str
    materiality: Materiality
    raised_by: str
    # the evidence it was raised with: handed over in the input, never by a signal
    evidence: list[Evidence] = Field(default_factory=list)


class PinnedCatalog(BaseModel):
    """The control catalog (``config/controls.yaml``) a run was started under, pinned like the
    policy: its version and the file's sha256."""

    version: str
    sha256: str


# Input fields added after signed starts existed: left out of the dump while unset, so the
# canonical bytes of a start signed before them (``workflows.credentials``) stay the same.
INPUT_FIELDS_OMITTED_WHEN_UNSET: tuple[str, ...] = ("controls", "eu_ai_act", "bundle", "generation")

# The workflow code generation a run starts on, set by whatever starts it (a front door, the
# run's own continue-as-new, a use case starting a change). It picks the run's code paths from
# its input, which history holds, instead of ``workflow.patched`` markers (each costs two
# history events per run). 1: one-trip shipping and every patch before it in force, deadline
# timers kept across commands (``workflows.release``). None: a run started before
# generations, whose paths are chosen by its patch markers.
GENERATION = 1


class UseCaseInput(BaseModel):
    """Workflow input: the request, resolved against the directory and pinned policy."""

    key: str
    title: str
    summary: str
    risk_tier: RiskTier
    owners: Owners
    # role -> person ids, groups resolved against the directory at start (pinned like the policy)
    roster: dict[Role, list[str]]
    policy: PinnedPolicy
    slack_channel: str | None = None
    request_sha256: str
    hooks: Hooks | None = None
    change: ChangeInfo | None = None
    # deputies per owner role, groups resolved at start; later changes live in the run's state
    deputies: Deputies = Field(default_factory=dict)
    # the front door's signature of this start (see workflows/credentials.py)
    credential: Credential | None = None
    # continue-as-new once a live run's history is this long (Temporal may suggest it earlier)
    continue_as_new_after: int = Field(default=10_000, ge=100)
    # the run's state, carried whole across continue-as-new; None on a fresh start
    state: dict[str, Any] | None = None
    # what runs before ReleaseState carried across continue-as-new (read, never written)
    carry: dict[str, Any] | None = None
    # the control catalog pinned at start, and the use case's EU AI Act marker (None on runs
    # started before either existed)
    controls: PinnedCatalog | None = None
    eu_ai_act: EuAiActMarker | None = None
    # the bundle this run's gates approve (a use case's release, or a change request's new one)
    bundle: Bundle | None = None
    # the workflow code generation this run started on (``GENERATION``; None: before them)
    generation: int | None = Field(default=None, ge=1)

    @model_serializer(mode="wrap")
    def _omit_unset_additions(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name in INPUT_FIELDS_OMITTED_WHEN_UNSET:
                if name in data and data[name] is None:
                    del data[name]
        return data


# --------------------------------------------------------------------------- commands


class CompleteStage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actor: str
    stage: Stage
    evidence: list[Evidence] = Field(default_factory=list, max_length=100)
    comment: str = Field(default="", max_length=4000)
    channel: Channel = Channel.API
    credential: Credential | None = None  # minted by a front door, verified by the run


class AddEvidence(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actor: str
    evidence: list[Evidence] = Field(min_length=1, max_length=100)
    comment: str = Field(default="", max_length=4000)
    channel: Channel = Channel.API
    credential: Credential | None = None  # minted by a front door, verified by the run


class GateDecision(BaseModel):
    """A gate decision; the same payload is accepted as an Update and as a Signal."""

    model_config = ConfigDict(extra="forbid")
    actor: str
    gate: Gate
    decision: Decision
    comment: str = Field(default="", max_length=4000)
    evidence_digests: list[Sha256] | None = None
    channel: Channel = Channel.API
    credential: Credential | None = None  # minted by a front door, verified by the run


class Cancel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actor: str
    reason: str = Field(default="", max_length=4000)
    channel: Channel = Channel.API
    credential: Credential | None = None  # minted by a front door, verified by the run


class OverrideGate(BaseModel):
    """Break-glass: pass a stalled gate now, on the record, with a justification."""

    model_config = ConfigDict(extra="forbid")
    actor: str
    gate: Gate
    justification: str = Field(max_length=4000)
    channel: Channel = Channel.API
    credential: Credential | None = None  # minted by a front door, verified by the run


class ReopenGate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actor: str
    # the expired gate to reopen; None only in commands recorded before it was named
    gate: Gate | None = None
    comment: str = Field(default="", max_length=4000)
    channel: Channel = Channel.API
    credential: Credential | None = None  # minted by a front door, verified by the run


AlertFingerprint = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@/-]+$")
]
MAX_ALERT_LABELS = 64


def labels_checked(labels: dict[str, str] | None) -> dict[str, str] | None:
    """An alert's labels as a run keeps them: bounded in number and size."""
    if labels is None:
        return None
    if len(labels) > MAX_ALERT_LABELS:
        raise ValueError(f"at most {MAX_ALERT_LABELS} labels")
    for name, value in labels.items():
        if not 1 <= len(name) <= 128 or len(value) > 1024:
            raise ValueError(f"label {name[:40]!r}: names 1-128, values up to 1024 characters")
    return labels


Labels = Annotated[dict[str, str], AfterValidator(labels_checked)]


class ReportIncident(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actor: str
    severity: Severity
    summary: str = Field(min_length=1, max_length=4000)
    channel: Channel = Channel.API
    credential: Credential | None = None  # minted by a front door, verified by the run
    # an alert's identity: while its incident is open, the same fingerprint changes nothing
    fingerprint: AlertFingerprint | None = None
    labels: Labels | None = None


class ResolveIncident(BaseModel):
    """A monitoring source says the alert of ``fingerprint`` resolved."""

    model_config = ConfigDict(extra="forbid")
    actor: str
    fingerprint: AlertFingerprint
    channel: Channel = Channel.MONITORING
    credential: Credential | None = None  # minted by a front door, verified by the run


class ReportRuntime(BaseModel):
    """The bundle a live use case is actually running, as its deployment reports it."""

    model_config = ConfigDict(extra="forbid")
    actor: str
    bundle: Bundle
    channel: Channel = Channel.MONITORING
    credential: Credential | None = None  # minted by a front door, verified by the run


class Suspend(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actor: str
    reason: str = Field(min_length=1, max_length=4000)
    channel: Channel = Channel.API
    credential: Credential | None = None  # minted by a front door, verified by the run


class Resume(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actor: str
    reason: str = Field(default="", max_length=4000)
    channel: Channel = Channel.API
    credential: Credential | None = None  # minted by a front door, verified by the run


class RaiseChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actor: str
    summary: str = Field(min_length=1, max_length=4000)
    materiality: Materiality
    evidence: list[Evidence] = Field(default_factory=list, max_length=100)
    channel: Channel = Channel.API
    credential: Credential | None = None  # minted by a front door, verified by the run
    # the bundle the change makes live (None: the bundle stays as approved)
    bundle: Bundle | None = None


class Retire(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actor: str
    reason: str = Field(default="", max_length=4000)
    channel: Channel = Channel.API
    credential: Credential | None = None  # minted by a front door, verified by the run


class SetDeputies(BaseModel):
    """The business owner names the deputies of owner roles (replacing those roles' lists)."""

    model_config = ConfigDict(extra="forbid")
    actor: str
    deputies: Deputies
    comment: str = Field(default="", max_length=4000)
    channel: Channel = Channel.API
    credential: Credential | None = None  # minted by a front door, verified by the run


class WaiverKind(StrEnum):
    """What a governed exception waives."""

    EVIDENCE = "evidence"  # a required evidence kind at a work stage or a gate
    SLA = "sla"  # a gate's SLA: it does not escalate while waived
    PERIODIC_REVIEW = "periodic_review"  # the next periodic review moves to the expiry


class WaiverStatus(StrEnum):
    PENDING = "pending"
    GRANTED = "granted"
    REFUSED = "refused"
    EXPIRED = "expired"


class WaiverVerdict(StrEnum):
    GRANT = "grant"
    REFUSE = "refuse"


WaiverId = Annotated[str, StringConstraints(pattern=r"^w-[1-9][0-9]{0,5}$")]


class WaiverRequirement(BaseModel):
    """The policy requirement an exception is asked for: ``evidence`` names the kind and the
    work stage or gate that needs it; ``sla`` names the gate; ``periodic_review`` nothing."""

    model_config = ConfigDict(extra="forbid")
    kind: WaiverKind
    stage: Stage | None = None
    gate: Gate | None = None
    evidence_kind: EvidenceKind | None = None

    @model_validator(mode="after")
    def _complete(self) -> WaiverRequirement:
        if self.kind == WaiverKind.EVIDENCE:
            if self.evidence_kind is None:
                raise ValueError("an evidence exception names its evidence_kind")
            if (self.stage is None) == (self.gate is None):
                raise ValueError("an evidence exception names a stage or a gate (one of them)")
            if self.stage is not None and self.stage not in WORK_STAGES:
                raise ValueError(
                    f"stage must be a work stage ({', '.join(s.value for s in WORK_STAGES)}); "
                    "name a gate with gate"
                )
        elif self.kind == WaiverKind.SLA:
            if self.gate is None or self.stage is not None or self.evidence_kind is not None:
                raise ValueError("an sla exception names its gate, and nothing else")
        elif self.stage is not None or self.gate is not None or self.evidence_kind is not None:
            raise ValueError("a periodic_review exception names nothing else")
        return self

    @property
    def scope(self) -> str | None:
        """The work stage or gate it concerns (evidence, sla), as evidence scopes spell it."""
        if self.gate is not None:
            return self.gate.value
        return self.stage.value if self.stage is not None else None

    def describe(self) -> str:
        if self.kind == WaiverKind.EVIDENCE:
            return f"evidence {self.evidence_kind} at {self.scope}"
        if self.kind == WaiverKind.SLA:
            return f"the SLA of {self.scope}"
        return "the periodic review date"


class RequestWaiver(BaseModel):
    """The delivery lead or technical owner asks for an exception until ``expires_at``."""

    model_config = ConfigDict(extra="forbid")
    actor: str
    requirement: WaiverRequirement
    justification: str = Field(min_length=1, max_length=4000)
    expires_at: AwareDatetime
    channel: Channel = Channel.API
    credential: Credential | None = None  # minted by a front door, verified by the run


class DecideWaiver(BaseModel):
    """A grantor grants or refuses a pending exception (a comment is required to refuse)."""

    model_config = ConfigDict(extra="forbid")
    actor: str
    waiver_id: WaiverId
    decision: WaiverVerdict
    comment: str = Field(default="", max_length=4000)
    channel: Channel = Channel.API
    credential: Credential | None = None  # minted by a front door, verified by the run


class ChangeOutcome(BaseModel):
    """Signal from a change request's run to its use case when it closes."""

    change_id: str
    outcome: ChangeStatus
    at: datetime
    evidence: list[EvidenceRecord] = Field(default_factory=list)


# --------------------------------------------------------------------------- views


class Approval(BaseModel):
    actor: str
    at: datetime
    channel: Channel = Channel.API
    credential: Credential | None = None  # minted by a front door, verified by the run
    evidence_digests: list[str] = Field(default_factory=list)
    comment: str = ""


class OpenGate(BaseModel):
    gate: Gate
    eligible: list[str]
    quorum: int
    approvals: list[Approval]
    opened_at: datetime
    due_at: datetime
    round: int
    evidence_digests: list[str] = Field(default_factory=list)
    required_evidence: list[str] = Field(default_factory=list)
    expires_at: datetime | None = None
    reminded: list[float] = Field(default_factory=list)  # hours-before marks already sent
    escalated_at: datetime | None = None
    # who can still fill an empty seat (the PendingApprovers search attribute, without the
    # escalation owner)
    pending: list[str] = Field(default_factory=list)
    # the quorum's seats, computed once when the gate opens: candidates per seat
    seats: list[list[str]] = Field(default_factory=list)
    # who asked for this gate when that is not the run's delivery lead (a resume's asker)
    requested_by: str | None = None


class Override(BaseModel):
    """A break-glass override and its retrospective review (open until it passes)."""

    gate: Gate
    round: int
    by: str
    at: datetime
    justification: str
    review: OpenGate


class Waiver(BaseModel):
    """A governed exception as the run holds it: asked for, seated like a gate beside the
    path (``seats``: candidates per grantor seat, the requester excluded), granted once the
    seats are filled, refused by one refusal, expired at ``expires_at``."""

    id: str
    requirement: WaiverRequirement
    justification: str
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    status: WaiverStatus = WaiverStatus.PENDING
    quorum: int
    eligible: list[str] = Field(default_factory=list)
    seats: list[list[str]] = Field(default_factory=list)
    pending: list[str] = Field(default_factory=list)
    approvals: list[Approval] = Field(default_factory=list)
    granted_at: datetime | None = None
    refused_by: str | None = None
    refused_at: datetime | None = None
    comment: str = ""
    expired_at: datetime | None = None
    # a periodic-review exception: the review date it moved
    deferred_review_from: datetime | None = None
    # the Update that asked for it, so the caller finds its own among concurrent ones
    update_id: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status in (WaiverStatus.PENDING, WaiverStatus.GRANTED)

    def summary(self) -> str:
        """One line for cards and details: what is waived, its state, until when."""
        what = self.requirement.describe()
        until = f"{self.expires_at:%Y-%m-%d %H:%M} UTC"
        if self.status == WaiverStatus.GRANTED:
            return f"{what} waived until {until} ({self.id})"
        return f"{what}: exception {self.status.value} ({self.id}, until {until})"


class ClosedGate(BaseModel):
    """The gate most recently closed by a decision: what it waited, for metrics and clients."""

    gate: Gate
    round: int
    opened_at: datetime
    closed_at: datetime
    outcome: GateOutcome


class IncidentKind(StrEnum):
    REPORTED = "reported"  # by a person or a monitoring source
    # the running bundle is not the approved one
    UNAUTHORIZED_CHANGE = "unauthorized_change"


class Incident(BaseModel):
    id: str
    severity: Severity
    summary: str
    reported_by: str
    at: datetime
    suspended: bool
    kind: IncidentKind = IncidentKind.REPORTED
    # an alert's fingerprint (monitoring signals), and when its alert resolved
    fingerprint: str | None = None
    resolved_at: datetime | None = None


class RuntimeSeen(BaseModel):
    """The bundle a live use case last reported running."""

    bundle_digest: str
    at: datetime
    by: str
    matches: bool


class TriggerState(BaseModel):
    """A trigger rule's memory in a run: the times of the latest incidents that matched it
    (at most its count), and an open deadline it set."""

    name: str
    marks: list[datetime] = Field(default_factory=list)
    fired_at: datetime | None = None
    deadline: datetime | None = None


class ChangeSummary(BaseModel):
    change_id: str
    workflow_id: str
    number: int
    summary: str
    materiality: Materiality
    raised_by: str
    status: ChangeStatus
    opened_at: datetime
    closed_at: datetime | None = None
    # the Update that raised it, so the caller finds its own change among concurrent ones
    update_id: str | None = None
    # the bundle it makes live when it passes (None: the bundle stays as approved)
    bundle: list[BundleArtifact] | None = None


class PolicyRef(BaseModel):
    version: str
    sha256: str


class HistoryEvent(BaseModel):
    at: datetime
    stage: Stage
    kind: EventKind
    actor: str
    channel: Channel = Channel.SYSTEM
    decision: Decision | None = None
    gate: Gate | None = None
    comment: str = ""
    evidence: list[Evidence] = Field(default_factory=list)
    round: int = 1


class RefusedAttempt(BaseModel):
    at: datetime
    actor: str
    channel: Channel
    command: CommandName | RunSignal
    refusal: Refusal
    detail: str


class UseCaseView(BaseModel):
    """A run's state as every reader and every command's answer sees it. Bounded: lists that
    grow with a run's life hold only the latest few (``workflows.presentation``'s ``VIEW_*``)
    beside their counts; the whole lists are pages of the ledger
    (``GET /v1/use-cases/{id}/incidents|evidence|changes|history?limit=&cursor=``)."""

    id: str
    key: str
    title: str
    summary: str
    risk_tier: RiskTier
    stage: Stage
    closed: bool
    outcome: RunOutcome | None = None
    round: int
    owners: Owners
    slack_channel: str | None = None
    open_gate: OpenGate | None
    required_evidence: list[str]
    # the latest evidence items, oldest first; ``evidence_count`` counts them all
    evidence: list[EvidenceRecord]
    policy: PolicyRef
    stage_entered_at: datetime
    started_at: datetime
    updated_at: datetime
    event_count: int
    live_version: int = 0
    live_since: datetime | None = None
    next_review_at: datetime | None = None
    stalled_gate: Gate | None = None
    last_closed_gate: ClosedGate | None = None
    # the latest incidents and change requests, oldest first (counts below)
    incidents: list[Incident] = Field(default_factory=list)
    changes: list[ChangeSummary] = Field(default_factory=list)
    change: ChangeInfo | None = None
    deputies: Deputies = Field(default_factory=dict)
    temporal_ui_url: str | None = None
    evidence_count: int = 0
    # the digests of all the run's evidence (sorted): what a gate binds to when it opens
    evidence_digests: list[str] = Field(default_factory=list)
    incident_count: int = 0
    change_count: int = 0
    open_change_count: int = 0
    # a break-glass override whose retrospective review is still open
    override: Override | None = None
    # what runs is what was approved: the approved bundle and its digest, what was last
    # reported running; trigger rules' open deadlines
    bundle: list[BundleArtifact] | None = None
    bundle_digest: str | None = None
    runtime: RuntimeSeen | None = None
    open_alerts: int = 0
    triggers: list[TriggerState] = Field(default_factory=list)
    # governed exceptions: pending and granted ones, and the latest closed; the evidence kinds
    # the current stage or gate needs that a granted exception waives (never counted present)
    waivers: list[Waiver] = Field(default_factory=list)
    waived_evidence: list[str] = Field(default_factory=list)


class UseCaseOutcome(BaseModel):
    key: str
    stage: Stage
    outcome: str
    at: datetime
