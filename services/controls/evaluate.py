"""A use case's controls, judged from the facts its ledger holds. Pure: no I/O, no clock.

``evaluate(facts, catalog, now=…)`` walks the run's ledger entries and evidence items once
(``RunRecord``), then judges every control of the catalog: ``not_applicable`` (another tier, no
EU Annex III marker, or the run closed before the control was due), ``satisfied`` (every
requirement met, with the evidence items and decisions that meet it), ``pending`` (the run has not
reached the point where a requirement is due) or ``gap`` (it has, and the fact is missing — the
reason says which and since when). The workflow stays small: nothing here runs inside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from services.controls.catalog import (
    Capability,
    Control,
    EvidenceNeed,
    GateNeed,
    LoadedCatalog,
    Requirement,
)
from workflows.events import (
    DeputiesChanged,
    EventBody,
    GatePassed,
    IncidentReported,
    RunStarted,
    WaiverFact,
    WaiverGranted,
    extras_as,
    parse_payload,
)
from workflows.model import (
    WORK_STAGES,
    Decision,
    EventKind,
    Gate,
    Role,
    Stage,
    WaiverKind,
    WaiverRequirement,
)

# a break-glass override passes a gate without its seats (its own kind when the policy has one)
OVERRIDE_KIND: str | None = getattr(EventKind, "OVERRIDE", None)
LIVE_STAGES: frozenset[str] = frozenset({Stage.LIVE.value, Stage.SUSPENDED.value})


class ControlStatus(StrEnum):
    SATISFIED = "satisfied"
    PENDING = "pending"
    # a requirement set aside by a granted governed exception: never satisfied
    EXCEPTION = "exception"
    GAP = "gap"
    NOT_APPLICABLE = "not_applicable"


# the worst status wins when requirements are combined
SEVERITY: dict[ControlStatus, int] = {
    ControlStatus.SATISFIED: 0,
    ControlStatus.PENDING: 1,
    ControlStatus.EXCEPTION: 2,
    ControlStatus.GAP: 3,
}


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class LedgerFact:
    """The part of a ledger entry the evaluation reads."""

    seq: int
    at: datetime
    kind: str
    actor: str
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class EvidenceFact:
    """An evidence item as the store holds it (``evidence`` table), tied to its ledger seq."""

    kind: str
    name: str
    sha256: str
    uri: str
    scope: str
    round: int
    submitted_by: str
    at: datetime
    seq: int


@dataclass(frozen=True)
class LedgerCheck:
    """The chain's verification (``LedgerRepository.verify``), when the caller ran it."""

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class RunFacts:
    workflow_id: str
    entries: Sequence[LedgerFact]
    evidence: Sequence[EvidenceFact] = ()
    ledger: LedgerCheck | None = None  # None: judged by the entries' contiguity alone


# --------------------------------------------------------------------------- outputs


class EvidenceRef(BaseModel):
    kind: str
    name: str
    sha256: str
    uri: str
    scope: str
    submitted_by: str
    at: datetime
    seq: int


class DecisionRef(BaseModel):
    actor: str
    action: str  # approve, suspend, incident sev1, …
    gate: str | None = None
    at: datetime
    seq: int
    roles: list[str] = Field(default_factory=list)


class RequirementResult(BaseModel):
    need: str
    status: ControlStatus
    reason: str | None = None
    facts: list[str] = Field(default_factory=list)
    evidence: list[EvidenceRef] = Field(default_factory=list)
    decisions: list[DecisionRef] = Field(default_factory=list)


class ControlResult(BaseModel):
    id: str
    framework: str
    ref: str
    title: str
    source: str
    status: ControlStatus
    reason: str | None = None  # why it is a gap, pending or not applicable
    requirements: list[RequirementResult] = Field(default_factory=list)
    evidence: list[EvidenceRef] = Field(default_factory=list)
    decisions: list[DecisionRef] = Field(default_factory=list)


class StatusCounts(BaseModel):
    satisfied: int = 0
    pending: int = 0
    exception: int = 0
    gap: int = 0
    not_applicable: int = 0

    def add(self, status: ControlStatus) -> None:
        setattr(self, status.value, getattr(self, status.value) + 1)


