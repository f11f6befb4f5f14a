"""Builders shared by the workflow tests."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

from workflows import policy
from workflows.model import (
    GENERATION,
    Evidence,
    Hooks,
    Owners,
    RiskTier,
    Role,
    RunLimits,
    UseCaseInput,
)

ROOT = Path(__file__).resolve().parents[2]
POLICY = policy.load_policy(ROOT / "config" / "policy.yaml")
DIRECTORY = policy.load_directory(ROOT / "config" / "directory.example.yaml")


def evidence(kind: str, content: str | None = None) -> Evidence:
    body = (content or f"{kind}-{uuid.uuid4()}").encode()
    return Evidence(
        kind=kind,
        name=f"{kind}.pdf",
        uri=f"https://docs.example.com/{kind}/{uuid.uuid4().hex[:8]}",
        sha256=hashlib.sha256(body).hexdigest(),
    )


def make_input(
    tier: RiskTier | str,
    *,
    key: str | None = None,
    risk_approvers: list[str] | None = None,
    delivery_lead: str = "dana",
    hooks: Hooks | None = None,
    continue_as_new_after: int = 10_000,
    limits: RunLimits | None = None,
) -> UseCaseInput:
    tier = RiskTier(tier)
    key = key or f"uc-{uuid.uuid4().hex[:10]}"
    owners = Owners(
        delivery_lead=delivery_lead,
        business_owner="bo",
        technical_owner="tom",
        operations_owner="olga",
        risk_approvers=risk_approvers or ["group:risk-committee"],
        escalation_owner="eve",
        stop_authority=["bo", "tom", "olga"],
    )
    roster = policy.resolve_roster(owners, DIRECTORY)
    pinned = POLICY.pin(tier)
    if pinned.break_glass is not None:  # as a start pins it (services.commands.start)
        roster[Role.BREAK_GLASS] = DIRECTORY.members(pinned.break_glass.group)
    if limits is not None:  # a test that sends more than the policy's per-run limits allow
        pinned = pinned.model_copy(update={"limits": limits})
    policy.check_staffing(pinned, roster)
    return UseCaseInput(
        key=key,
        title=f"Test use case {key}",
        summary="a use case under test",
        risk_tier=tier,
        owners=owners,
        roster=roster,
        policy=pinned,
        request_sha256="0" * 64,
        hooks=hooks,
        continue_as_new_after=continue_as_new_after,
        generation=GENERATION,  # as a front door starts it (services.commands.start)
    )


# Evidence each stage or gate needs, per tier (mirrors config/policy.yaml on purpose: the
# tests state the expected policy rather than reading it back from the code under test).
STAGE_EVIDENCE: dict[str, dict[str, list[str]]] = {
    "low": {"validation": ["evaluation_report"]},
    "medium": {"validation": ["evaluation_report"]},
    "high": {"validation": ["evaluation_report", "model_card", "dpia"]},
}
GATE_EVIDENCE: dict[str, dict[str, list[str]]] = {
    "low": {},
    "medium": {"risk_signoff": ["risk_assessment"], "ops_handoff": ["runbook"]},
    "high": {"risk_signoff": ["risk_assessment"], "ops_handoff": ["runbook", "monitoring_plan"]},
}
GATE_APPROVERS: dict[str, dict[str, list[str]]] = {
    "low": {"risk_signoff": ["rita"], "ops_handoff": ["olga"], "go_live": ["bo"]},
    "medium": {"risk_signoff": ["raj"], "ops_handoff": ["olga"], "go_live": ["bo"]},
    "high": {
        "scope_approval": ["bo", "rita"],
        "risk_signoff": ["rita", "raj"],
        "ops_handoff": ["olga"],
        "go_live": ["bo", "tom"],
    },
}


# The path each tier walks (stated here, not read back from the code under test).
EXPECTED_PATH: dict[str, list[str]] = {
    "low": [
        "scoping",
        "specification",
        "implementation",
        "validation",
        "risk_signoff",
        "ops_handoff",
        "go_live",
        "live",
    ],
    "medium": [
        "scoping",
        "specification",
        "implementation",
        "validation",
        "risk_signoff",
        "ops_handoff",
        "go_live",
        "live",
    ],
    "high": [
        "scoping",
        "scope_approval",
        "specification",
        "implementation",
        "validation",
        "risk_signoff",
        "ops_handoff",
        "go_live",
        "live",
    ],
}
