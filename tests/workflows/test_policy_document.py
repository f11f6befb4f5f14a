"""workflows.policy: the shipped policy document, and loading and validating policy files.

Expected values are written out from docs (ARCHITECTURE.md "Stages and gates" and "Policy",
CONTRACT.md) and the shipped config file, never computed by the code under test.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.workflows.policy_cases import POLICY, POLICY_FILE, TIERS, pinned, rule_for
from workflows import policy
from workflows.model import RiskTier, Stage
from workflows.policy import ConfigFileError

# --------------------------------------------------------------------------- expected policy

EXPECTED_GATES: dict[str, list[str]] = {
    "low": ["risk_signoff", "ops_handoff", "go_live"],
    "medium": ["risk_signoff", "ops_handoff", "go_live"],
    "high": ["scope_approval", "risk_signoff", "ops_handoff", "go_live"],
}

# (role, count) per gate, in the file's order
EXPECTED_DECIDERS: dict[str, dict[str, list[tuple[str, int]]]] = {
    "low": {
        "risk_signoff": [("risk_approver", 1)],
        "ops_handoff": [("operations_owner", 1)],
        "go_live": [("business_owner", 1)],
    },
    "medium": {
        "risk_signoff": [("risk_approver", 1)],
        "ops_handoff": [("operations_owner", 1)],
        "go_live": [("business_owner", 1)],
    },
    "high": {
        "scope_approval": [("business_owner", 1), ("risk_approver", 1)],
        "risk_signoff": [("risk_approver", 2)],
        "ops_handoff": [("operations_owner", 1)],
        "go_live": [("business_owner", 1), ("technical_owner", 1)],
    },
}

EXPECTED_QUORUM: dict[str, dict[str, int]] = {
    "low": {"risk_signoff": 1, "ops_handoff": 1, "go_live": 1},
    "medium": {"risk_signoff": 1, "ops_handoff": 1, "go_live": 1},
    "high": {"scope_approval": 2, "risk_signoff": 2, "ops_handoff": 1, "go_live": 2},
}

EXPECTED_STAGE_EVIDENCE: dict[str, dict[str, list[str]]] = {
    "low": {"validation": ["evaluation_report"]},
    "medium": {"validation": ["evaluation_report"]},
    "high": {"validation": ["evaluation_report", "model_card", "dpia"]},
}

EXPECTED_GATE_EVIDENCE: dict[str, dict[str, list[str]]] = {
    "low": {"risk_signoff": [], "ops_handoff": [], "go_live": []},
    "medium": {"risk_signoff": ["risk_assessment"], "ops_handoff": ["runbook"], "go_live": []},
    "high": {
        "scope_approval": [],
        "risk_signoff": ["risk_assessment"],
        "ops_handoff": ["runbook", "monitoring_plan"],
        "go_live": [],
    },
}

EXPECTED_REVIEW_DAYS = {"low": 365, "medium": 180, "high": 90}


# --------------------------------------------------------------------------- load_policy


def test_shipped_policy_version_and_hash() -> None:
    raw = POLICY_FILE.read_bytes()
    assert POLICY.version == "2026.3"
    assert POLICY.sha256 == hashlib.sha256(raw).hexdigest()
    assert POLICY.text == raw.decode()
    assert POLICY.path == str(POLICY_FILE)


def test_shipped_policy_has_exactly_three_tiers() -> None:
    assert set(POLICY.document.tiers) == {RiskTier.LOW, RiskTier.MEDIUM, RiskTier.HIGH}


@pytest.mark.parametrize("tier", TIERS)
def test_shipped_policy_gates_in_order(tier: str) -> None:
    assert [g.gate.value for g in POLICY.document.tiers[RiskTier(tier)].gates] == (
        EXPECTED_GATES[tier]
    )


@pytest.mark.parametrize(("tier", "gate"), [(t, g) for t in TIERS for g in EXPECTED_GATES[t]])
def test_shipped_policy_deciders_and_quorum(tier: str, gate: str) -> None:
    rule = rule_for(tier, gate)
    assert [(r.role.value, r.count) for r in rule.deciders] == EXPECTED_DECIDERS[tier][gate]
    assert rule.quorum == EXPECTED_QUORUM[tier][gate]


@pytest.mark.parametrize(("tier", "gate"), [(t, g) for t in TIERS for g in EXPECTED_GATES[t]])
def test_shipped_policy_gate_evidence(tier: str, gate: str) -> None:
    assert rule_for(tier, gate).evidence == EXPECTED_GATE_EVIDENCE[tier][gate]
    assert policy.required_kinds(pinned(tier), Stage(gate)) == EXPECTED_GATE_EVIDENCE[tier][gate]


@pytest.mark.parametrize(
    ("tier", "stage"),
    [(t, s) for t in TIERS for s in ("scoping", "specification", "implementation", "validation")],
)
def test_shipped_policy_stage_evidence(tier: str, stage: str) -> None:
    expected = EXPECTED_STAGE_EVIDENCE[tier].get(stage, [])
    assert policy.required_kinds(pinned(tier), Stage(stage)) == expected


@pytest.mark.parametrize("tier", TIERS)
def test_shipped_policy_stage_evidence_table(tier: str) -> None:
    evidence = POLICY.document.tiers[RiskTier(tier)].evidence
    assert {s.value: kinds for s, kinds in evidence.items()} == EXPECTED_STAGE_EVIDENCE[tier]


@pytest.mark.parametrize(("tier", "days"), EXPECTED_REVIEW_DAYS.items())
def test_shipped_policy_review_period(tier: str, days: int) -> None:
    assert POLICY.document.tiers[RiskTier(tier)].review_period_days == days


@pytest.mark.parametrize(
    ("gate", "deciders"),
    [
        ("resume_approval", [("risk_approver", 1), ("business_owner", 1)]),
        ("change_approval", [("technical_owner", 1)]),
        ("periodic_review", [("business_owner", 1), ("risk_approver", 1)]),
    ],
)
def test_shipped_policy_live_gates(gate: str, deciders: list[tuple[str, int]]) -> None:
    rule = rule_for("low", gate)
    assert [(r.role.value, r.count) for r in rule.deciders] == deciders
    assert POLICY.document.live.sev1_suspends is True


@pytest.mark.parametrize("tier", TIERS)
def test_pin_carries_version_hash_and_tier_rules(tier: str) -> None:
    pin = pinned(tier)
    assert (pin.version, pin.sha256, pin.tier) == (POLICY.version, POLICY.sha256, RiskTier(tier))
    assert pin.rules == POLICY.document.tiers[RiskTier(tier)]
    assert pin.live == POLICY.document.live


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ("live", []),
        ("suspended", []),
        ("stalled", []),
        ("rejected", []),
    ],
)
def test_required_kinds_outside_stages_and_gates(stage: str, expected: list[str]) -> None:
    assert policy.required_kinds(pinned("high"), Stage(stage)) == expected


def shipped_policy_data() -> dict[str, Any]:
    return yaml.safe_load(POLICY_FILE.read_bytes())


def _gates(data: dict[str, Any], tier: str) -> list[dict[str, Any]]:
    return data["tiers"][tier]["gates"]


def _reorder(tier: str, order: list[str]) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        by_name = {g["gate"]: g for g in _gates(data, tier)}
        data["tiers"][tier]["gates"] = [by_name[name] for name in order]

    return mutate


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set a dotted path (list indexes as numbers) in the policy data."""

    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]

    return mutate