class FrameworkSummary(StatusCounts):
    id: str
    title: str
    source: str


class CatalogRef(BaseModel):
    version: str
    sha256: str


class ControlsView(BaseModel):
    """``GET /v1/use-cases/{id}/controls``: every control of the catalog, judged for one run."""

    id: str
    key: str
    title: str
    risk_tier: str
    stage: str
    closed: bool
    eu_annex_iii: list[str] = Field(default_factory=list)
    catalog: CatalogRef  # the catalog the controls were judged with
    pinned_catalog: CatalogRef | None = None  # the one the run pinned at start (None: before)
    catalog_matches_pin: bool
    evaluated_at: datetime
    summary: StatusCounts
    frameworks: list[FrameworkSummary]
    controls: list[ControlResult]

    def gaps(self) -> list[ControlResult]:
        return [c for c in self.controls if c.status == ControlStatus.GAP]


# --------------------------------------------------------------------------- the run's record


@dataclass
class Passage:
    seq: int
    at: datetime
    actor: str
    approvers: list[str] = field(default_factory=list)


@dataclass
class ExceptionFact:
    """A governed exception as the ledger tells it (granted ones only count)."""

    id: str
    requirement: WaiverRequirement | None
    granted: LedgerFact | None = None
    grantors: list[str] = field(default_factory=list)
    expires_at: str | None = None
    expired: LedgerFact | None = None

    @property
    def in_force(self) -> bool:
        return self.granted is not None and self.expired is None

    def describe(self) -> str:
        what = self.requirement.describe() if self.requirement else "a requirement"
        granted = self.granted
        by = f" by {', '.join(self.grantors)}" if self.grantors else ""
        when = f" at {_when(granted.at)} (ledger seq {granted.seq})" if granted else ""
        until = f" until {self.expires_at}" if self.expires_at else ""
        return f"exception {self.id} to {what}, granted{by}{when}{until}"


@dataclass
class RunRecord:
    """What the ledger says about a run, walked once."""

    workflow_id: str
    started: RunStarted
    started_at: datetime | None
    stage: str
    closed: bool = False
    last_seq: int = 0
    seqs: list[int] = field(default_factory=list)
    completed: dict[str, Passage] = field(default_factory=dict)  # work stage -> last completion
    passed: dict[str, Passage] = field(default_factory=dict)  # gate -> last passage
    overridden: dict[str, Passage] = field(default_factory=dict)  # gate -> last override
    decisions: list[LedgerFact] = field(default_factory=list)
    live_at: LedgerFact | None = None
    incidents: list[LedgerFact] = field(default_factory=list)
    suspensions: list[LedgerFact] = field(default_factory=list)
    # periodic review: the last opening, and what followed it
    review_opened: LedgerFact | None = None
    review_overdue: LedgerFact | None = None
    review_passed: LedgerFact | None = None
    deputies: dict[str, set[str]] = field(default_factory=dict)
    evidence: list[EvidenceFact] = field(default_factory=list)
    exceptions: dict[str, ExceptionFact] = field(default_factory=dict)

    def exceptions_to(self, kind: WaiverKind, *, in_force: bool = True) -> list[ExceptionFact]:
        return [
            x
            for x in self.exceptions.values()
            if x.requirement is not None
            and x.requirement.kind == kind
            and x.granted is not None
            and x.in_force == in_force
        ]

    @property
    def tier(self) -> str:
        return self.started.risk_tier.value if self.started.risk_tier else ""

    @property
    def path(self) -> list[str]:
        return [s.value for s in self.started.path]

    @property
    def annex_iii(self) -> list[str]:
        marker = self.started.eu_ai_act or {}
        points = marker.get("annex_iii") if isinstance(marker, Mapping) else None
        return [str(p) for p in points] if isinstance(points, list) else []

    def roles_of(self, person: str) -> list[str]:
        """The roles ``person`` held on the run: pinned at start, or as a deputy."""
        roles = [r for r, people in self.started.roster.items() if person in people]
        roles += [f"{r}" for r, people in self.deputies.items() if person in people]
        return sorted(set(roles))


