"""workflows.policy: who decides what, and in which order.

The stage path per tier, resolving owners to a roster, eligibility for each gate, separation of
duties, quorum of distinct people (one person, one seat) and staffing checks at start.
Expected values are written out from docs (ARCHITECTURE.md "Stages and gates" and "Policy",
CONTRACT.md) and the shipped config files, never computed by the code under test.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.workflows.helpers import EXPECTED_PATH
from tests.workflows.policy_cases import POLICY, TIERS, pinned, roster, rule_for
from workflows import policy
from workflows.model import Gate, GateRule, Refusal, Requirement, RiskTier, Role, Stage
from workflows.policy import PolicyViolation

# --------------------------------------------------------------------------- people

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
        # whoever asked never decides: the delivery lead (dana) is out of every gate
        ("scope_approval", {}, {"dana"}),
        ("ops_handoff", {"validation_completed_by": "olga"}, {"dana"}),
        ("go_live", {}, {"dana"}),
        ("resume_approval", {}, {"dana"}),
        ("resume_approval", {"resume_requested_by": "bo"}, {"dana", "bo"}),
        ("periodic_review", {}, {"dana"}),
        ("change_approval", {}, {"dana"}),
        ("change_approval", {"change_raised_by": "dana"}, {"dana"}),
        ("change_approval", {"change_raised_by": "tom"}, {"dana", "tom"}),
        ("go_live", {"change_raised_by": "tom"}, {"dana", "tom"}),
        # relaxed explicitly by the policy: the requester may decide, a change's raiser never
        ("go_live", {"allow_requester": True}, set()),
        ("change_approval", {"change_raised_by": "tom", "allow_requester": True}, {"tom"}),
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