def _duplicate_gate(data: dict[str, Any]) -> None:
    gates = _gates(data, "medium")
    gates.insert(0, copy.deepcopy(gates[0]))


INVALID_POLICIES = [
    pytest.param(_delete("tiers.high"), ["tiers", "high"], id="missing-tier"),
    pytest.param(_delete("version"), ["version"], id="missing-version"),
    pytest.param(
        _set("tiers.low.gates.0.gate", "deploy_gate"), ["tiers.low.gates.0.gate"], id="unknown-gate"
    ),
    pytest.param(
        _set("tiers.low.gates.0.gate", "change_approval"),
        ["tiers.low.gates", "change_approval"],
        id="live-gate-in-tier",
    ),
    pytest.param(
        _reorder("low", ["risk_signoff", "go_live", "ops_handoff"]),
        ["tiers.low.gates", "go_live"],
        id="go-live-not-last",
    ),
    pytest.param(
        _reorder("high", ["risk_signoff", "scope_approval", "ops_handoff", "go_live"]),
        ["tiers.high.gates", "scope_approval"],
        id="scope-approval-not-first",
    ),
    pytest.param(_duplicate_gate, ["tiers.medium.gates", "twice"], id="gate-listed-twice"),
    pytest.param(
        _set("tiers.high.gates.0.rework_stage", "implementation"),
        ["scope_approval", "rework_stage"],
        id="scope-approval-rework-not-scoping",
    ),
    pytest.param(
        _set("tiers.low.gates.0.rework_stage", "live"),
        ["tiers.low.gates.0.rework_stage"],
        id="rework-not-a-work-stage",
    ),
    pytest.param(_set("colour", "blue"), ["colour"], id="unknown-top-level-key"),
    pytest.param(
        _set("tiers.low.gates.1.approvers", ["olga"]),
        ["tiers.low.gates.1.approvers"],
        id="unknown-gate-key",
    ),
    pytest.param(
        _set("tiers.medium.gates.0.sla_hours", -4),
        ["tiers.medium.gates.0.sla_hours"],
        id="negative-sla",
    ),
    pytest.param(
        _set("tiers.medium.gates.0.sla_hours", 0), ["tiers.medium.gates.0.sla_hours"], id="zero-sla"
    ),
    pytest.param(
        _set("tiers.high.gates.1.expire_after_hours", -1),
        ["tiers.high.gates.1.expire_after_hours"],
        id="negative-expiry",
    ),
    pytest.param(
        _set("tiers.high.gates.1.deciders.0.count", 0),
        ["tiers.high.gates.1.deciders.0.count"],
        id="zero-quorum-count",
    ),
    pytest.param(
        _set("tiers.low.gates.0.deciders.0.role", "auditor"),
        ["tiers.low.gates.0.deciders.0.role"],
        id="unknown-role",
    ),
    pytest.param(
        _set("tiers.low.gates.0.deciders", []), ["tiers.low.gates.0.deciders"], id="no-deciders"
    ),
    pytest.param(
        _set("tiers.low.evidence.live", ["dashboard"]),
        ["tiers.low.evidence", "live"],
        id="evidence-at-non-work-stage",
    ),
    pytest.param(
        _set("tiers.low.evidence.validation", ["Evaluation Report"]),
        ["tiers.low.evidence.validation.0"],
        id="bad-evidence-kind",
    ),
    pytest.param(
        _set("tiers.high.review_period_days", -90),
        ["tiers.high.review_period_days"],
        id="negative-review-period",
    ),
    pytest.param(_set("tiers.low.gates", []), ["tiers.low.gates"], id="no-gates"),
    pytest.param(_set("tiers.urgent", {}), ["tiers.urgent"], id="unknown-tier"),
    pytest.param(
        _set("live.gates.0.gate", "risk_signoff"), ["live.gates", "risk_signoff"], id="live-gate"
    ),
]