def _walk_gate(rec: RunRecord, e: LedgerFact, gate: str, extras: Any) -> None:
    """Facts that concern a gate: passed, overridden, the periodic review's clock."""
    if e.kind == EventKind.GATE_PASSED:
        approvers = extras_as(GatePassed, extras).approvers
        rec.passed[gate] = Passage(e.seq, e.at, e.actor, list(approvers))
        if gate == Gate.PERIODIC_REVIEW:
            rec.review_passed = e
    elif OVERRIDE_KIND is not None and e.kind == OVERRIDE_KIND:
        rec.overridden[gate] = Passage(e.seq, e.at, e.actor)
    elif gate != Gate.PERIODIC_REVIEW:
        return
    elif e.kind == EventKind.GATE_OPENED:
        rec.review_opened, rec.review_overdue, rec.review_passed = e, None, None
    elif e.kind in (EventKind.GATE_ESCALATED, EventKind.GATE_EXPIRED):
        rec.review_overdue = rec.review_overdue or e


def _walk_entry(rec: RunRecord, e: LedgerFact) -> None:
    body, extras = parse_payload(e.kind, e.payload)
    kind = e.kind
    if kind == EventKind.STAGE_COMPLETED:
        rec.completed[body.stage.value] = Passage(e.seq, e.at, e.actor)
    elif kind == EventKind.DECISION:
        rec.decisions.append(e)
    elif kind == EventKind.STAGE_ENTERED and body.stage == Stage.LIVE and rec.live_at is None:
        rec.live_at = e
    elif kind == EventKind.INCIDENT_REPORTED:
        rec.incidents.append(e)
    elif kind == EventKind.SUSPENDED:
        rec.suspensions.append(e)
    elif kind == EventKind.DEPUTIES_CHANGED:
        changed = extras_as(DeputiesChanged, extras).deputies
        for role, people in changed.items():
            rec.deputies[role] = {str(d.get("person")) for d in people if isinstance(d, dict)}
    elif kind == EventKind.RUN_CLOSED:
        rec.closed = True
    elif kind in _EXCEPTION_KINDS:
        _walk_exception(rec, e, extras)
    elif body.gate is not None:
        _walk_gate(rec, e, body.gate.value, extras)


_EXCEPTION_KINDS = frozenset(
    {EventKind.WAIVER_REQUESTED, EventKind.WAIVER_GRANTED, EventKind.WAIVER_EXPIRED}
)


def _walk_exception(rec: RunRecord, e: LedgerFact, extras: Any) -> None:
    fact = extras_as(WaiverFact, extras)
    if e.kind == EventKind.WAIVER_REQUESTED:
        rec.exceptions[fact.waiver] = ExceptionFact(
            fact.waiver, fact.requirement, expires_at=fact.expires_at
        )
        return
    known = rec.exceptions.get(fact.waiver)
    if known is None:
        return
    if e.kind == EventKind.WAIVER_GRANTED:
        known.granted = e
        known.grantors = list(extras_as(WaiverGranted, extras).grantors)
    elif e.kind == EventKind.WAIVER_EXPIRED:
        known.expired = e


def _deputies(started: RunStarted) -> dict[str, set[str]]:
    return {
        role: {str(d.get("person")) for d in people if isinstance(d, dict)}
        for role, people in (started.deputies or {}).items()
    }


def read_run(facts: RunFacts) -> RunRecord | None:
    """The run's record, or None when its ledger holds no ``run_started`` yet."""
    entries = sorted(facts.entries, key=lambda e: e.seq)
    first = next((e for e in entries if e.kind == EventKind.RUN_STARTED), None)
    if first is None:
        return None
    started = extras_as(RunStarted, parse_payload(EventKind.RUN_STARTED, first.payload)[1])
    rec = RunRecord(
        workflow_id=facts.workflow_id,
        started=started,
        started_at=first.at,
        stage=Stage.SCOPING.value,
        deputies=_deputies(started),
        evidence=sorted(facts.evidence, key=lambda ev: ev.seq),
    )
    for e in entries:
        rec.seqs.append(e.seq)
        rec.last_seq = e.seq
        body: EventBody = parse_payload(e.kind, e.payload)[0]
        if "stage" in body.model_fields_set:
            rec.stage = body.stage.value
        _walk_entry(rec, e)
    return rec


