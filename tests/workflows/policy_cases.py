"""Shared builders and constants for the workflows.policy tests (not a test module).

The shipped policy and directory, the default cast of owners, and builders for run views, open
gates and commands. Expected values live with the tests that check them, written out from docs
(ARCHITECTURE.md "Stages and gates" and "Policy", CONTRACT.md) and the shipped config files,
never computed by the code under test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from workflows import policy
from workflows.model import (
    AddEvidence,
    Approval,
    CommandName,
    CompleteStage,
    Decision,
    Evidence,
    Gate,
    GateDecision,
    GateRule,
    OpenGate,
    Owners,
    PinnedPolicy,
    PolicyRef,
    RiskTier,
    Role,
    Stage,
    UseCaseView,
)

ROOT = Path(__file__).resolve().parents[2]
POLICY_FILE = ROOT / "config" / "policy.yaml"
DIRECTORY_FILE = ROOT / "config" / "directory.example.yaml"

POLICY = policy.load_policy(POLICY_FILE)
DIRECTORY = policy.load_directory(DIRECTORY_FILE)

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- the shipped policy

TIERS = ("low", "medium", "high")


def pinned(tier: str) -> PinnedPolicy:
    return POLICY.pin(RiskTier(tier))


def rule_for(tier: str, gate: str) -> GateRule:
    rule = policy.gate_rule(pinned(tier), Gate(gate))
    assert rule is not None, f"{tier} has no rule for {gate}"
    return rule


# --------------------------------------------------------------------------- people

DEFAULT_OWNERS: dict[str, Any] = {
    "delivery_lead": "dana",
    "business_owner": "bo",
    "technical_owner": "tom",
    "operations_owner": "olga",
    "risk_approvers": ["group:risk-committee"],
    "escalation_owner": "eve",
    "stop_authority": ["bo", "tom", "olga"],
}


def owners(**changes: Any) -> Owners:
    return Owners(**{**DEFAULT_OWNERS, **changes})


def roster(**changes: Any) -> dict[Role, list[str]]:
    return policy.resolve_roster(owners(**changes), DIRECTORY)


# --------------------------------------------------------------------------- runs and commands


def make_gate(
    gate: str,
    *,
    eligible: list[str] | None = None,
    approvals: Sequence[str] = (),
    digests: Sequence[str] = (),
    required: Sequence[str] = (),
) -> OpenGate:
    return OpenGate(
        gate=Gate(gate),
        eligible=["raj", "rita"] if eligible is None else eligible,
        quorum=2,
        approvals=[Approval(actor=a, at=T0) for a in approvals],
        opened_at=T0,
        due_at=T0 + timedelta(hours=72),
        round=1,
        evidence_digests=list(digests),
        required_evidence=list(required),
    )


def make_view(
    stage: str,
    *,
    open_gate: OpenGate | None = None,
    closed: bool = False,
    required: Sequence[str] = (),
    tier: str = "high",
) -> UseCaseView:
    return UseCaseView(
        id="usecase-kyc-onboarding",
        key="kyc-onboarding",
        title="KYC onboarding assistant",
        summary="",
        risk_tier=RiskTier(tier),
        stage=Stage(stage),
        closed=closed,
        round=1,
        owners=owners(),
        open_gate=open_gate,
        required_evidence=list(required),
        evidence=[],
        policy=PolicyRef(version=POLICY.version, sha256=POLICY.sha256),
        stage_entered_at=T0,
        started_at=T0,
        updated_at=T0,
        event_count=3,
    )


def check(command: CommandName, view: UseCaseView, cmd: Any) -> None:
    """The whole check a validator runs: authorization from the pinned roster, then state."""
    policy.check_command(command, view, cmd, roster())


def risk_view(**gate_kwargs: Any) -> UseCaseView:
    return make_view("risk_signoff", open_gate=make_gate("risk_signoff", **gate_kwargs))


def ev(kind: str) -> Evidence:
    return Evidence(kind=kind, name=f"{kind}.pdf", uri=f"s3://bucket/{kind}", sha256=digest(kind))


def decision(
    actor: str,
    gate: str = "risk_signoff",
    what: Decision = Decision.APPROVE,
    comment: str = "",
    digests: list[str] | None = None,
) -> GateDecision:
    return GateDecision(
        actor=actor, gate=Gate(gate), decision=what, comment=comment, evidence_digests=digests
    )


def complete(actor: str, stage: str, kinds: Sequence[str] = ()) -> CompleteStage:
    return CompleteStage(actor=actor, stage=Stage(stage), evidence=[ev(k) for k in kinds])


def add(actor: str) -> AddEvidence:
    return AddEvidence(actor=actor, evidence=[ev("risk_assessment")])