@pytest.mark.parametrize(("mutate", "fragments"), INVALID_POLICIES)
def test_invalid_policy_names_file_and_field(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], fragments: list[str]
) -> None:
    data = shipped_policy_data()
    mutate(data)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigFileError) as info:
        policy.load_policy(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        pytest.param(
            b"version: '1'\ntiers: [unclosed\n", ["not valid YAML", "line"], id="bad-yaml"
        ),
        pytest.param(b"\tversion: 1\n", ["not valid YAML"], id="tab-indent"),
        pytest.param(b"", ["(document)"], id="empty-file"),
        pytest.param(b"- a\n- b\n", ["(document)"], id="a-list"),
        pytest.param(b"version: '1'\n", ["tiers"], id="no-tiers"),
    ],
)
def test_unusable_policy_file(tmp_path: Path, content: bytes, fragments: list[str]) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigFileError) as info:
        policy.load_policy(path)
    assert str(path) in str(info.value)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_missing_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigFileError, match="cannot read") as info:
        policy.load_policy(path)
    assert str(path) in str(info.value)


def test_valid_policy_edit_loads_with_its_own_hash(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    text = POLICY_FILE.read_text().replace("review_period_days: 90", "review_period_days: 30")
    path.write_text(text)
    loaded = policy.load_policy(path)
    assert loaded.document.tiers[RiskTier.HIGH].review_period_days == 30
    assert loaded.sha256 == hashlib.sha256(text.encode()).hexdigest() != POLICY.sha256


def test_unquoted_version_is_refused(tmp_path: Path) -> None:
    """YAML reads 2026.10 as the float 2026.1: the loader refuses instead of pinning that."""
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY_FILE.read_text().replace('version: "2026.3"', "version: 2026.10"))
    with pytest.raises(ConfigFileError, match="version") as info:
        policy.load_policy(path)
    assert str(path) in str(info.value)


def test_non_utf8_policy_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(POLICY_FILE.read_text().encode("utf-16"))
    with pytest.raises(ConfigFileError):
        policy.load_policy(path)