# --------------------------------------------------------------------------- judging


@dataclass(frozen=True)
class Verdict:
    status: ControlStatus
    reason: str | None = None
    facts: tuple[str, ...] = ()
    evidence: tuple[EvidenceRef, ...] = ()
    decisions: tuple[DecisionRef, ...] = ()


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def _evidence_ref(ev: EvidenceFact) -> EvidenceRef:
    return EvidenceRef(
        kind=ev.kind,
        name=ev.name,
        sha256=ev.sha256,
        uri=ev.uri,
        scope=ev.scope,
        submitted_by=ev.submitted_by,
        at=ev.at,
        seq=ev.seq,
    )


def _decision_ref(rec: RunRecord, e: LedgerFact, action: str | None = None) -> DecisionRef:
    body = parse_payload(e.kind, e.payload)[0]
    if action is None:
        action = body.decision.value if body.decision else e.kind
    return DecisionRef(
        actor=e.actor,
        action=action,
        gate=body.gate.value if body.gate else None,
        at=e.at,
        seq=e.seq,
        roles=rec.roles_of(e.actor),
    )


def _passed_scope(rec: RunRecord, scope: str) -> Passage | None:
    """When the run left ``scope`` (a work stage completed, a release gate passed)."""
    return (
        rec.completed.get(scope)
        if scope in {s.value for s in WORK_STAGES}
        else (rec.passed.get(scope))
    )


def _due_point(rec: RunRecord, scopes: Iterable[str]) -> tuple[str, Passage | None]:
    """Where evidence for ``scopes`` falls due: the earliest of them on the run's path (due
    once the run has left it), else going live."""
    on_path = [s for s in rec.path if s in set(scopes)]
    if on_path:
        return on_path[0], _passed_scope(rec, on_path[0])
    if rec.live_at is None:
        return Stage.LIVE.value, None
    return Stage.LIVE.value, Passage(rec.live_at.seq, rec.live_at.at, rec.live_at.actor)


def _not_reached(rec: RunRecord, point: str) -> Verdict:
    if rec.closed:
        return Verdict(
            ControlStatus.NOT_APPLICABLE,
            f"the run closed ({rec.stage}) before {point}",
        )
    return Verdict(ControlStatus.PENDING, f"due at {point}; the run is at {rec.stage}")


def _waiving(rec: RunRecord, kind: str, scopes: set[str], *, in_force: bool) -> list[ExceptionFact]:
    return [
        x
        for x in rec.exceptions_to(WaiverKind.EVIDENCE, in_force=in_force)
        if x.requirement is not None
        and x.requirement.evidence_kind == kind
        and x.requirement.scope in scopes
    ]


def judge_evidence(rec: RunRecord, need: EvidenceNeed) -> Verdict:
    scopes = set(need.at)
    found = [ev for ev in rec.evidence if ev.kind in need.kinds and ev.scope in scopes]
    missing = [k for k in need.kinds if not any(ev.kind == k for ev in found)]
    refs = tuple(_evidence_ref(ev) for ev in found)
    if not missing:
        return Verdict(ControlStatus.SATISFIED, evidence=refs)
    waived = {k: _waiving(rec, k, scopes, in_force=True) for k in missing}
    if all(waived.values()):
        # set aside on the record, never met: an exception, with who granted it until when
        return Verdict(
            ControlStatus.EXCEPTION,
            "; ".join(f"no {k}: {waived[k][-1].describe()}" for k in missing),
            evidence=refs,
        )
    ended = [x for k in missing for x in _waiving(rec, k, scopes, in_force=False)]
    point, left = _due_point(rec, need.at)
    if left is not None and ended:
        expired = ", ".join(
            f"{x.id} expired at {_when(x.expired.at)}" for x in ended if x.expired is not None
        )
        where = " or ".join(need.at)
        return Verdict(
            ControlStatus.GAP,
            f"no {', '.join(missing)} evidence at {where}, and its exception ended ({expired})",
            evidence=refs,
        )
    if left is None:
        verdict = _not_reached(rec, point)
        return Verdict(
            verdict.status, f"no {', '.join(missing)} yet; {verdict.reason}", evidence=refs
        )
    where = " or ".join(need.at)
    return Verdict(
        ControlStatus.GAP,
        f"no {', '.join(missing)} evidence at {where}; the run passed {point} at "
        f"{_when(left.at)} (ledger seq {left.seq}) without it",
        evidence=refs,
    )


