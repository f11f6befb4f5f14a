"""Governance rules, as pure functions.

Everything that decides *who may do what, when* lives here once: the gate plan per tier, who is
eligible for a gate (roles, groups, separation of duties), quorum of distinct people, required
evidence and the checks behind every command. The workflow's update validators call these
functions and are the authority; the API and the Slack bot call the same functions for a fast
answer. Nothing here does I/O except the two loaders at the bottom, which the workflow never calls.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from workflows import bundles
from workflows.model import (
    DEPUTY_ROLES,
    GATE_STAGES,
    LIVE_POLICY_GATES,
    OVERRIDABLE_GATES,
    RELEASE_GATES,
    SIGNAL_ACTOR_PREFIX,
    TERMINAL_STAGES,
    WORK_STAGES,
    AddEvidence,
    AlertSeverityRule,
    BreakGlassRule,
    Cancel,
    CommandName,
    CompleteStage,
    DecideWaiver,
    Decision,
    Deputy,
    DeputyIn,
    EvidenceRecord,
    Gate,
    GateDecision,
    GateRule,
    LiveRule,
    Materiality,
    OpenGate,
    OverrideGate,
    Owners,
    PinnedPolicy,
    RaiseChange,
    Refusal,
    ReopenGate,
    ReportIncident,
    ReportRuntime,
    RequestWaiver,
    ResolveIncident,
    Resume,
    Retire,
    RiskTier,
    Role,
    RunLimits,
    SetDeputies,
    Severity,
    Stage,
    Suspend,
    TierRule,
    UseCaseView,
    Waiver,
    WaiverKind,
    WaiverRule,
    WaiverStatus,
    WaiverVerdict,
)

GROUP_PREFIX = "group:"
Roster = Mapping[Role, list[str]]  # role -> person ids, groups resolved, pinned at start


class PolicyViolation(Exception):
    """A command the rules refuse. ``refusal`` says why in a word the API maps to a status."""

    def __init__(self, refusal: Refusal, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.refusal = refusal
        self.detail = detail
        # seconds until the command may succeed (a rate limit's window), else None
        self.retry_after = retry_after


class ConfigFileError(ValueError):
    """A policy or directory file that cannot be used; the message names the file and field."""


# --------------------------------------------------------------------------- the policy document


class PolicyDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = Field(min_length=1, max_length=64)
    tiers: dict[RiskTier, TierRule]
    live: LiveRule = Field(default_factory=LiveRule)
    # directory groups that may read every run (auditors, operations); everyone else reads
    # only the runs they are one of the people of (need-to-know)
    readers: list[str] = Field(default_factory=list, max_length=50)
    # break-glass: the group that may override a stalled gate, and the review that follows
    break_glass: BreakGlassRule | None = None
    # per-run caps: evidence items, incidents per reporter per window (pinned with the tier)
    limits: RunLimits = Field(default_factory=RunLimits)
    # governed exceptions per tier: their longest term and who grants them (a tier not named
    # grants none)
    waivers: dict[RiskTier, WaiverRule] | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _version_is_text(cls, v: Any) -> Any:
        # YAML reads 2026.10 as the float 2026.1: refuse rather than pin a wrong version.
        if not isinstance(v, str):
            raise ValueError('must be a quoted string, e.g. version: "2026.1"')
        return v

    @model_validator(mode="after")
    def _consistent(self) -> PolicyDocument:
        missing = [t.value for t in RiskTier if t not in self.tiers]
        if missing:
            raise ValueError(f"tiers: missing tier(s) {missing}")
        for tier, rules in self.tiers.items():
            _check_tier(tier, rules)
        live_names = [g.gate for g in self.live.gates]
        for name in live_names:
            if name not in LIVE_POLICY_GATES:
                raise ValueError(f"live.gates: {name.value} is not a live gate")
        if len(set(live_names)) != len(live_names):
            raise ValueError("live.gates: a gate is listed twice")
        return self


def _check_tier(tier: RiskTier, rules: TierRule) -> None:
    """A tier's gates: release gates only, once each, scope approval first, go-live last."""
    names = [g.gate for g in rules.gates]
    where = f"tiers.{tier.value}.gates"
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: a gate is listed twice")
    for name in names:
        if name not in RELEASE_GATES:
            raise ValueError(f"{where}: {name.value} is not a release gate")
    if Gate.SCOPE_APPROVAL in names and names[0] != Gate.SCOPE_APPROVAL:
        raise ValueError(f"{where}: scope_approval must come first")
    if names[-1] != Gate.GO_LIVE:
        raise ValueError(f"{where}: go_live must be the last gate")
    for stage in rules.evidence:
        if stage not in WORK_STAGES:
            raise ValueError(f"tiers.{tier.value}.evidence: {stage.value} is not a work stage")
    for g in rules.gates:
        if g.gate == Gate.SCOPE_APPROVAL and g.rework_stage != Stage.SCOPING:
            raise ValueError(f"{where}.scope_approval: rework_stage must be scoping")


@dataclass(frozen=True)
class LoadedPolicy:
    document: PolicyDocument
    sha256: str
    text: str
    path: str

    @property
    def version(self) -> str:
        return self.document.version

    def pin(self, tier: RiskTier) -> PinnedPolicy:
        return PinnedPolicy(
            version=self.document.version,
            sha256=self.sha256,
            tier=tier,
            rules=self.document.tiers[tier],
            live=self.document.live,
            limits=self.document.limits,
            break_glass=self.document.break_glass,
            waivers=(self.document.waivers or {}).get(tier),
        )


# --------------------------------------------------------------------------- the directory


