"""workflows.policy: the pure governance rules, table by table.

Expected values are written out from docs (ARCHITECTURE.md "Stages and gates" and "Policy",
CONTRACT.md) and the shipped config files, never computed by the code under test.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.workflows.helpers import EXPECTED_PATH
from workflows import policy
from workflows.model import (
    AddEvidence,
    Approval,
    Cancel,
    CommandName,
    CompleteStage,
    Decision,
    Evidence,
    EvidenceRecord,
    Gate,
    GateDecision,
    GateRule,
    OpenGate,
    Owners,
    PinnedPolicy,
    PolicyRef,
    Refusal,
    Requirement,
    RiskTier,
    Role,
    Stage,
    UseCaseView,
)
from workflows.policy import ConfigFileError, PolicyViolation

ROOT = Path(__file__).resolve().parents[2]
POLICY_FILE = ROOT / "config" / "policy.yaml"
DIRECTORY_FILE = ROOT / "config" / "directory.example.yaml"

POLICY = policy.load_policy(POLICY_FILE)
DIRECTORY = policy.load_directory(DIRECTORY_FILE)

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


D1, D2, D3 = digest("one"), digest("two"), digest("three")


# --------------------------------------------------------------------------- expected policy

TIERS = ("low", "medium", "high")

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


# Who plays which part in the default roster; "outsider" holds no role at all.
CAST = {
    "delivery_lead": "dana",
    "business_owner": "bo",
    "technical_owner": "tom",
    "operations_owner": "olga",
    "risk_approver:rita": "rita",
    "risk_approver:raj": "raj",
    "escalation_owner": "eve",
    "outsider": "sam",
}

RISK = {"risk_approver:rita", "risk_approver:raj"}

# The ARCHITECTURE table, after separation of duties: which parts may decide each gate.
EXPECTED_ELIGIBLE_PARTS: dict[str, dict[str, set[str]]] = {
    "low": {
        "risk_signoff": RISK,
        "ops_handoff": {"operations_owner"},
        "go_live": {"business_owner"},
    },
    "medium": {
        "risk_signoff": RISK,
        "ops_handoff": {"operations_owner"},
        "go_live": {"business_owner"},
    },
    "high": {
        "scope_approval": {"business_owner"} | RISK,
        "risk_signoff": RISK,
        "ops_handoff": {"operations_owner"},
        "go_live": {"business_owner", "technical_owner"},
    },
}

# Live gates are shared by every tier (CONTRACT: resume needs risk + business; a minor change
# is approved by the technical owner; periodic review by business + risk).
EXPECTED_LIVE_ELIGIBLE_PARTS: dict[str, set[str]] = {
    "resume_approval": {"business_owner"} | RISK,
    "change_approval": {"technical_owner"},
    "periodic_review": {"business_owner"} | RISK,
}

ELIGIBILITY_CASES = [
    pytest.param(tier, gate, part, part in parts, id=f"{tier}-{gate}-{part}")
    for tier in TIERS
    for gate, parts in {**EXPECTED_ELIGIBLE_PARTS[tier], **EXPECTED_LIVE_ELIGIBLE_PARTS}.items()
    for part in CAST
]


# --------------------------------------------------------------------------- load_policy


def test_shipped_policy_version_and_hash() -> None:
    raw = POLICY_FILE.read_bytes()
    assert POLICY.version == "2026.1"
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
    path.write_text(POLICY_FILE.read_text().replace('version: "2026.1"', "version: 2026.10"))
    with pytest.raises(ConfigFileError, match="version") as info:
        policy.load_policy(path)
    assert str(path) in str(info.value)


def test_non_utf8_policy_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(POLICY_FILE.read_text().encode("utf-16"))
    with pytest.raises(ConfigFileError):
        policy.load_policy(path)


# --------------------------------------------------------------------------- load_directory


def test_shipped_directory() -> None:
    people = DIRECTORY.people
    assert len(people) >= 10
    assert {"dana", "tom", "bo", "olga", "rita", "raj", "eve", "sam", "priya", "lee"} <= set(people)
    assert DIRECTORY.members("risk-committee") == ["raj", "rita"]
    assert DIRECTORY.members("model-risk") == ["carla", "omar"]
    assert DIRECTORY.members("nobody-here") == []
    for person in people.values():
        assert person.slack_user_id, person.id
        assert person.token, person.id


@pytest.mark.parametrize(
    ("lookup", "expected"),
    [
        (lambda d: d.by_token("dev-rita"), "rita"),
        (lambda d: d.by_token("dev-nobody"), None),
        (lambda d: d.by_slack("U01RAJ"), "raj"),
        (lambda d: d.by_slack("U0NOPE"), None),
        (lambda d: d.by_email("bo@example.com"), "bo"),
        (lambda d: d.by_email("BO@Example.COM"), "bo"),
        (lambda d: d.by_email("nobody@example.com"), None),
        (lambda d: d.get("olga"), "olga"),
        (lambda d: d.get("ghost"), None),
    ],
)
def test_directory_lookups(lookup: Callable[[policy.Directory], Any], expected: str | None) -> None:
    found = lookup(DIRECTORY)
    assert (found.id if found else None) == expected


def person(pid: str, **changes: Any) -> dict[str, Any]:
    base = {
        "id": pid,
        "name": pid.title(),
        "email": f"{pid}@example.com",
        "slack_user_id": f"U{pid.upper()}",
        "groups": [],
        "token": f"dev-{pid}",
    }
    return {k: v for k, v in {**base, **changes}.items() if v is not ...}


INVALID_DIRECTORIES = [
    pytest.param(
        [person("ann"), person("ann", email="ann2@example.com")],
        ["people.1.id", "duplicate"],
        id="dup-id",
    ),
    pytest.param(
        [person("ann"), person("ben", token="dev-ann")],
        ["people.1.token", "duplicate"],
        id="dup-token",
    ),
    pytest.param(
        [person("ann"), person("ben", email="ann@example.com")],
        ["people.1.email", "duplicate"],
        id="dup-email",
    ),
    pytest.param(
        [person("ann"), person("ben", slack_user_id="UANN")],
        ["people.1.slack_user_id", "duplicate"],
        id="dup-slack",
    ),
    pytest.param([person("ann", email=...)], ["people.0.email"], id="missing-email"),
    pytest.param([person("ann", email="not-an-email")], ["people.0.email"], id="bad-email"),
    pytest.param([person("ann", name=...)], ["people.0.name"], id="missing-name"),
    pytest.param([person("ann", id="ann smith")], ["people.0.id"], id="bad-id"),
    pytest.param([person("ann", token="dev")], ["people.0.token"], id="short-token"),
    pytest.param([person("ann", team="x")], ["people.0.team"], id="unknown-key"),
    pytest.param([], ["people"], id="nobody"),
]


@pytest.mark.parametrize(("people", "fragments"), INVALID_DIRECTORIES)
def test_invalid_directory_names_file_and_field(
    tmp_path: Path, people: list[dict[str, Any]], fragments: list[str]
) -> None:
    path = tmp_path / "directory.yaml"
    path.write_text(yaml.safe_dump({"people": people}))
    with pytest.raises(ConfigFileError) as info:
        policy.load_directory(path)
    assert str(path) in str(info.value)
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        pytest.param(b"people: [ {id: ann\n", "not valid YAML", id="bad-yaml"),
        pytest.param(b"", "(document)", id="empty"),
        pytest.param(b"persons: []\n", "persons", id="wrong-key"),
    ],
)
def test_unusable_directory_file(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "directory.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigFileError) as info:
        policy.load_directory(path)
    assert str(path) in str(info.value)
    assert fragment in str(info.value)


def test_missing_directory_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(ConfigFileError, match="cannot read") as info:
        policy.load_directory(path)
    assert str(path) in str(info.value)


def test_emails_differing_only_in_case_are_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "directory.yaml"
    people = [person("ann"), person("ben", email="ANN@example.com")]
    path.write_text(yaml.safe_dump({"people": people}))
    with pytest.raises(ConfigFileError, match="email"):
        policy.load_directory(path)


# --------------------------------------------------------------------------- stage_path


@pytest.mark.parametrize("tier", TIERS)
def test_stage_path(tier: str) -> None:
    path = policy.stage_path(POLICY.document.tiers[RiskTier(tier)])
    assert [s.value for s in path] == EXPECTED_PATH[tier]


@pytest.mark.parametrize(
    ("tier", "current", "expected"),
    [
        ("low", "validation", "risk_signoff"),
        ("low", "go_live", "live"),
        ("high", "scoping", "scope_approval"),
        ("high", "scope_approval", "specification"),
        ("high", "risk_signoff", "ops_handoff"),
        ("medium", "scoping", "specification"),
    ],
)
def test_next_stage(tier: str, current: str, expected: str) -> None:
    path = policy.stage_path(POLICY.document.tiers[RiskTier(tier)])
    assert policy.next_stage(path, Stage(current)) == Stage(expected)


# --------------------------------------------------------------------------- resolve_roster


def test_resolve_default_roster() -> None:
    assert roster() == {
        Role.DELIVERY_LEAD: ["dana"],
        Role.BUSINESS_OWNER: ["bo"],
        Role.TECHNICAL_OWNER: ["tom"],
        Role.OPERATIONS_OWNER: ["olga"],
        Role.RISK_APPROVER: ["raj", "rita"],
        Role.ESCALATION_OWNER: ["eve"],
        Role.STOP_AUTHORITY: ["bo", "olga", "tom"],
    }


@pytest.mark.parametrize(
    ("risk_approvers", "expected"),
    [
        (["group:risk-committee"], ["raj", "rita"]),
        (["rita"], ["rita"]),
        (["group:model-risk"], ["carla", "omar"]),
        (["omar", "group:risk-committee", "carla"], ["carla", "omar", "raj", "rita"]),
        (["rita", "group:risk-committee", "raj"], ["raj", "rita"]),
        (["group:model-risk", "group:risk-committee"], ["carla", "omar", "raj", "rita"]),
    ],
)
def test_resolve_risk_approvers_expands_groups_sorted(
    risk_approvers: list[str], expected: list[str]
) -> None:
    assert roster(risk_approvers=risk_approvers)[Role.RISK_APPROVER] == expected


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"delivery_lead": "ghost"}, "owners.delivery_lead"),
        ({"business_owner": "ghost"}, "owners.business_owner"),
        ({"technical_owner": "ghost"}, "owners.technical_owner"),
        ({"operations_owner": "ghost"}, "owners.operations_owner"),
        ({"escalation_owner": "ghost"}, "owners.escalation_owner"),
        ({"risk_approvers": ["rita", "ghost"]}, "owners.risk_approvers.1"),
        ({"stop_authority": ["bo", "ghost"]}, "owners.stop_authority.1"),
    ],
)
def test_resolve_unknown_person_is_invalid(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(PolicyViolation) as info:
        roster(**changes)
    assert info.value.refusal == Refusal.INVALID
    assert field in info.value.detail
    assert "ghost" in info.value.detail


@pytest.mark.parametrize(
    ("risk_approvers", "field", "group"),
    [
        (["group:nobody-here"], "owners.risk_approvers.0", "nobody-here"),
        (["rita", "group:ghosts"], "owners.risk_approvers.1", "ghosts"),
    ],
)
def test_resolve_empty_group_is_invalid(risk_approvers: list[str], field: str, group: str) -> None:
    with pytest.raises(PolicyViolation) as info:
        roster(risk_approvers=risk_approvers)
    assert info.value.refusal == Refusal.INVALID
    assert field in info.value.detail
    assert group in info.value.detail


# --------------------------------------------------------------------------- eligibility


@pytest.mark.parametrize(("tier", "gate", "part", "expected"), ELIGIBILITY_CASES)
def test_eligibility_matrix(tier: str, gate: str, part: str, expected: bool) -> None:
    r = roster()
    rule = rule_for(tier, gate)
    people = policy.eligible(rule, r, policy.excluded_from_gate(Gate(gate), r))
    assert (CAST[part] in people) is expected


@pytest.mark.parametrize(
    ("tier", "gate", "expected"),
    [
        ("low", "risk_signoff", ["raj", "rita"]),
        ("low", "ops_handoff", ["olga"]),
        ("low", "go_live", ["bo"]),
        ("high", "scope_approval", ["bo", "raj", "rita"]),
        ("high", "risk_signoff", ["raj", "rita"]),
        ("high", "go_live", ["bo", "tom"]),
        ("high", "resume_approval", ["bo", "raj", "rita"]),
    ],
)
def test_eligible_is_sorted_and_distinct(tier: str, gate: str, expected: list[str]) -> None:
    r = roster()
    rule = rule_for(tier, gate)
    assert policy.eligible(rule, r, policy.excluded_from_gate(Gate(gate), r)) == expected


@pytest.mark.parametrize(
    ("gate", "kwargs", "expected"),
    [
        ("risk_signoff", {}, {"dana", "tom"}),
        ("risk_signoff", {"validation_completed_by": "rita"}, {"dana", "tom", "rita"}),
        ("risk_signoff", {"validation_completed_by": "dana"}, {"dana", "tom"}),
        ("scope_approval", {}, set()),
        ("ops_handoff", {"validation_completed_by": "olga"}, set()),
        ("go_live", {}, set()),
        ("resume_approval", {}, set()),
        ("periodic_review", {}, set()),
        ("change_approval", {}, set()),
        ("change_approval", {"change_raised_by": "dana"}, {"dana"}),
        ("change_approval", {"change_raised_by": "tom"}, {"tom"}),
    ],
)
def test_excluded_from_gate(gate: str, kwargs: dict[str, str], expected: set[str]) -> None:
    assert policy.excluded_from_gate(Gate(gate), roster(), **kwargs) == expected


# --------------------------------------------------------------------------- separation of duties


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("insider", ["dana", "tom"])
def test_delivery_never_eligible_for_risk_signoff_even_as_risk_approver(
    tier: str, insider: str
) -> None:
    r = roster(risk_approvers=[insider, "rita", "raj"])
    assert insider in r[Role.RISK_APPROVER]
    excluded = policy.excluded_from_gate(Gate.RISK_SIGNOFF, r)
    rule = rule_for(tier, "risk_signoff")
    assert policy.eligible(rule, r, excluded) == ["raj", "rita"]
    assert not policy.quorum_met(rule, r, excluded, [insider])
    assert not policy.approval_counts(rule, r, excluded, [], insider)


@pytest.mark.parametrize("tier", TIERS)
def test_validation_completer_excluded_from_risk_signoff(tier: str) -> None:
    r = roster(risk_approvers=["rita", "raj", "carla"])
    excluded = policy.excluded_from_gate(Gate.RISK_SIGNOFF, r, validation_completed_by="rita")
    rule = rule_for(tier, "risk_signoff")
    assert "rita" not in policy.eligible(rule, r, excluded)
    assert policy.eligible(rule, r, excluded) == ["carla", "raj"]
    assert not policy.approval_counts(rule, r, excluded, [], "rita")


@pytest.mark.parametrize(
    ("raised_by", "expected_eligible"),
    [
        ("dana", ["tom"]),  # delivery lead raised it: the technical owner approves
        ("bo", ["tom"]),
        ("tom", ["bo"]),  # technical owner raised it: the business owner approves instead
    ],
)
def test_change_approval_never_by_its_raiser(raised_by: str, expected_eligible: list[str]) -> None:
    r = roster()
    rule = rule_for("medium", "change_approval")
    excluded = policy.excluded_from_gate(Gate.CHANGE_APPROVAL, r, change_raised_by=raised_by)
    people = policy.eligible(rule, r, excluded, change_raised_by=raised_by)
    assert people == expected_eligible
    assert raised_by not in people
    assert not policy.quorum_met(rule, r, excluded, [raised_by], change_raised_by=raised_by)
    assert policy.quorum_met(rule, r, excluded, expected_eligible, change_raised_by=raised_by)


def test_minor_change_by_technical_owner_is_approved_by_business_owner() -> None:
    r = roster()
    rule = rule_for("high", "change_approval")
    excluded = policy.excluded_from_gate(Gate.CHANGE_APPROVAL, r, change_raised_by="tom")
    kw = {"change_raised_by": "tom"}
    assert policy.pending_approvers(rule, r, excluded, [], **kw) == ["bo"]
    assert policy.approval_counts(rule, r, excluded, [], "bo", **kw)
    assert not policy.approval_counts(rule, r, excluded, [], "tom", **kw)
    assert policy.quorum_met(rule, r, excluded, ["tom", "bo"], **kw)
    assert policy.pending_approvers(rule, r, excluded, ["bo"], **kw) == []


# --------------------------------------------------------------------------- quorum

QUORUM_CASES = [
    # low / medium risk_signoff: one risk approver, never delivery
    ("low", "risk_signoff", [], False),
    ("low", "risk_signoff", ["rita"], True),
    ("low", "risk_signoff", ["dana"], False),
    ("low", "risk_signoff", ["tom"], False),
    ("low", "risk_signoff", ["eve", "sam", "bo"], False),
    ("medium", "risk_signoff", ["raj"], True),
    ("medium", "ops_handoff", ["olga"], True),
    ("medium", "ops_handoff", ["sam"], False),
    ("medium", "go_live", ["bo"], True),
    ("medium", "go_live", ["tom"], False),
    # high risk_signoff: two distinct risk approvers
    ("high", "risk_signoff", ["rita"], False),
    ("high", "risk_signoff", ["rita", "rita"], False),
    ("high", "risk_signoff", ["rita", "rita", "rita"], False),
    ("high", "risk_signoff", ["rita", "raj"], True),
    ("high", "risk_signoff", ["raj", "rita"], True),
    ("high", "risk_signoff", ["rita", "tom"], False),
    ("high", "risk_signoff", ["raj", "dana"], False),
    ("high", "risk_signoff", ["rita", "bo"], False),
    # high scope_approval: the business owner AND a risk approver
    ("high", "scope_approval", ["bo"], False),
    ("high", "scope_approval", ["rita"], False),
    ("high", "scope_approval", ["rita", "raj"], False),
    ("high", "scope_approval", ["bo", "bo"], False),
    ("high", "scope_approval", ["bo", "rita"], True),
    ("high", "scope_approval", ["raj", "bo"], True),
    ("high", "scope_approval", ["bo", "dana"], False),
    # high go_live: business owner AND technical owner
    ("high", "go_live", ["bo", "tom"], True),
    ("high", "go_live", ["bo"], False),
    ("high", "go_live", ["tom", "tom"], False),
    ("high", "go_live", ["bo", "dana"], False),
    # live: resume needs risk + business
    ("low", "resume_approval", ["rita", "bo"], True),
    ("low", "resume_approval", ["rita", "raj"], False),
    ("low", "resume_approval", ["bo"], False),
]


@pytest.mark.parametrize(("tier", "gate", "approvers", "expected"), QUORUM_CASES)
def test_quorum_met(tier: str, gate: str, approvers: list[str], expected: bool) -> None:
    r = roster()
    rule = rule_for(tier, gate)
    excluded = policy.excluded_from_gate(Gate(gate), r)
    assert policy.quorum_met(rule, r, excluded, approvers) is expected


@pytest.mark.parametrize(
    ("gate", "risk_approvers", "approvers", "expected"),
    [
        # bo is business owner and risk approver: one person, one seat
        ("scope_approval", ["bo", "rita"], ["bo"], False),
        ("scope_approval", ["bo", "rita"], ["bo", "bo"], False),
        ("scope_approval", ["bo", "rita"], ["bo", "rita"], True),
        ("scope_approval", ["bo", "rita"], ["rita", "bo"], True),
        # seat order differs here (risk first): bo must move to the business seat for rita
        ("resume_approval", ["bo", "rita"], ["bo", "rita"], True),
        ("resume_approval", ["bo", "rita"], ["bo"], False),
        ("periodic_review", ["bo", "rita"], ["bo"], False),
        # tom holds technical owner and risk approver: still one seat at go_live
        ("go_live", ["tom", "rita"], ["tom"], False),
        ("go_live", ["tom", "rita"], ["tom", "bo"], True),
        ("go_live", ["tom", "rita"], ["tom", "rita"], False),
    ],
)
def test_person_with_two_roles_counts_once(
    gate: str, risk_approvers: list[str], approvers: list[str], expected: bool
) -> None:
    r = roster(risk_approvers=risk_approvers)
    rule = rule_for("high", gate)
    excluded = policy.excluded_from_gate(Gate(gate), r)
    assert policy.quorum_met(rule, r, excluded, approvers) is expected


@pytest.mark.parametrize(
    ("gate", "approvers", "actor", "expected"),
    [
        ("risk_signoff", [], "rita", True),
        ("risk_signoff", ["rita"], "raj", True),
        ("risk_signoff", ["rita"], "rita", False),
        ("risk_signoff", ["rita"], "tom", False),
        ("risk_signoff", ["rita"], "dana", False),
        ("risk_signoff", ["rita", "raj"], "carla", False),
        ("scope_approval", [], "raj", True),
        ("scope_approval", ["rita"], "raj", False),  # the risk seat is taken
        ("scope_approval", ["rita"], "bo", True),
        ("scope_approval", ["bo"], "rita", True),
        ("scope_approval", ["bo"], "olga", False),
        ("scope_approval", ["bo", "raj"], "rita", False),
        ("go_live", ["bo"], "tom", True),
        ("go_live", ["tom"], "tom", False),
        ("go_live", ["tom"], "olga", False),
        ("ops_handoff", ["olga"], "olga", False),
        ("ops_handoff", [], "sam", False),
    ],
)
def test_approval_counts(gate: str, approvers: list[str], actor: str, expected: bool) -> None:
    r = roster()
    rule = rule_for("high", gate)
    excluded = policy.excluded_from_gate(Gate(gate), r)
    assert policy.approval_counts(rule, r, excluded, approvers, actor) is expected


@pytest.mark.parametrize(
    ("tier", "gate", "risk_approvers", "approvers", "expected"),
    [
        ("high", "scope_approval", None, [], ["bo", "raj", "rita"]),
        ("high", "scope_approval", None, ["rita"], ["bo"]),
        ("high", "scope_approval", None, ["bo"], ["raj", "rita"]),
        ("high", "scope_approval", None, ["bo", "rita"], []),
        ("high", "scope_approval", ["bo", "rita", "raj"], ["bo"], ["raj", "rita"]),
        ("high", "scope_approval", ["bo", "rita"], ["rita"], ["bo"]),
        ("high", "risk_signoff", None, [], ["raj", "rita"]),
        ("high", "risk_signoff", None, ["raj"], ["rita"]),
        ("high", "risk_signoff", None, ["raj", "rita"], []),
        ("high", "risk_signoff", ["dana", "tom", "rita", "raj"], [], ["raj", "rita"]),
        ("high", "go_live", None, [], ["bo", "tom"]),
        ("high", "go_live", None, ["tom"], ["bo"]),
        ("low", "risk_signoff", None, [], ["raj", "rita"]),
        ("low", "risk_signoff", None, ["rita"], []),
        ("low", "ops_handoff", None, ["sam"], ["olga"]),
        ("low", "resume_approval", None, ["raj"], ["bo"]),
    ],
)
def test_pending_approvers_shrink(
    tier: str,
    gate: str,
    risk_approvers: list[str] | None,
    approvers: list[str],
    expected: list[str],
) -> None:
    r = roster(risk_approvers=risk_approvers) if risk_approvers else roster()
    rule = rule_for(tier, gate)
    excluded = policy.excluded_from_gate(Gate(gate), r)
    assert policy.pending_approvers(rule, r, excluded, approvers) == expected


def test_quorum_on_a_hand_built_rule() -> None:
    rule = GateRule(
        gate=Gate.GO_LIVE,
        deciders=[Requirement(role=Role.RISK_APPROVER, count=3)],
        sla_hours=1,
    )
    r = roster(risk_approvers=["rita", "raj", "carla", "omar"])
    assert rule.quorum == 3
    assert not policy.quorum_met(rule, r, set(), ["rita", "raj", "rita"])
    assert policy.quorum_met(rule, r, set(), ["rita", "raj", "omar"])
    assert policy.pending_approvers(rule, r, set(), ["rita", "raj"]) == ["carla", "omar"]


# --------------------------------------------------------------------------- check_staffing


@pytest.mark.parametrize("tier", TIERS)
def test_check_staffing_accepts_default_roster(tier: str) -> None:
    policy.check_staffing(pinned(tier), roster())


@pytest.mark.parametrize(
    ("tier", "risk_approvers"),
    [
        ("low", ["rita"]),
        ("low", ["dana", "rita"]),
        ("medium", ["carla"]),
        ("high", ["rita", "carla"]),
        ("high", ["group:model-risk"]),
        ("high", ["dana", "rita", "raj"]),
    ],
)
def test_check_staffing_accepts(tier: str, risk_approvers: list[str]) -> None:
    policy.check_staffing(pinned(tier), roster(risk_approvers=risk_approvers))


@pytest.mark.parametrize(
    ("tier", "changes", "gate"),
    [
        ("high", {"risk_approvers": ["rita"]}, "risk_signoff"),
        ("high", {"risk_approvers": ["dana", "rita"]}, "risk_signoff"),
        ("high", {"risk_approvers": ["tom", "rita"]}, "risk_signoff"),
        ("high", {"risk_approvers": ["tom", "dana", "raj"]}, "risk_signoff"),
        ("high", {"risk_approvers": ["bo"]}, "scope_approval"),
        ("high", {"technical_owner": "bo"}, "go_live"),
        ("low", {"risk_approvers": ["dana"]}, "risk_signoff"),
        ("medium", {"risk_approvers": ["tom", "dana"]}, "risk_signoff"),
        ("low", {"delivery_lead": "rita", "risk_approvers": ["rita"]}, "risk_signoff"),
    ],
)
def test_check_staffing_refuses(tier: str, changes: dict[str, Any], gate: str) -> None:
    with pytest.raises(PolicyViolation) as info:
        policy.check_staffing(pinned(tier), roster(**changes))
    assert info.value.refusal == Refusal.INVALID
    assert gate in info.value.detail


def test_check_staffing_covers_live_gates() -> None:
    with pytest.raises(PolicyViolation):
        policy.check_staffing(pinned("low"), roster(risk_approvers=["bo"]))


# --------------------------------------------------------------------------- evidence helpers


def record(kind: str, sha: str, scope: str = "validation") -> EvidenceRecord:
    return EvidenceRecord(
        kind=kind,
        name=f"{kind}.pdf",
        uri=f"https://docs.example.com/{kind}",
        sha256=sha,
        scope=scope,
        round=1,
        submitted_by="dana",
        at=T0,
    )


@pytest.mark.parametrize(
    ("required", "present", "expected"),
    [
        ([], [], []),
        (["evaluation_report"], [], ["evaluation_report"]),
        (["evaluation_report"], ["evaluation_report"], []),
        (
            ["evaluation_report", "model_card", "dpia"],
            ["dpia"],
            ["evaluation_report", "model_card"],
        ),
        (
            ["evaluation_report", "model_card", "dpia"],
            ["runbook"],
            ["evaluation_report", "model_card", "dpia"],
        ),
        (["runbook"], ["runbook", "runbook", "other"], []),
    ],
)
def test_missing_evidence(required: list[str], present: list[str], expected: list[str]) -> None:
    records = [record(k, digest(f"{k}-{i}")) for i, k in enumerate(present)]
    assert policy.missing_evidence(required, records) == expected


@pytest.mark.parametrize(
    ("shas", "expected"),
    [
        ([], []),
        ([D2, D1], sorted([D1, D2])),
        ([D1, D1], [D1]),
        ([D1.upper(), D2], sorted([D1, D2])),
    ],
)
def test_evidence_digests_sorted_distinct_lowercase(shas: list[str], expected: list[str]) -> None:
    records = [record("runbook", s) for s in shas]
    assert policy.evidence_digests(records) == expected


# --------------------------------------------------------------------------- command checks


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


DECISION_REFUSALS = [
    pytest.param(
        make_view("rejected", closed=True), decision("rita"), Refusal.RUN_CLOSED, id="rejected"
    ),
    pytest.param(make_view("cancelled"), decision("rita"), Refusal.RUN_CLOSED, id="cancelled"),
    pytest.param(
        make_view("retired", closed=True), decision("bo"), Refusal.RUN_CLOSED, id="retired"
    ),
    pytest.param(
        make_view("risk_signoff", open_gate=make_gate("risk_signoff"), closed=True),
        decision("rita"),
        Refusal.RUN_CLOSED,
        id="closed-with-gate-left-open",
    ),
    pytest.param(
        make_view("implementation"), decision("rita"), Refusal.GATE_NOT_OPEN, id="work-stage"
    ),
    pytest.param(make_view("live"), decision("bo", "go_live"), Refusal.GATE_NOT_OPEN, id="live"),
    pytest.param(
        risk_view(), decision("olga", "ops_handoff"), Refusal.GATE_NOT_OPEN, id="other-gate"
    ),
    pytest.param(
        risk_view(), decision("bo", "scope_approval"), Refusal.GATE_NOT_OPEN, id="earlier-gate"
    ),
    pytest.param(risk_view(), decision("tom"), Refusal.NOT_ELIGIBLE, id="technical-owner"),
    pytest.param(risk_view(), decision("dana"), Refusal.NOT_ELIGIBLE, id="delivery-lead"),
    pytest.param(risk_view(), decision("sam"), Refusal.NOT_ELIGIBLE, id="outsider"),
    pytest.param(
        risk_view(required=["risk_assessment"]),
        decision("sam"),
        Refusal.NOT_ELIGIBLE,
        id="outsider-learns-nothing-about-evidence",
    ),
    pytest.param(
        risk_view(approvals=["rita"]),
        decision("rita"),
        Refusal.ALREADY_DECIDED,
        id="approved-twice",
    ),
    pytest.param(
        risk_view(approvals=["rita"]),
        decision("rita", what=Decision.REJECT, comment="changed my mind"),
        Refusal.ALREADY_DECIDED,
        id="reject-after-approve",
    ),
    pytest.param(
        risk_view(),
        decision("rita", what=Decision.REQUEST_CHANGES),
        Refusal.INVALID,
        id="request-changes-no-comment",
    ),
    pytest.param(
        risk_view(),
        decision("rita", what=Decision.REJECT, comment="   \n"),
        Refusal.INVALID,
        id="reject-blank-comment",
    ),
    pytest.param(
        risk_view(required=["risk_assessment"]),
        decision("rita"),
        Refusal.EVIDENCE_MISSING,
        id="approve-evidence-missing",
    ),
    pytest.param(
        risk_view(digests=sorted([D1, D2])),
        decision("rita", digests=[D1, D3]),
        Refusal.EVIDENCE_CHANGED,
        id="digests-differ",
    ),
    pytest.param(
        risk_view(digests=sorted([D1, D2])),
        decision("rita", digests=[D1]),
        Refusal.EVIDENCE_CHANGED,
        id="digests-subset",
    ),
    pytest.param(
        risk_view(digests=[D1]),
        decision("rita", digests=[D1, D2]),
        Refusal.EVIDENCE_CHANGED,
        id="digests-superset",
    ),
    pytest.param(
        risk_view(digests=[D1]),
        decision("rita", digests=[]),
        Refusal.EVIDENCE_CHANGED,
        id="digests-empty",
    ),
]


@pytest.mark.parametrize(("view", "cmd", "refusal"), DECISION_REFUSALS)
def test_check_decision_refuses(view: UseCaseView, cmd: GateDecision, refusal: Refusal) -> None:
    with pytest.raises(PolicyViolation) as info:
        policy.check_decision(view, cmd)
    assert info.value.refusal == refusal


@pytest.mark.parametrize("actor", ["tom", "dana", "sam", "eve", "bo"])
def test_not_eligible_detail_is_exact(actor: str) -> None:
    with pytest.raises(PolicyViolation) as info:
        policy.check_decision(risk_view(required=["risk_assessment"]), decision(actor))
    assert info.value.refusal == Refusal.NOT_ELIGIBLE
    assert info.value.detail == "not eligible for this gate"
    assert str(info.value) == "not eligible for this gate"


DECISIONS_ALLOWED = [
    pytest.param(risk_view(), decision("rita"), id="approve-no-digests"),
    pytest.param(risk_view(approvals=["rita"]), decision("raj"), id="second-approver"),
    pytest.param(
        risk_view(digests=sorted([D1, D2])), decision("rita", digests=[D2, D1]), id="digests-match"
    ),
    pytest.param(
        risk_view(digests=sorted([D1, D2])),
        decision("rita", digests=[D1.upper(), D2]),
        id="digests-case-insensitive",
    ),
    pytest.param(
        risk_view(digests=[D1]), decision("rita", digests=[D1, D1.upper()]), id="digests-repeated"
    ),
    pytest.param(risk_view(), decision("rita", digests=[]), id="no-evidence-no-digests"),
    pytest.param(
        risk_view(required=["risk_assessment"]),
        decision("rita", what=Decision.REQUEST_CHANGES, comment="need the risk assessment"),
        id="request-changes-while-evidence-missing",
    ),
    pytest.param(
        risk_view(digests=[D1]),
        decision("raj", what=Decision.REJECT, comment="no", digests=[D3]),
        id="reject-ignores-digests",
    ),
    pytest.param(
        make_view(
            "go_live", open_gate=make_gate("go_live", eligible=["bo", "tom"], approvals=["bo"])
        ),
        decision("tom", "go_live"),
        id="go-live-technical-owner",
    ),
]


@pytest.mark.parametrize(("view", "cmd"), DECISIONS_ALLOWED)
def test_check_decision_allows(view: UseCaseView, cmd: GateDecision) -> None:
    policy.check_decision(view, cmd)


def complete(actor: str, stage: str, kinds: Sequence[str] = ()) -> CompleteStage:
    return CompleteStage(actor=actor, stage=Stage(stage), evidence=[ev(k) for k in kinds])


COMPLETE_REFUSALS = [
    pytest.param(
        make_view("cancelled", closed=True),
        complete("dana", "scoping"),
        Refusal.RUN_CLOSED,
        id="closed",
    ),
    pytest.param(
        make_view("scoping"), complete("bo", "scoping"), Refusal.NOT_ELIGIBLE, id="business-owner"
    ),
    pytest.param(
        make_view("scoping"), complete("rita", "scoping"), Refusal.NOT_ELIGIBLE, id="risk-approver"
    ),
    pytest.param(
        make_view("scoping"), complete("sam", "scoping"), Refusal.NOT_ELIGIBLE, id="outsider"
    ),
    pytest.param(
        make_view("specification"),
        complete("dana", "implementation"),
        Refusal.WRONG_STAGE,
        id="ahead",
    ),
    pytest.param(
        make_view("validation"), complete("tom", "scoping"), Refusal.WRONG_STAGE, id="behind"
    ),
    pytest.param(
        risk_view(),
        complete("dana", "validation", ["evaluation_report"]),
        Refusal.WRONG_STAGE,
        id="at-gate",
    ),
    pytest.param(
        risk_view(), complete("dana", "risk_signoff"), Refusal.INVALID, id="gate-not-work-stage"
    ),
    pytest.param(
        make_view("live"), complete("dana", "live"), Refusal.INVALID, id="live-not-work-stage"
    ),
    pytest.param(
        make_view("validation", required=["evaluation_report"]),
        complete("dana", "validation"),
        Refusal.EVIDENCE_MISSING,
        id="no-evidence",
    ),
    pytest.param(
        make_view("validation", required=["evaluation_report", "model_card", "dpia"]),
        complete("tom", "validation", ["evaluation_report", "dpia"]),
        Refusal.EVIDENCE_MISSING,
        id="partial-evidence",
    ),
    pytest.param(
        make_view("validation", required=["evaluation_report"]),
        complete("tom", "validation", ["runbook"]),
        Refusal.EVIDENCE_MISSING,
        id="wrong-kind",
    ),
]


@pytest.mark.parametrize(("view", "cmd", "refusal"), COMPLETE_REFUSALS)
def test_check_complete_stage_refuses(
    view: UseCaseView, cmd: CompleteStage, refusal: Refusal
) -> None:
    with pytest.raises(PolicyViolation) as info:
        check(CommandName.COMPLETE_STAGE, view, cmd)
    assert info.value.refusal == refusal


@pytest.mark.parametrize(
    ("view", "cmd"),
    [
        pytest.param(make_view("scoping"), complete("dana", "scoping"), id="delivery-lead"),
        pytest.param(
            make_view("specification"), complete("tom", "specification"), id="technical-owner"
        ),
        pytest.param(
            make_view("validation", required=["evaluation_report"]),
            complete("dana", "validation", ["evaluation_report"]),
            id="with-evidence",
        ),
        pytest.param(
            make_view("validation", required=["evaluation_report", "model_card", "dpia"]),
            complete("tom", "validation", ["dpia", "model_card", "evaluation_report", "extra"]),
            id="all-evidence-plus-extra",
        ),
        pytest.param(
            make_view("implementation"),
            complete("dana", "implementation", ["design_doc"]),
            id="unrequired",
        ),
    ],
)
def test_check_complete_stage_allows(view: UseCaseView, cmd: CompleteStage) -> None:
    check(CommandName.COMPLETE_STAGE, view, cmd)


def add(actor: str) -> AddEvidence:
    return AddEvidence(actor=actor, evidence=[ev("risk_assessment")])


@pytest.mark.parametrize(
    ("view", "actor", "refusal"),
    [
        pytest.param(make_view("retired", closed=True), "dana", Refusal.RUN_CLOSED, id="closed"),
        pytest.param(make_view("rejected"), "tom", Refusal.RUN_CLOSED, id="rejected"),
        pytest.param(risk_view(), "rita", Refusal.NOT_ELIGIBLE, id="approver"),
        pytest.param(risk_view(), "bo", Refusal.NOT_ELIGIBLE, id="business-owner"),
        pytest.param(make_view("validation"), "sam", Refusal.NOT_ELIGIBLE, id="outsider"),
        pytest.param(make_view("live"), "dana", Refusal.WRONG_STAGE, id="live-no-gate"),
        pytest.param(make_view("suspended"), "tom", Refusal.WRONG_STAGE, id="suspended-no-gate"),
        pytest.param(make_view("stalled"), "tom", Refusal.WRONG_STAGE, id="stalled-no-gate"),
    ],
)
def test_check_add_evidence_refuses(view: UseCaseView, actor: str, refusal: Refusal) -> None:
    with pytest.raises(PolicyViolation) as info:
        check(CommandName.ADD_EVIDENCE, view, add(actor))
    assert info.value.refusal == refusal


@pytest.mark.parametrize(
    ("view", "actor"),
    [
        pytest.param(make_view("validation"), "dana", id="work-stage"),
        pytest.param(make_view("scoping"), "tom", id="work-stage-technical-owner"),
        pytest.param(risk_view(approvals=["rita"]), "tom", id="open-gate"),
        pytest.param(
            make_view("live", open_gate=make_gate("change_approval", eligible=["tom"])),
            "dana",
            id="live-with-open-gate",
        ),
    ],
)
def test_check_add_evidence_allows(view: UseCaseView, actor: str) -> None:
    check(CommandName.ADD_EVIDENCE, view, add(actor))


CANCELLABLE = [
    "scoping",
    "scope_approval",
    "specification",
    "implementation",
    "validation",
    "risk_signoff",
    "ops_handoff",
    "go_live",
    "stalled",
]


@pytest.mark.parametrize("stage", CANCELLABLE)
@pytest.mark.parametrize("actor", ["dana", "bo"])
def test_check_cancel_allows_before_live(stage: str, actor: str) -> None:
    check(CommandName.CANCEL, make_view(stage), Cancel(actor=actor, reason="no longer needed"))


@pytest.mark.parametrize(
    ("stage", "actor", "closed", "refusal"),
    [
        ("scoping", "tom", False, Refusal.NOT_ELIGIBLE),
        ("risk_signoff", "rita", False, Refusal.NOT_ELIGIBLE),
        ("ops_handoff", "olga", False, Refusal.NOT_ELIGIBLE),
        ("validation", "eve", False, Refusal.NOT_ELIGIBLE),
        ("validation", "sam", False, Refusal.NOT_ELIGIBLE),
        ("live", "bo", False, Refusal.WRONG_STAGE),
        ("live", "dana", False, Refusal.WRONG_STAGE),
        ("suspended", "bo", False, Refusal.WRONG_STAGE),
        ("live", "tom", False, Refusal.NOT_ELIGIBLE),
        ("rejected", "bo", True, Refusal.RUN_CLOSED),
        ("cancelled", "dana", True, Refusal.RUN_CLOSED),
        ("retired", "bo", False, Refusal.RUN_CLOSED),
    ],
)
def test_check_cancel_refuses(stage: str, actor: str, closed: bool, refusal: Refusal) -> None:
    with pytest.raises(PolicyViolation) as info:
        check(CommandName.CANCEL, make_view(stage, closed=closed), Cancel(actor=actor))
    assert info.value.refusal == refusal


@pytest.mark.parametrize(
    ("gate", "expected"),
    [
        (None, []),
        (make_gate("risk_signoff"), ["raj", "rita"]),
        (make_gate("risk_signoff", approvals=["rita"]), ["raj"]),
        (make_gate("risk_signoff", approvals=["rita", "raj"]), []),
    ],
)
def test_waiting_on(gate: OpenGate | None, expected: list[str]) -> None:
    assert policy.waiting_on(gate) == expected