def _approvals(rec: RunRecord, gate: str, passage: Passage) -> list[LedgerFact]:
    """The approve decisions that filled the passage's seats: each approver's latest approval
    of ``gate`` before it passed."""
    latest: dict[str, LedgerFact] = {}
    for e in rec.decisions:
        body = parse_payload(e.kind, e.payload)[0]
        if e.seq > passage.seq or body.gate is None or body.gate.value != gate:
            continue
        if body.decision == Decision.APPROVE:
            latest[e.actor] = e
    return [latest[a] for a in passage.approvers if a in latest]


def _gate_not_passed(rec: RunRecord, need: GateNeed) -> Verdict:
    gate = need.gate.value
    override = rec.overridden.get(gate)
    if override is not None:
        return Verdict(
            ControlStatus.GAP,
            f"{gate} was passed by a break-glass override by {override.actor} at "
            f"{_when(override.at)} (ledger seq {override.seq}), not by its seats",
        )
    if gate not in rec.path:
        if rec.live_at is None:
            return _not_reached(rec, Stage.LIVE.value)
        return Verdict(ControlStatus.GAP, f"{gate} is not on this tier's path ({rec.tier})")
    return _not_reached(rec, gate)


def judge_gate(rec: RunRecord, need: GateNeed) -> Verdict:
    gate = need.gate.value
    passage = rec.passed.get(gate)
    if passage is None:
        return _gate_not_passed(rec, need)
    approvals = _approvals(rec, gate, passage)
    refs = tuple(_decision_ref(rec, e) for e in approvals)
    held = {r for ref in refs for r in ref.roles}
    problems = [
        f"no approver of {gate} held {role.value}" for role in need.roles if role.value not in held
    ]
    for ref in refs:
        clash = sorted(set(ref.roles) & {r.value for r in need.independent_of})
        if clash:
            problems.append(f"{ref.actor} approved {gate} but is {' and '.join(clash)}")
    facts = (f"{gate} passed at {_when(passage.at)} (ledger seq {passage.seq})",)
    if problems:
        return Verdict(ControlStatus.GAP, "; ".join(problems), facts, decisions=refs)
    return Verdict(ControlStatus.SATISFIED, facts=facts, decisions=refs)


def _judge_review(rec: RunRecord) -> Verdict:
    verdict = _judge_review_facts(rec)
    moved = rec.exceptions_to(WaiverKind.PERIODIC_REVIEW)
    if verdict.status == ControlStatus.GAP or not moved:
        return verdict
    # the review's date was moved by an exception: shown as such, never as a review held
    return Verdict(
        ControlStatus.EXCEPTION, f"the periodic review is deferred: {moved[-1].describe()}"
    )