class Person(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")
    name: str = Field(min_length=1)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    slack_user_id: str | None = None
    groups: list[str] = Field(default_factory=list)
    token: str | None = Field(default=None, min_length=6)


class DirectoryDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    people: list[Person] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> DirectoryDocument:
        for attr in ("id", "email", "slack_user_id", "token"):
            seen: set[str] = set()
            for i, p in enumerate(self.people):
                value = getattr(p, attr)
                if value is None:
                    continue
                if attr == "email":
                    value = value.lower()  # looked up case-insensitively
                if value in seen:
                    raise ValueError(f"people.{i}.{attr}: duplicate value")
                seen.add(value)
        return self


class Directory:
    """People by id, token, Slack id and email; group membership."""

    def __init__(self, people: Iterable[Person]) -> None:
        self.people = {p.id: p for p in people}
        self._by_token = {p.token: p for p in self.people.values() if p.token}
        self._by_slack = {p.slack_user_id: p for p in self.people.values() if p.slack_user_id}
        self._by_email = {p.email.lower(): p for p in self.people.values()}

    def get(self, person_id: str) -> Person | None:
        return self.people.get(person_id)

    def by_token(self, token: str) -> Person | None:
        return self._by_token.get(token)

    def by_slack(self, slack_user_id: str) -> Person | None:
        return self._by_slack.get(slack_user_id)

    def by_email(self, email: str) -> Person | None:
        return self._by_email.get(email.lower())

    def members(self, group: str) -> list[str]:
        return sorted(p.id for p in self.people.values() if group in p.groups)


# --------------------------------------------------------------------------- the path


def stage_path(rules: TierRule) -> list[Stage]:
    """The fixed order a use case walks for its tier, from scoping to live."""
    gates = [g.gate for g in rules.gates]
    path: list[Stage] = [Stage.SCOPING]
    if Gate.SCOPE_APPROVAL in gates:
        path.append(Stage.SCOPE_APPROVAL)
    path += [Stage.SPECIFICATION, Stage.IMPLEMENTATION, Stage.VALIDATION]
    path += [Stage(g.value) for g in gates if g != Gate.SCOPE_APPROVAL]
    path.append(Stage.LIVE)
    return path


def change_path(rules: TierRule, materiality: Materiality) -> list[Stage]:
    """A change request's own path: minor → change_approval; material → validation and the
    release gates again (never scope approval) while the live version keeps running."""
    if materiality == Materiality.MINOR:
        return [Stage.CHANGE_APPROVAL, Stage.LIVE]
    gates = [Stage(g.gate.value) for g in rules.gates if g.gate != Gate.SCOPE_APPROVAL]
    return [Stage.VALIDATION, *gates, Stage.LIVE]


def next_stage(path: list[Stage], current: Stage) -> Stage:
    return path[path.index(current) + 1]


def gate_rule(policy: PinnedPolicy, gate: Gate) -> GateRule | None:
    for rule in [*policy.rules.gates, *policy.live.gates]:
        if rule.gate == gate:
            return rule
    return None


def is_gate(stage: Stage) -> bool:
    return stage in GATE_STAGES


# --------------------------------------------------------------------------- people and roles


def resolve_roster(owners: Owners, directory: Directory) -> dict[Role, list[str]]:
    """Role -> person ids, with ``group:NAME`` entries expanded. Unknown people are an error."""

    def known(pid: str, field: str) -> str:
        if directory.get(pid) is None:
            raise PolicyViolation(Refusal.INVALID, f"owners.{field}: unknown person '{pid}'")
        return pid

    risk: list[str] = []
    for i, entry in enumerate(owners.risk_approvers):
        if entry.startswith(GROUP_PREFIX):
            group = entry[len(GROUP_PREFIX) :]
            members = directory.members(group)
            if not members:
                raise PolicyViolation(
                    Refusal.INVALID, f"owners.risk_approvers.{i}: group '{group}' has no members"
                )
            risk += members
        else:
            risk.append(known(entry, f"risk_approvers.{i}"))
    return {
        Role.DELIVERY_LEAD: [known(owners.delivery_lead, "delivery_lead")],
        Role.BUSINESS_OWNER: [known(owners.business_owner, "business_owner")],
        Role.TECHNICAL_OWNER: [known(owners.technical_owner, "technical_owner")],
        Role.OPERATIONS_OWNER: [known(owners.operations_owner, "operations_owner")],
        Role.RISK_APPROVER: sorted(set(risk)),
        Role.ESCALATION_OWNER: [known(owners.escalation_owner, "escalation_owner")],
        Role.STOP_AUTHORITY: sorted(
            {known(p, f"stop_authority.{i}") for i, p in enumerate(owners.stop_authority)}
        ),
    }


def default_stop_authority(business: str, technical: str, operations: str) -> list[str]:
    return list(dict.fromkeys([business, technical, operations]))


def holders(roster: Mapping[Role, list[str]], role: Role) -> set[str]:
    return set(roster.get(role, []))


def requesters(
    gate: Gate,
    roster: Roster,
    *,
    change_raised_by: str | None = None,
    resume_requested_by: str | None = None,
) -> set[str]:
    """Who asked for what ``gate`` decides: the run's delivery lead, the person who raised
    the change (on a change's run) and, for a resume, the person who asked to resume."""
    out = holders(roster, Role.DELIVERY_LEAD)
    if change_raised_by:
        out.add(change_raised_by)
    if gate == Gate.RESUME_APPROVAL and resume_requested_by:
        out.add(resume_requested_by)
    return out


def excluded_from_gate(
    gate: Gate,
    roster: Roster,
    *,
    validation_completed_by: str | None = None,
    change_raised_by: str | None = None,
    resume_requested_by: str | None = None,
    allow_requester: bool = False,
) -> set[str]:
    """Separation of duties: who may never count toward ``gate`` even if they hold a role.

    Whoever asked never decides (unless the gate's rule says ``allow_requester``); the delivery
    lead, the technical owner and whoever completed validation never count toward risk sign-off.
    """
    out: set[str] = set()
    if not allow_requester:
        out |= requesters(
            gate,
            roster,
            change_raised_by=change_raised_by,
            resume_requested_by=resume_requested_by,
        )
    elif gate == Gate.CHANGE_APPROVAL and change_raised_by:
        out.add(change_raised_by)  # a change's own raiser never approves it, whatever the rule
    if gate == Gate.RISK_SIGNOFF:
        out |= holders(roster, Role.DELIVERY_LEAD) | holders(roster, Role.TECHNICAL_OWNER)
        if validation_completed_by:
            out.add(validation_completed_by)
    return out


def active_deputies(deputies: Mapping[Role, list[Deputy]], now: datetime) -> dict[Role, set[str]]:
    """Deputies whose delegation has not expired at ``now``, per role."""
    return {
        role: {d.person for d in entries if d.until is None or d.until > now}
        for role, entries in deputies.items()
    }


def seat_candidates(
    rule: GateRule,
    roster: Roster,
    excluded: Collection[str],
    *,
    change_raised_by: str | None = None,
    deputies: Mapping[Role, Collection[str]] | None = None,
) -> list[set[str]]:
    """One set of candidate people per quorum seat: the role's holders and its deputies."""
    stand_ins = deputies or {}
    seats: list[set[str]] = []
    for req in rule.deciders:
        role = req.role
        if (
            rule.gate == Gate.CHANGE_APPROVAL
            and role == Role.TECHNICAL_OWNER
            and change_raised_by is not None
            and change_raised_by in holders(roster, Role.TECHNICAL_OWNER)
        ):
            # A minor change raised by the technical owner is approved by the business owner.
            role = Role.BUSINESS_OWNER
        people = (holders(roster, role) | set(stand_ins.get(role, ()))) - set(excluded)
        seats += [people] * req.count
    return seats


def unstaffed_seat(seats: list[set[str]], roles: list[Role]) -> Role | None:
    """The role of a seat no distinct person can fill, or None when every seat can be."""
    if max_matching(seats, sorted(set().union(*seats)) if seats else []) >= len(seats):
        return None
    for seat, role in zip(seats, roles, strict=True):
        if not seat:
            return role
    return roles[-1] if roles else None


def seat_roles(rule: GateRule) -> list[Role]:
    return [req.role for req in rule.deciders for _ in range(req.count)]


def max_matching(seats: list[set[str]], people: list[str]) -> int:
    """How many seats distinct people can fill (bipartite matching; seats and people are few)."""
    owner: dict[int, str] = {}

    def place(person: str, seen: set[int]) -> bool:
        for i, cands in enumerate(seats):
            if person in cands and i not in seen:
                seen.add(i)
                if i not in owner or place(owner[i], seen):
                    owner[i] = person
                    return True
        return False

    return sum(1 for p in dict.fromkeys(people) if place(p, set()))


def eligible(
    rule: GateRule,
    roster: Mapping[Role, list[str]],
    excluded: Collection[str],
    *,
    change_raised_by: str | None = None,
    deputies: Mapping[Role, Collection[str]] | None = None,
) -> list[str]:
    seats = seat_candidates(
        rule, roster, excluded, change_raised_by=change_raised_by, deputies=deputies
    )
    return sorted(set().union(*seats)) if seats else []


def quorum_met(
    rule: GateRule,
    roster: Mapping[Role, list[str]],
    excluded: Collection[str],
    approvers: list[str],
    *,
    change_raised_by: str | None = None,
) -> bool:
    seats = seat_candidates(rule, roster, excluded, change_raised_by=change_raised_by)
    return max_matching(seats, approvers) >= len(seats)


def approval_counts(
    rule: GateRule,
    roster: Mapping[Role, list[str]],
    excluded: Collection[str],
    approvers: list[str],
    actor: str,
    *,
    change_raised_by: str | None = None,
) -> bool:
    """Would ``actor``'s approval fill a seat the approvals so far leave empty?"""
    seats = seat_candidates(rule, roster, excluded, change_raised_by=change_raised_by)
    return max_matching(seats, [*approvers, actor]) > max_matching(seats, approvers)


def pending_approvers(
    rule: GateRule,
    roster: Mapping[Role, list[str]],
    excluded: Collection[str],
    approvers: list[str],
    *,
    change_raised_by: str | None = None,
) -> list[str]:
    """People whose approval would still count: the gate waits on them."""
    return [
        p
        for p in eligible(rule, roster, excluded, change_raised_by=change_raised_by)
        if p not in approvers
        and approval_counts(rule, roster, excluded, approvers, p, change_raised_by=change_raised_by)
    ]


def may_read(
    roster: Roster, person_id: str, groups: Iterable[str], reader_groups: Iterable[str]
) -> bool:
    """Need-to-know: a run is visible to its own people (every role it pinned, groups
    resolved) and to members of the policy's reader groups; to nobody else."""
    if any(person_id in people for people in roster.values()):
        return True
    return not set(groups).isdisjoint(reader_groups)


def check_distinct_roles(tier: RiskTier, rules: TierRule, roster: Roster) -> None:
    """The tier's distinct roles are held by different people."""
    seen: dict[str, Role] = {}
    for role in rules.distinct_roles:
        for person in holders(roster, role):
            if person in seen and seen[person] != role:
                raise PolicyViolation(
                    Refusal.INVALID,
                    f"owners: {person} cannot be both {seen[person].value} and {role.value} of a "
                    f"{tier.value}-tier use case (separation of duties)",
                )
            seen[person] = role


def check_gate_staffable(
    rule: GateRule,
    roster: Roster,
    *,
    deputies: Mapping[Role, Collection[str]] | None = None,
    change_raised_by: str | None = None,
    resume_requested_by: str | None = None,
) -> None:
    """Refuse what would open ``rule``'s gate with a seat nobody may fill once separation of
    duties is applied; the refusal names the gate, the seat and what to do."""
    excluded = excluded_from_gate(
        rule.gate,
        roster,
        change_raised_by=change_raised_by,
        resume_requested_by=resume_requested_by,
        allow_requester=rule.allow_requester,
    )
    seats = seat_candidates(
        rule, roster, excluded, change_raised_by=change_raised_by, deputies=deputies
    )
    role = unstaffed_seat(seats, seat_roles(rule))
    if role is None:
        return
    asked = sorted(
        requesters(
            rule.gate,
            roster,
            change_raised_by=change_raised_by,
            resume_requested_by=resume_requested_by,
        )
    )
    hint = f"name a deputy for {role.value}" if role in DEPUTY_ROLES else f"name more {role.value}s"
    raise PolicyViolation(
        Refusal.INVALID,
        f"gate {rule.gate.value} cannot be staffed: seat {role.value} needs {rule.quorum} "
        f"distinct approver(s) in all, and whoever asked ({', '.join(asked)}) never decides, "
        "nor do the delivery lead and technical owner count toward risk_signoff; "
        f"{hint}",
    )


def review_rule(rule: BreakGlassRule) -> GateRule:
    """The retrospective review a break-glass override opens, as a gate rule."""
    return GateRule(
        gate=Gate.OVERRIDE_REVIEW, deciders=rule.review, sla_hours=rule.review_within_hours
    )


def review_seats(
    rule: BreakGlassRule,
    roster: Roster,
    overrider: str,
    *,
    change_raised_by: str | None = None,
    deputies: Mapping[Role, Collection[str]] | None = None,
) -> list[set[str]]:
    """The review's seats: never the overrider, never whoever asked for the run."""
    excluded = requesters(Gate.OVERRIDE_REVIEW, roster, change_raised_by=change_raised_by)
    excluded.add(overrider)
    return seat_candidates(
        review_rule(rule), roster, excluded, change_raised_by=change_raised_by, deputies=deputies
    )


def check_review_staffable(
    rule: BreakGlassRule,
    roster: Roster,
    overrider: str,
    *,
    change_raised_by: str | None = None,
    deputies: Mapping[Role, Collection[str]] | None = None,
) -> None:
    """An override is refused when nobody could review it."""
    seats = review_seats(
        rule, roster, overrider, change_raised_by=change_raised_by, deputies=deputies
    )
    role = unstaffed_seat(seats, seat_roles(review_rule(rule)))
    if role is not None:
        raise PolicyViolation(
            Refusal.INVALID,
            f"the retrospective review of an override by {overrider} cannot be staffed: seat "
            f"{role.value} has nobody but the overrider or whoever asked; name a deputy for "
            f"{role.value}",
        )


def check_staffing(
    policy: PinnedPolicy,
    roster: Roster,
    deputies: Mapping[Role, Collection[str]] | None = None,
) -> None:
    """Refuse a start whose owners break the tier's distinct roles, or leave a gate with a seat
    nobody may fill once separation of duties is applied."""
    for rule in [
        *policy.rules.gates,
        *(g for g in policy.live.gates if g.gate != Gate.CHANGE_APPROVAL),
    ]:
        check_gate_staffable(rule, roster, deputies=deputies)
    check_distinct_roles(policy.tier, policy.rules, roster)


def check_change_staffing(
    policy: PinnedPolicy,
    roster: Roster,
    materiality: Materiality,
    raised_by: str,
    deputies: Mapping[Role, Collection[str]] | None = None,
) -> None:
    """A change's gates must be staffable without the person who raised it."""
    for stage in change_path(policy.rules, materiality):
        if stage in GATE_STAGES:
            rule = gate_rule(policy, Gate(stage.value))
            if rule is not None:
                check_gate_staffable(rule, roster, deputies=deputies, change_raised_by=raised_by)


# --------------------------------------------------------------------------- evidence


def required_kinds(policy: PinnedPolicy, stage: Stage) -> list[str]:
    if stage in WORK_STAGES:
        return list(policy.rules.evidence.get(stage, []))
    if is_gate(stage):
        rule = gate_rule(policy, Gate(stage.value))
        return list(rule.evidence) if rule else []
    return []


def missing_evidence(required: Iterable[str], present: Iterable[EvidenceRecord | Any]) -> list[str]:
    have = {e.kind for e in present}
    return [k for k in required if k not in have]


def evidence_digests(evidence: Iterable[EvidenceRecord | Any]) -> list[str]:
    return sorted({e.sha256 for e in evidence})


# --------------------------------------------------------------------------- command checks
#
# Every check authorizes first (who may send this command to this run, from the people pinned at
# start) and looks at the run's state second: a caller who may never send a command is told
# "not eligible" before anything about the run's state. ``check_actor`` alone is what the command
# layer pre-checks with from a run's pinned facts; the workflow's validators run the full check.


_DELIVERY = (Role.DELIVERY_LEAD, Role.TECHNICAL_OWNER)
_OWNERS_AND_OPERATIONS = (
    Role.DELIVERY_LEAD,
    Role.BUSINESS_OWNER,
    Role.TECHNICAL_OWNER,
    Role.OPERATIONS_OWNER,
    Role.ESCALATION_OWNER,
    Role.STOP_AUTHORITY,
)
# who may send each command (gate decisions: see ``deciders``)
SENDERS: dict[CommandName, tuple[tuple[Role, ...], str]] = {
    CommandName.COMPLETE_STAGE: (
        _DELIVERY,
        "only the delivery lead or technical owner completes a stage",
    ),
    CommandName.ADD_EVIDENCE: (
        _DELIVERY,
        "only the delivery lead or technical owner submits evidence",
    ),
    CommandName.RAISE_CHANGE: (
        _DELIVERY,
        "only the delivery lead or technical owner raises a change",
    ),
    CommandName.REOPEN_GATE: (
        (Role.DELIVERY_LEAD,),
        "only the delivery lead reopens an expired gate",
    ),
    CommandName.CANCEL: (
        (Role.DELIVERY_LEAD, Role.BUSINESS_OWNER),
        "only the delivery lead or business owner cancels a use case",
    ),
    CommandName.REPORT_INCIDENT: (
        _OWNERS_AND_OPERATIONS,
        "only the use case's owners or operations report incidents",
    ),
    CommandName.SUSPEND: ((Role.STOP_AUTHORITY,), "only a stop-authority holder suspends"),
    CommandName.RESUME: ((Role.STOP_AUTHORITY,), "only a stop-authority holder asks to resume"),
    CommandName.RETIRE: ((Role.BUSINESS_OWNER,), "only the business owner retires a use case"),
    CommandName.SET_DEPUTIES: (
        (Role.BUSINESS_OWNER,),
        "only the business owner names or changes deputies",
    ),
    CommandName.OVERRIDE_GATE: (
        (Role.BREAK_GLASS,),
        "only a member of the policy's break-glass group overrides a gate",
    ),
    CommandName.RESOLVE_INCIDENT: (
        _OWNERS_AND_OPERATIONS,
        "only the use case's owners, operations or a monitoring source resolve an alert",
    ),
    CommandName.REPORT_RUNTIME: (
        (Role.TECHNICAL_OWNER, Role.OPERATIONS_OWNER),
        "only the technical or operations owner, or a monitoring source, reports what runs",
    ),
    CommandName.REQUEST_WAIVER: (
        _DELIVERY,
        "only the delivery lead or technical owner asks for an exception",
    ),
}
# What a monitoring source ("signal:<source>") may send: it reports and resolves alerts and
# says what runs; it never decides, raises, suspends or asks, so separation of duties holds.
SIGNAL_COMMANDS: frozenset[CommandName] = frozenset(
    {CommandName.REPORT_INCIDENT, CommandName.RESOLVE_INCIDENT, CommandName.REPORT_RUNTIME}
)
NOT_ELIGIBLE_FOR_GATE = "not eligible for this gate"


def deciders(
    rule: GateRule,
    roster: Roster,
    *,
    validation_completed_by: str | None = None,
    change_raised_by: str | None = None,
    resume_requested_by: str | None = None,
    deputies: Mapping[Role, Collection[str]] | None = None,
) -> list[str]:
    """Everyone who could fill a seat of ``rule``'s gate on this run (after separation of
    duties). Without ``validation_completed_by`` it is what the pinned facts alone allow."""
    excluded = excluded_from_gate(
        rule.gate,
        roster,
        validation_completed_by=validation_completed_by,
        change_raised_by=change_raised_by,
        resume_requested_by=resume_requested_by,
        allow_requester=rule.allow_requester,
    )
    return eligible(rule, roster, excluded, change_raised_by=change_raised_by, deputies=deputies)


def check_actor(
    command: CommandName,
    roster: Roster,
    actor: str,
    *,
    rule: GateRule | None = None,
    change_raised_by: str | None = None,
    deputies: Mapping[Role, Collection[str]] | None = None,
) -> None:
    """Authorization from the run's pinned people: may ``actor`` ever send ``command`` here?

    For a decision, ``rule`` is the decided gate's rule (None: the gate is not on this run's
    path, which the state check reports). The open gate's own seats, which also exclude whoever
    completed validation or asked to resume, are checked against the state by
    ``check_decision``.
    """
    if is_signal_actor(actor):
        if command not in SIGNAL_COMMANDS:
            raise PolicyViolation(
                Refusal.NOT_ELIGIBLE,
                "a monitoring source only reports and resolves alerts and what runs",
            )
        return
    if command == CommandName.DECIDE:
        if rule is not None and actor not in deciders(
            rule, roster, change_raised_by=change_raised_by, deputies=deputies
        ):
            raise PolicyViolation(Refusal.NOT_ELIGIBLE, NOT_ELIGIBLE_FOR_GATE)
        return
    if command == CommandName.DECIDE_WAIVER:
        return  # the pinned grantors decide (check_waiver_grantor), then the exception's seats
    roles, refusal = SENDERS[command]
    if not any(actor in roster.get(role, []) for role in roles):
        raise PolicyViolation(Refusal.NOT_ELIGIBLE, refusal)
    if command == CommandName.OVERRIDE_GATE and actor in requesters(
        Gate.GO_LIVE, roster, change_raised_by=change_raised_by
    ):
        raise PolicyViolation(
            Refusal.NOT_ELIGIBLE, "whoever asked for a run never overrides its gates"
        )


def _check_open(view: UseCaseView) -> None:
    if view.closed or view.stage in TERMINAL_STAGES:
        raise PolicyViolation(Refusal.RUN_CLOSED, f"the run is closed ({view.stage.value})")


def check_complete_stage(view: UseCaseView, cmd: CompleteStage) -> None:
    _check_open(view)
    if cmd.stage not in WORK_STAGES:
        raise PolicyViolation(Refusal.INVALID, f"{cmd.stage.value} is not a work stage")
    if view.stage != cmd.stage:
        raise PolicyViolation(
            Refusal.WRONG_STAGE, f"the use case is at {view.stage.value}, not {cmd.stage.value}"
        )
    missing = [k for k in view.required_evidence if k not in {e.kind for e in cmd.evidence}]
    if missing:
        raise PolicyViolation(
            Refusal.EVIDENCE_MISSING, f"{cmd.stage.value} needs evidence of kind(s): {missing}"
        )


def check_add_evidence(view: UseCaseView, cmd: AddEvidence) -> None:
    _check_open(view)
    if view.stage not in WORK_STAGES and view.open_gate is None:
        raise PolicyViolation(
            Refusal.WRONG_STAGE, f"no work stage or gate is open (stage {view.stage.value})"
        )


def check_decision(view: UseCaseView, cmd: GateDecision) -> None:
    _check_open(view)
    gate = view.open_gate
    if cmd.gate == Gate.OVERRIDE_REVIEW:
        gate = view.override.review if view.override else None
    if gate is None or gate.gate != cmd.gate:
        raise PolicyViolation(
            Refusal.GATE_NOT_OPEN,
            f"gate {cmd.gate.value} is not open (stage {view.stage.value})",
        )
    if cmd.actor not in gate.eligible:
        raise PolicyViolation(Refusal.NOT_ELIGIBLE, NOT_ELIGIBLE_FOR_GATE)
    if any(a.actor == cmd.actor for a in gate.approvals):
        raise PolicyViolation(
            Refusal.ALREADY_DECIDED, f"{cmd.actor} already approved {cmd.gate.value} this round"
        )
    if cmd.decision != Decision.APPROVE and not cmd.comment.strip():
        raise PolicyViolation(Refusal.INVALID, f"a comment is required to {cmd.decision.value}")
    if cmd.decision == Decision.APPROVE:
        if gate.required_evidence:
            raise PolicyViolation(
                Refusal.EVIDENCE_MISSING,
                f"{cmd.gate.value} needs evidence of kind(s): {gate.required_evidence}",
            )
        if cmd.evidence_digests is not None and sorted(
            {d.lower() for d in cmd.evidence_digests}
        ) != sorted(gate.evidence_digests):
            raise PolicyViolation(
                Refusal.EVIDENCE_CHANGED,
                "the evidence changed since it was reviewed; review the current evidence "
                "and approve again",
            )


def check_override(view: UseCaseView, cmd: OverrideGate, rule: BreakGlassRule | None) -> None:
    """Break-glass passes only a stalled gate of the run's path (escalated past its SLA, or
    expired), with a justification, and never while the last override is still under review."""
    _check_open(view)
    if rule is None:
        raise PolicyViolation(Refusal.INVALID, "the pinned policy names no break-glass group")
    if cmd.gate not in OVERRIDABLE_GATES:
        raise PolicyViolation(Refusal.INVALID, f"{cmd.gate.value} cannot be overridden")
    if len(cmd.justification.strip()) < rule.justification_min_chars:
        raise PolicyViolation(
            Refusal.INVALID,
            f"a justification of at least {rule.justification_min_chars} characters is required",
        )
    gate = view.open_gate
    stalled = (gate is not None and gate.gate == cmd.gate and gate.escalated_at is not None) or (
        view.stage == Stage.STALLED and view.stalled_gate == cmd.gate
    )
    if not stalled:
        raise PolicyViolation(
            Refusal.WRONG_STAGE,
            f"gate {cmd.gate.value} is not stalled (only an open gate past its SLA, or an "
            "expired one, can be overridden)",
        )
    if view.override is not None:
        raise PolicyViolation(
            Refusal.WRONG_STAGE,
            f"the override of {view.override.gate.value} is still under retrospective review",
        )


def check_cancel(view: UseCaseView, cmd: Cancel) -> None:
    _check_open(view)
    before_live = (*WORK_STAGES, *(Stage(g.value) for g in RELEASE_GATES), Stage.CHANGE_APPROVAL)
    if view.stage not in (*before_live, Stage.STALLED):
        raise PolicyViolation(
            Refusal.WRONG_STAGE, f"a use case at {view.stage.value} cannot be cancelled"
        )


def check_reopen(view: UseCaseView, cmd: ReopenGate) -> None:
    _check_open(view)
    if view.stage != Stage.STALLED or view.stalled_gate is None:
        raise PolicyViolation(
            Refusal.WRONG_STAGE, f"only a stalled run reopens a gate (stage {view.stage.value})"
        )
    if cmd.gate is not None and cmd.gate != view.stalled_gate:
        raise PolicyViolation(
            Refusal.WRONG_STAGE,
            f"gate {cmd.gate.value} has not expired (the expired gate is "
            f"{view.stalled_gate.value})",
        )


def _check_live(view: UseCaseView, *allowed: Stage) -> None:
    _check_open(view)
    if view.change is not None:
        raise PolicyViolation(
            Refusal.WRONG_STAGE, "live operations act on the use case, not a change"
        )
    if view.stage not in allowed:
        raise PolicyViolation(
            Refusal.WRONG_STAGE,
            f"the use case is {view.stage.value}; this needs "
            + " or ".join(s.value for s in allowed),
        )


def check_incident(view: UseCaseView, cmd: ReportIncident) -> None:
    _check_live(view, Stage.LIVE, Stage.SUSPENDED)


def sev1_suspends(pinned: PinnedPolicy, severity: Severity) -> bool:
    return severity == Severity.SEV1 and pinned.live.sev1_suspends


def check_resolve_incident(view: UseCaseView, cmd: ResolveIncident) -> None:
    _check_live(view, Stage.LIVE, Stage.SUSPENDED)


def check_runtime(view: UseCaseView, cmd: ReportRuntime) -> None:
    _check_live(view, Stage.LIVE, Stage.SUSPENDED)
    if view.bundle_digest is None:
        raise PolicyViolation(
            Refusal.WRONG_STAGE,
            "the use case was approved without a bundle: there is nothing to compare with "
            "(name one with a change request)",
        )


def is_signal_actor(actor: str) -> bool:
    """A monitoring source's identity in a run (never a person's id: those have no ':')."""
    return actor.startswith(SIGNAL_ACTOR_PREFIX)


def check_signal_source(live: LiveRule, actor: str) -> None:
    """The run takes signals from the sources its pinned policy names (all, unless named)."""
    source = actor[len(SIGNAL_ACTOR_PREFIX) :]
    if live.signal_sources is not None and source not in live.signal_sources:
        raise PolicyViolation(
            Refusal.NOT_ELIGIBLE,
            f"the policy takes no signals from source '{source}' for this use case",
        )


def alert_severity(rule: AlertSeverityRule, labels: Mapping[str, str]) -> Severity:
    """An alert's incident severity: its ``rule.label`` label's value mapped by the policy
    (case-insensitive), else the rule's default."""
    value = labels.get(rule.label)
    if value is None:
        return rule.default
    by_value = {k.lower(): v for k, v in rule.values.items()}
    return by_value.get(value.strip().lower(), rule.default)


def unauthorized_change_severity(pinned: PinnedPolicy) -> Severity:
    """The severity of the incident a running bundle other than the approved one opens."""
    return pinned.live.bundle_rule.mismatch_severity.get(pinned.tier, Severity.SEV1)


def check_bundle_change(pinned: PinnedPolicy, view: UseCaseView, cmd: RaiseChange) -> None:
    """A change of the bundle is as material as the policy says the artifacts it changes are:
    a change that touches a material artifact is never raised as minor."""
    if cmd.bundle is None:
        return
    names = bundles.changed(view.bundle, cmd.bundle)
    needed = bundles.materiality_of(pinned.live.bundle_rule, names)
    if needed == Materiality.MATERIAL and cmd.materiality == Materiality.MINOR:
        material = sorted(set(names) & set(pinned.live.bundle_rule.material_artifacts))
        raise PolicyViolation(
            Refusal.INVALID,
            f"bundle: the change replaces {', '.join(material)}, which the policy makes a "
            "material change (raise it as material)",
        )


def check_suspend(view: UseCaseView, cmd: Suspend) -> None:
    _check_live(view, Stage.LIVE)


def check_resume(view: UseCaseView, cmd: Resume) -> None:
    _check_live(view, Stage.SUSPENDED)
    if view.open_gate is not None:
        raise PolicyViolation(
            Refusal.WRONG_STAGE, f"gate {view.open_gate.gate.value} is already open"
        )


def check_raise_change(view: UseCaseView, cmd: RaiseChange) -> None:
    _check_live(view, Stage.LIVE)


def check_retire(view: UseCaseView, cmd: Retire) -> None:
    _check_live(view, Stage.LIVE, Stage.SUSPENDED)


def check_set_deputies(view: UseCaseView, cmd: SetDeputies) -> None:
    _check_open(view)


STATE_CHECKS: dict[CommandName, Any] = {
    CommandName.SET_DEPUTIES: check_set_deputies,
    CommandName.COMPLETE_STAGE: check_complete_stage,
    CommandName.ADD_EVIDENCE: check_add_evidence,
    CommandName.DECIDE: check_decision,
    CommandName.REOPEN_GATE: check_reopen,
    CommandName.CANCEL: check_cancel,
    CommandName.REPORT_INCIDENT: check_incident,
    CommandName.SUSPEND: check_suspend,
    CommandName.RESUME: check_resume,
    CommandName.RAISE_CHANGE: check_raise_change,
    CommandName.RETIRE: check_retire,
    CommandName.RESOLVE_INCIDENT: check_resolve_incident,
    CommandName.REPORT_RUNTIME: check_runtime,
}


def check_staffed_request(
    command: CommandName,
    policy: PinnedPolicy,
    roster: Roster,
    cmd: Any,
    deputies: Mapping[Role, Collection[str]] | None = None,
    change_raised_by: str | None = None,
) -> None:
    """A request that opens gates decided without the requester must leave them staffable:
    a change raised by the technical owner needs a technical deputy, a resume asked by the
    business owner a business deputy (the refusal says whom to name)."""
    if command == CommandName.RAISE_CHANGE:
        check_change_staffing(policy, roster, cmd.materiality, cmd.actor, deputies)
    elif command == CommandName.OVERRIDE_GATE and policy.break_glass is not None:
        check_review_staffable(
            policy.break_glass,
            roster,
            cmd.actor,
            change_raised_by=change_raised_by,
            deputies=deputies,
        )
    elif command == CommandName.RESUME:
        rule = gate_rule(policy, Gate.RESUME_APPROVAL)
        if rule is not None:
            check_gate_staffable(rule, roster, deputies=deputies, resume_requested_by=cmd.actor)
    elif command == CommandName.REQUEST_WAIVER and policy.waivers is not None:
        check_waiver_staffable(
            policy.waivers,
            roster,
            cmd.actor,
            change_raised_by=change_raised_by,
            deputies=deputies,
        )


# --------------------------------------------------------------------------- per-run limits
#
# Checked last, by the workflow's validators (so every channel obeys): a command that is
# allowed and fits the run's state is refused only because the run is full or its sender too
# fast. The API maps ``OVER_LIMIT`` to 422 and ``RATE_LIMITED`` to 429 with ``Retry-After``.


def evidence_in(command: CommandName, cmd: Any) -> int:
    """How many evidence items ``cmd`` adds to the run it is sent to."""
    if command in (CommandName.COMPLETE_STAGE, CommandName.ADD_EVIDENCE):
        return len(cmd.evidence)
    return 0


def check_evidence_cap(limits: RunLimits, held: int, adding: int) -> None:
    """A run holds at most ``limits.max_evidence_items`` evidence items."""
    if adding and held + adding > limits.max_evidence_items:
        raise PolicyViolation(
            Refusal.OVER_LIMIT,
            f"evidence: the run holds {held} of at most {limits.max_evidence_items} evidence "
            f"items; {adding} more do not fit",
        )


def check_incident_rate(
    limits: RunLimits, reported: Iterable[tuple[str, datetime]], actor: str, now: datetime
) -> None:
    """At most ``limits.max_incidents_per_reporter`` incidents by one person within the
    window; ``reported`` are (reporter, at) of the run's incidents. The refusal says when the
    oldest of them leaves the window."""
    window = timedelta(seconds=limits.incident_window_seconds)
    recent = sorted(at for who, at in reported if who == actor and at > now - window)
    if len(recent) < limits.max_incidents_per_reporter:
        return
    # the one whose leaving makes room for one more
    frees_at = recent[len(recent) - limits.max_incidents_per_reporter] + window
    wait = max(1, math.ceil((frees_at - now).total_seconds()))
    raise PolicyViolation(
        Refusal.RATE_LIMITED,
        f"{actor} reported {len(recent)} incidents in the last "
        f"{limits.incident_window_seconds} s (at most {limits.max_incidents_per_reporter}); "
        f"try again in {wait} s",
        retry_after=wait,
    )


def check_limits(
    command: CommandName,
    view: UseCaseView,
    cmd: Any,
    limits: RunLimits,
    *,
    reported: Iterable[tuple[str, datetime]] = (),
    now: datetime | None = None,
    open_alerts: Collection[str] = (),
) -> None:
    """The policy's per-run caps for ``cmd``: evidence items per run, incidents per reporter
    per window (checked when ``now`` is given, over ``reported``). A repeated alert whose
    incident is open (``open_alerts``: fingerprints) adds nothing and is never limited; a
    runtime report may open an incident and counts like one."""
    check_evidence_cap(limits, view.evidence_count, evidence_in(command, cmd))
    repeated = getattr(cmd, "fingerprint", None) in open_alerts
    if (
        command in (CommandName.REPORT_INCIDENT, CommandName.REPORT_RUNTIME)
        and now is not None
        and not repeated
    ):
        check_incident_rate(limits, reported, cmd.actor, now)


def check_command(
    command: CommandName,
    view: UseCaseView,
    cmd: Any,
    roster: Roster,
    *,
    rule: GateRule | None = None,
    change_raised_by: str | None = None,
    pinned: PinnedPolicy | None = None,
    deputies: Mapping[Role, Collection[str]] | None = None,
    reported: Iterable[tuple[str, datetime]] = (),
    now: datetime | None = None,
    open_alerts: Collection[str] = (),
) -> None:
    """The whole check the workflow's validator runs: authorization, then the run's state,
    then that what the command opens can be staffed, then the policy's per-run limits
    (``reported``: (reporter, at) of the run's incidents, for the incident rate;
    ``open_alerts``: the fingerprints of alerts whose incident is open)."""
    check_actor(
        command, roster, cmd.actor, rule=rule, change_raised_by=change_raised_by, deputies=deputies
    )
    if pinned is not None and is_signal_actor(cmd.actor):
        check_signal_source(pinned.live, cmd.actor)
    if command == CommandName.OVERRIDE_GATE:
        check_override(view, cmd, pinned.break_glass if pinned else None)
    elif command == CommandName.REQUEST_WAIVER:
        check_waiver_request(view, cmd, pinned, now)
    elif command == CommandName.DECIDE_WAIVER:
        if pinned is not None:
            check_waiver_grantor(
                pinned, roster, cmd.actor, change_raised_by=change_raised_by, deputies=deputies
            )
        check_waiver_decision(view, cmd)
    else:
        STATE_CHECKS[command](view, cmd)
    if pinned is not None:
        if command == CommandName.RAISE_CHANGE:
            check_bundle_change(pinned, view, cmd)
        check_staffed_request(command, pinned, roster, cmd, deputies, change_raised_by)
        check_limits(
            command,
            view,
            cmd,
            pinned.run_limits,
            reported=reported,
            now=now,
            open_alerts=open_alerts,
        )


# --------------------------------------------------------------------------- governed exceptions
#
# An exception (waiver) to a requirement of the pinned policy — a required evidence kind at a
# stage or gate, a gate's SLA, the periodic review date — asked for by the delivery lead or the
# technical owner with a justification, until a date no later than the tier's ``max_days``. It
# is granted when the tier's grantor seats are filled by distinct people; whoever asked for it,
# the run's delivery lead and a change's raiser never fill one. One refusal ends it.

# pending and granted exceptions one run holds at a time
MAX_OPEN_WAIVERS = 20
NOT_ELIGIBLE_FOR_WAIVER = "not eligible to decide exceptions on this use case"


def waiver_seats(
    rule: WaiverRule,
    roster: Roster,
    requester: str | None,
    *,
    change_raised_by: str | None = None,
    deputies: Mapping[Role, Collection[str]] | None = None,
) -> list[set[str]]:
    """One set of candidates per grantor seat: the role's holders and deputies, never the
    exception's requester nor whoever asked for the run."""
    excluded = holders(roster, Role.DELIVERY_LEAD)
    if change_raised_by:
        excluded.add(change_raised_by)
    if requester:
        excluded.add(requester)
    stand_ins = deputies or {}
    seats: list[set[str]] = []
    for req in rule.grantors:
        people = (holders(roster, req.role) | set(stand_ins.get(req.role, ()))) - excluded
        seats += [people] * req.count
    return seats


def check_waiver_staffable(
    rule: WaiverRule,
    roster: Roster,
    requester: str,
    *,
    change_raised_by: str | None = None,
    deputies: Mapping[Role, Collection[str]] | None = None,
) -> None:
    """An exception nobody but its requester could grant is refused (the refusal names the
    seat and whom to name)."""
    seats = waiver_seats(
        rule, roster, requester, change_raised_by=change_raised_by, deputies=deputies
    )
    roles = [req.role for req in rule.grantors for _ in range(req.count)]
    role = unstaffed_seat(seats, roles)
    if role is not None:
        hint = (
            f"name a deputy for {role.value}"
            if role in DEPUTY_ROLES
            else f"name more {role.value}s"
        )
        raise PolicyViolation(
            Refusal.INVALID,
            f"an exception asked for by {requester} cannot be granted: seat {role.value} needs "
            f"{rule.quorum} distinct grantor(s) in all, and whoever asked never grants; {hint}",
        )


def check_waiver_grantor(
    pinned: PinnedPolicy,
    roster: Roster,
    actor: str,
    *,
    change_raised_by: str | None = None,
    deputies: Mapping[Role, Collection[str]] | None = None,
) -> None:
    """Authorization from the pinned people: may ``actor`` ever decide an exception here?"""
    rule = pinned.waivers
    if rule is None:
        raise PolicyViolation(Refusal.NOT_ELIGIBLE, NOT_ELIGIBLE_FOR_WAIVER)
    seats = waiver_seats(rule, roster, None, change_raised_by=change_raised_by, deputies=deputies)
    if actor not in set().union(*seats):
        raise PolicyViolation(Refusal.NOT_ELIGIBLE, NOT_ELIGIBLE_FOR_WAIVER)


def _check_waived_requirement(view: UseCaseView, cmd: RequestWaiver, pinned: PinnedPolicy) -> None:
    """The requirement is one the pinned policy states for this run, now waivable."""
    req = cmd.requirement
    if req.kind == WaiverKind.EVIDENCE:
        if req.stage is not None:
            needed = list(pinned.rules.evidence.get(req.stage, []))
        else:
            assert req.gate is not None  # the requirement's own validator
            rule = gate_rule(pinned, req.gate)
            needed = list(rule.evidence) if rule else []
        if req.evidence_kind not in needed:
            raise PolicyViolation(
                Refusal.INVALID,
                f"requirement: {req.scope} needs no {req.evidence_kind} evidence under the pinned "
                f"policy (it needs: {', '.join(needed) or 'none'})",
            )
    elif req.kind == WaiverKind.SLA:
        assert req.gate is not None
        if gate_rule(pinned, req.gate) is None:
            raise PolicyViolation(
                Refusal.INVALID, f"requirement: {req.gate.value} is not a gate of this use case"
            )
    else:
        if view.stage not in (Stage.LIVE, Stage.SUSPENDED):
            raise PolicyViolation(
                Refusal.WRONG_STAGE,
                f"the periodic review is scheduled once the use case is live (stage "
                f"{view.stage.value})",
            )
        if view.open_gate is not None and view.open_gate.gate == Gate.PERIODIC_REVIEW:
            raise PolicyViolation(
                Refusal.WRONG_STAGE,
                "the periodic review is open: decide it, or ask for an exception to its SLA",
            )
        due = view.next_review_at
        if due is not None and cmd.expires_at <= due:
            raise PolicyViolation(
                Refusal.INVALID,
                f"expires_at: an exception to the periodic review moves it later than its date "
                f"({due:%Y-%m-%d %H:%M} UTC)",
            )


def check_waiver_request(
    view: UseCaseView, cmd: RequestWaiver, pinned: PinnedPolicy | None, now: datetime | None
) -> None:
    """An exception asked for on an open use case, to a requirement its pinned policy states,
    with a justification, expiring within the tier's maximum, not twice at once."""
    _check_open(view)
    if view.change is not None:
        raise PolicyViolation(
            Refusal.WRONG_STAGE, "exceptions are asked for on the use case, not a change"
        )
    rule = pinned.waivers if pinned is not None else None
    if pinned is None or rule is None:
        raise PolicyViolation(
            Refusal.INVALID, "the pinned policy grants no exceptions at this use case's tier"
        )
    if len(cmd.justification.strip()) < rule.justification_min_chars:
        raise PolicyViolation(
            Refusal.INVALID,
            f"justification: at least {rule.justification_min_chars} characters are required",
        )
    if now is None:
        raise ValueError("an exception's expiry is checked against the run's time")
    latest = now + timedelta(days=rule.max_days)
    if cmd.expires_at <= now:
        raise PolicyViolation(Refusal.INVALID, "expires_at: must be in the future")
    if cmd.expires_at > latest:
        raise PolicyViolation(
            Refusal.INVALID,
            f"expires_at: a {pinned.tier.value}-tier exception runs at most {rule.max_days} "
            f"days (until {latest:%Y-%m-%d %H:%M} UTC at the latest)",
        )
    _check_waived_requirement(view, cmd, pinned)
    held = [w for w in view.waivers if w.is_open]
    same = next((w for w in held if w.requirement == cmd.requirement), None)
    if same is not None:
        raise PolicyViolation(
            Refusal.WRONG_STAGE,
            f"an exception to {same.requirement.describe()} is already {same.status.value} "
            f"({same.id})",
        )
    if len(held) >= MAX_OPEN_WAIVERS:
        raise PolicyViolation(
            Refusal.OVER_LIMIT,
            f"the use case holds {len(held)} pending or granted exceptions (at most "
            f"{MAX_OPEN_WAIVERS})",
        )


def waiver_approvers(waiver: Waiver) -> list[str]:
    return [a.actor for a in waiver.approvals]


def check_waiver_decision(view: UseCaseView, cmd: DecideWaiver) -> None:
    """A grant fills an empty seat of a pending exception; a refusal says why. Its requester
    never decides it."""
    _check_open(view)
    waiver = next((w for w in view.waivers if w.id == cmd.waiver_id), None)
    if waiver is None:
        raise PolicyViolation(
            Refusal.GATE_NOT_OPEN, f"no exception {cmd.waiver_id} on this use case"
        )
    if cmd.actor not in waiver.eligible:
        if cmd.actor == waiver.requested_by:
            raise PolicyViolation(
                Refusal.NOT_ELIGIBLE, "whoever asked for an exception never decides it"
            )
        raise PolicyViolation(Refusal.NOT_ELIGIBLE, "not eligible to decide this exception")
    if waiver.status != WaiverStatus.PENDING:
        raise PolicyViolation(
            Refusal.GATE_NOT_OPEN,
            f"exception {waiver.id} is {waiver.status.value}: only a pending one is decided",
        )
    approvers = waiver_approvers(waiver)
    if cmd.actor in approvers:
        raise PolicyViolation(
            Refusal.ALREADY_DECIDED, f"{cmd.actor} already granted exception {waiver.id}"
        )
    if cmd.decision == WaiverVerdict.REFUSE and not cmd.comment.strip():
        raise PolicyViolation(Refusal.INVALID, "a comment is required to refuse an exception")
    seats = [set(s) for s in waiver.seats]
    if cmd.decision == WaiverVerdict.GRANT and max_matching(
        seats, [*approvers, cmd.actor]
    ) <= max_matching(seats, approvers):
        raise PolicyViolation(
            Refusal.ALREADY_DECIDED,
            f"the seats {cmd.actor} can fill on exception {waiver.id} are already taken",
        )


def waived_evidence(waivers: Iterable[Waiver], scope: str) -> set[str]:
    """The evidence kinds granted exceptions waive at ``scope`` (a work stage or a gate)."""
    return {
        w.requirement.evidence_kind
        for w in waivers
        if w.status == WaiverStatus.GRANTED
        and w.requirement.kind == WaiverKind.EVIDENCE
        and w.requirement.scope == scope
        and w.requirement.evidence_kind is not None
    }


def sla_waived(waivers: Iterable[Waiver], gate: Gate) -> bool:
    """A granted exception waives ``gate``'s SLA: no reminder, no escalation."""
    return any(
        w.status == WaiverStatus.GRANTED
        and w.requirement.kind == WaiverKind.SLA
        and w.requirement.gate == gate
        for w in waivers
    )


def resolve_deputies(
    deputies: Mapping[Role, list[DeputyIn]] | None, directory: Directory
) -> dict[Role, list[Deputy]]:
    """Deputies as a run holds them: ``group:NAME`` expanded, unknown people refused."""
    out: dict[Role, list[Deputy]] = {}
    for role, entries in (deputies or {}).items():
        resolved: dict[str, Deputy] = {}
        for i, entry in enumerate(entries):
            where = f"owners.deputies.{role.value}.{i}"
            if entry.who.startswith(GROUP_PREFIX):
                members = directory.members(entry.who[len(GROUP_PREFIX) :])
                if not members:
                    raise PolicyViolation(Refusal.INVALID, f"{where}: group has no members")
            elif directory.get(entry.who) is None:
                raise PolicyViolation(Refusal.INVALID, f"{where}: unknown person '{entry.who}'")
            else:
                members = [entry.who]
            for person in members:
                resolved[person] = Deputy(person=person, until=entry.until)
        out[role] = sorted(resolved.values(), key=lambda d: d.person)
    return out


def waiting_on(gate: OpenGate | None) -> list[str]:
    return (
        []
        if gate is None
        else [p for p in gate.eligible if p not in {a.actor for a in gate.approvals}]
    )


# --------------------------------------------------------------------------- loaders (I/O)


def _load_yaml(path: Path) -> tuple[Any, bytes]:
    import yaml

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return yaml.safe_load(raw), raw
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"{path}: not valid YAML ({exc})") from None


def _explain(path: Path, exc: ValidationError) -> ConfigFileError:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(document)"
        parts.append(f"{loc}: {err['msg']}")
    return ConfigFileError(f"{path}: " + "; ".join(parts))


def load_policy(path: str | Path) -> LoadedPolicy:
    p = Path(path)
    data, raw = _load_yaml(p)
    try:
        doc = PolicyDocument.model_validate(data)
    except ValidationError as exc:
        raise _explain(p, exc) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigFileError(f"{p}: must be UTF-8 text") from None
    return LoadedPolicy(
        document=doc, sha256=hashlib.sha256(raw).hexdigest(), text=text, path=str(p)
    )


def load_directory(path: str | Path) -> Directory:
    p = Path(path)
    data, _ = _load_yaml(p)
    try:
        doc = DirectoryDocument.model_validate(data)
    except ValidationError as exc:
        raise _explain(p, exc) from None
    return Directory(doc.people)