def _judge_review_facts(rec: RunRecord) -> Verdict:
    opened, overdue = rec.review_opened, rec.review_overdue
    if opened is None:
        return Verdict(ControlStatus.SATISFIED, facts=("no periodic review has fallen due yet",))
    if rec.review_passed is not None:
        passed = rec.review_passed
        return Verdict(
            ControlStatus.SATISFIED,
            facts=(f"last periodic review passed at {_when(passed.at)} (ledger seq {passed.seq})",),
            decisions=tuple(
                _decision_ref(rec, e)
                for e in rec.decisions
                if opened.seq < e.seq <= passed.seq
                and parse_payload(e.kind, e.payload)[0].gate == Gate.PERIODIC_REVIEW
            ),
        )
    if overdue is not None:
        return Verdict(
            ControlStatus.GAP,
            f"the periodic review opened at {_when(opened.at)} (ledger seq {opened.seq}) is "
            f"overdue since {_when(overdue.at)} (ledger seq {overdue.seq})",
        )
    return Verdict(
        ControlStatus.PENDING,
        f"periodic review open since {_when(opened.at)} (ledger seq {opened.seq}), not yet due",
    )


def judge_capability(rec: RunRecord, capability: Capability) -> Verdict:
    if rec.live_at is None:
        return _not_reached(rec, Stage.LIVE.value)
    if capability == Capability.STOP_AUTHORITY:
        holders = rec.started.roster.get(Role.STOP_AUTHORITY.value, [])
        stops = tuple(_decision_ref(rec, e, "suspend") for e in rec.suspensions)
        if not holders:
            return Verdict(ControlStatus.GAP, "no stop-ship holder is named", decisions=stops)
        return Verdict(
            ControlStatus.SATISFIED,
            facts=(f"stop-ship holders: {', '.join(holders)}",),
            decisions=stops,
        )
    if capability == Capability.INCIDENT_RECORDING:
        incidents = tuple(
            _decision_ref(
                rec,
                e,
                "incident "
                + (
                    sev.value
                    if (
                        sev := extras_as(
                            IncidentReported, parse_payload(e.kind, e.payload)[1]
                        ).severity
                    )
                    else ""
                ).strip(),
            )
            for e in rec.incidents
        )
        return Verdict(
            ControlStatus.SATISFIED,
            facts=(f"{len(incidents)} incident(s) recorded on the run",),
            decisions=incidents,
        )
    return _judge_review(rec)


def judge_ledger(rec: RunRecord, check: LedgerCheck | None) -> Verdict:
    if check is not None:
        if check.ok:
            return Verdict(
                ControlStatus.SATISFIED, facts=(f"hash chain of {check.entries} entries verified",)
            )
        return Verdict(
            ControlStatus.GAP,
            f"the ledger does not verify at seq {check.first_bad_seq}: {check.reason or 'broken'}",
        )
    expected = list(range(1, len(rec.seqs) + 1))
    if rec.seqs != expected:
        missing = next((b for a, b in zip(rec.seqs, expected, strict=False) if a != b), None)
        return Verdict(
            ControlStatus.GAP, f"the ledger's entries are not contiguous: seq {missing} is missing"
        )
    return Verdict(ControlStatus.SATISFIED, facts=(f"{len(rec.seqs)} contiguous ledger entries",))


def judge_inventory(rec: RunRecord) -> Verdict:
    owners = rec.started.owners
    named = [r for r in ("business_owner", "technical_owner", "operations_owner") if owners.get(r)]
    if len(named) < 3:
        return Verdict(ControlStatus.GAP, "the run's owners are not all named")
    at = f" at {_when(rec.started_at)}" if rec.started_at else ""
    return Verdict(
        ControlStatus.SATISFIED,
        facts=(
            f"registered{at} (ledger seq 1): business owner {owners['business_owner']}, "
            f"technical owner {owners['technical_owner']}, operations owner "
            f"{owners['operations_owner']}",
        ),
    )


def judge(rec: RunRecord, req: Requirement, ledger: LedgerCheck | None) -> Verdict:
    if req.evidence is not None:
        return judge_evidence(rec, req.evidence)
    if req.gate is not None:
        return judge_gate(rec, req.gate)
    if req.capability is not None:
        return judge_capability(rec, req.capability)
    if req.ledger is not None:
        return judge_ledger(rec, ledger)
    return judge_inventory(rec)


def applicable(rec: RunRecord, control: Control) -> str | None:
    """None when ``control`` applies to the run, else why not."""
    tiers = {t.value for t in control.applies.tiers}
    if rec.tier not in tiers:
        return f"applies to tier {', '.join(sorted(tiers))}, not {rec.tier}"
    points = control.applies.eu_annex_iii
    if points and not set(points) & set(rec.annex_iii):
        marked = ", ".join(rec.annex_iii) or "none"
        return f"applies to EU AI Act Annex III {', '.join(points)} use cases (marked: {marked})"
    return None


def judge_control(rec: RunRecord, control: Control, ledger: LedgerCheck | None) -> ControlResult:
    base = {
        "id": control.id,
        "framework": control.framework,
        "ref": control.ref,
        "title": control.title,
        "source": control.source,
    }
    why_not = applicable(rec, control)
    if why_not is not None:
        return ControlResult(**base, status=ControlStatus.NOT_APPLICABLE, reason=why_not)
    results = []
    for req in control.satisfied_by:
        v = judge(rec, req, ledger)
        results.append(
            RequirementResult(
                need=req.describe(),
                status=v.status,
                reason=v.reason,
                facts=list(v.facts),
                evidence=list(v.evidence),
                decisions=list(v.decisions),
            )
        )
    status = _combine([r.status for r in results])
    reasons = [r.reason for r in results if r.status == status and r.reason]
    return ControlResult(
        **base,
        status=status,
        reason="; ".join(reasons) if status != ControlStatus.SATISFIED else None,
        requirements=results,
        evidence=_unique([e for r in results for e in r.evidence], lambda e: (e.seq, e.sha256)),
        decisions=_unique([d for r in results for d in r.decisions], lambda d: d.seq),
    )


def _combine(statuses: Sequence[ControlStatus]) -> ControlStatus:
    if statuses and all(s == ControlStatus.NOT_APPLICABLE for s in statuses):
        return ControlStatus.NOT_APPLICABLE
    # a run that closed before some requirement fell due is judged on the rest; the worst wins
    judged = [s for s in statuses if s != ControlStatus.NOT_APPLICABLE]
    return max(judged, key=lambda s: SEVERITY[s])


def _unique(items: list[Any], key: Any) -> list[Any]:
    seen: set[Any] = set()
    out = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out


def evaluate(
    facts: RunFacts,
    catalog: LoadedCatalog,
    *,
    now: datetime,
    key: str = "",
    title: str | None = None,
) -> ControlsView | None:
    """Every control of ``catalog`` for the run of ``facts``; None before its ledger holds
    a ``run_started``."""
    rec = read_run(facts)
    if rec is None:
        return None
    controls = [judge_control(rec, c, facts.ledger) for c in catalog.controls]
    summary = StatusCounts()
    frameworks = {
        f.id: FrameworkSummary(id=f.id, title=f.title, source=f.source)
        for f in catalog.document.frameworks
    }
    for c in controls:
        summary.add(c.status)
        frameworks[c.framework].add(c.status)
    pin = rec.started.controls
    pinned = CatalogRef(version=pin.version, sha256=pin.sha256) if pin else None
    return ControlsView(
        id=facts.workflow_id,
        key=key,
        title=title if title is not None else rec.started.title,
        risk_tier=rec.tier,
        stage=rec.stage,
        closed=rec.closed,
        eu_annex_iii=rec.annex_iii,
        catalog=CatalogRef(version=catalog.version, sha256=catalog.sha256),
        pinned_catalog=pinned,
        catalog_matches_pin=pinned is not None and pinned.sha256 == catalog.sha256,
        evaluated_at=now,
        summary=summary,
        frameworks=list(frameworks.values()),
        controls=controls,
    )


def is_live(view: ControlsView) -> bool:
    return not view.closed and view.stage in LIVE_STAGES


__all__ = [
    "CatalogRef",
    "ControlResult",
    "ControlStatus",
    "ControlsView",
    "DecisionRef",
    "EvidenceFact",
    "EvidenceRef",
    "FrameworkSummary",
    "LedgerCheck",
    "LedgerFact",
    "RequirementResult",
    "RunFacts",
    "RunRecord",
    "StatusCounts",
    "evaluate",
    "is_live",
    "read_run",
]
