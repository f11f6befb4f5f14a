"""Separation of duties without gaps: whoever asked never decides, distinct roles per tier,
deputies, and a stop-ship nothing bypasses — the rules in ``workflows/policy.py`` and how a
run's gates take them in. The HTTP scenarios are in tests/api/test_separation_of_duties.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.workflows.helpers import DIRECTORY, POLICY
from workflows import gates, live, policy, transitions
from workflows.model import (
    Deputy,
    Gate,
    Materiality,
    Owners,
    Refusal,
    Resume,
    RiskTier,
    Role,
    SetDeputies,
    Stage,
    UseCaseInput,
)
from workflows.policy import PolicyViolation
from workflows.state import ReleaseState, Run

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def owners(**changes: Any) -> Owners:
    base: dict[str, Any] = {
        "delivery_lead": "dana",
        "business_owner": "bo",
        "technical_owner": "tom",
        "operations_owner": "olga",
        "risk_approvers": ["group:risk-committee"],
        "escalation_owner": "eve",
        "stop_authority": ["bo", "tom", "olga"],
    }
    return Owners(**{**base, **changes})


def roster(**changes: Any) -> dict[Role, list[str]]:
    return policy.resolve_roster(owners(**changes), DIRECTORY)


def refusal(fn: Any, *args: Any, **kwargs: Any) -> PolicyViolation:
    with pytest.raises(PolicyViolation) as info:
        fn(*args, **kwargs)
    return info.value


# ----------------------------------------------------------------------------- requester


def test_a_delivery_lead_who_named_herself_every_owner_cannot_start() -> None:
    """Scenario 2 (low tier): dana as business, technical and operations owner would approve
    ops_handoff and go_live herself; whoever asked never decides, so the start is refused."""
    err = refusal(
        policy.check_staffing,
        POLICY.pin(RiskTier.LOW),
        roster(business_owner="dana", technical_owner="dana", operations_owner="dana"),
    )
    assert err.refusal == Refusal.INVALID
    assert "gate ops_handoff" in err.detail
    assert "operations_owner" in err.detail


def test_a_delivery_lead_named_risk_approver_never_fills_a_risk_seat() -> None:
    """Scenario 2 (high tier): dana among the risk approvers does not approve scope_approval."""
    r = roster(risk_approvers=["dana", "rita", "raj"])
    for gate in (Gate.SCOPE_APPROVAL, Gate.RISK_SIGNOFF, Gate.PERIODIC_REVIEW):
        rule = policy.gate_rule(POLICY.pin(RiskTier.HIGH), gate)
        assert rule is not None
        assert "dana" not in policy.deciders(rule, r)


def test_whoever_asks_to_resume_never_decides_the_resume() -> None:
    """Scenario 2: a risk approver who suspended and asked to resume does not approve it."""
    pinned = POLICY.pin(RiskTier.LOW)
    rule = policy.gate_rule(pinned, Gate.RESUME_APPROVAL)
    assert rule is not None
    r = roster(stop_authority=["bo", "tom", "olga", "rita"])
    assert "rita" not in policy.deciders(rule, r, resume_requested_by="rita")
    # the business owner asking leaves the business seat empty: name a deputy first
    err = refusal(policy.check_staffed_request, policy.CommandName.RESUME, pinned, r, _resume("bo"))
    assert "business_owner" in err.detail
    assert "name a deputy" in err.detail
    policy.check_staffed_request(
        policy.CommandName.RESUME, pinned, r, _resume("bo"), {Role.BUSINESS_OWNER: {"priya"}}
    )


def _resume(actor: str) -> Resume:
    return Resume(actor=actor, reason="fixed")


def test_a_material_change_raised_by_the_technical_owner_needs_a_technical_deputy() -> None:
    """Scenario 1: tom raises a material change of a high-tier use case and would fill the
    technical-owner seat of its go_live; without a deputy the raise is refused, naming whom."""
    pinned = POLICY.pin(RiskTier.HIGH)
    err = refusal(policy.check_change_staffing, pinned, roster(), Materiality.MATERIAL, "tom")
    assert "gate go_live" in err.detail
    assert "name a deputy for technical_owner" in err.detail
    deputies = {Role.TECHNICAL_OWNER: {"lee"}}
    policy.check_change_staffing(pinned, roster(), Materiality.MATERIAL, "tom", deputies)
    rule = policy.gate_rule(pinned, Gate.GO_LIVE)
    assert rule is not None
    who = policy.deciders(rule, roster(), change_raised_by="tom", deputies=deputies)
    assert who == ["bo", "lee"]


def test_distinct_roles_per_tier() -> None:
    high = POLICY.pin(RiskTier.HIGH)
    err = refusal(policy.check_staffing, high, roster(operations_owner="tom"))
    assert "tom cannot be both technical_owner and operations_owner" in err.detail
    # the low tier lists no distinct roles: the same person may hold business and technical
    policy.check_staffing(POLICY.pin(RiskTier.LOW), roster(technical_owner="bo"))


def test_allow_requester_relaxes_only_where_the_policy_says() -> None:
    pinned = POLICY.pin(RiskTier.LOW)
    rule = policy.gate_rule(pinned, Gate.GO_LIVE)
    assert rule is not None
    r = roster(business_owner="dana")
    assert policy.deciders(rule, r) == []
    relaxed = rule.model_copy(update={"allow_requester": True})
    assert policy.deciders(relaxed, r) == ["dana"]


# ----------------------------------------------------------------------------- deputies


def make_run(tier: str = "high", **owner_changes: Any) -> Run:
    tier_ = RiskTier(tier)
    o = owners(**owner_changes)
    r = policy.resolve_roster(o, DIRECTORY)
    inp = UseCaseInput(
        key="sod",
        title="SoD",
        summary="",
        risk_tier=tier_,
        owners=o,
        roster=r,
        policy=POLICY.pin(tier_),
        request_sha256="",
    )
    run = Run(inp, ReleaseState.fresh(inp, T0), "usecase-sod")
    transitions.start(run, T0)
    return run


def test_a_deputy_fills_a_seat_never_twice_with_its_holder() -> None:
    run = make_run()
    live.set_deputies(
        run,
        SetDeputies(
            actor="bo",
            deputies={Role.BUSINESS_OWNER: [Deputy(person="priya")]},
        ),
        T0,
    )
    gates.open_gate(run, Gate.SCOPE_APPROVAL, T0)
    gate = run.state.gate
    assert gate is not None
    assert sorted(map(tuple, gate.seats)) == [("bo", "priya"), ("raj", "rita")]
    seats = gates.Seats.of(gate)
    assert seats.counts([], "priya")
    assert not seats.counts(["bo"], "priya")  # holder and deputy never both fill one seat
    assert seats.met(["priya", "rita"])


def test_an_expired_deputy_fills_nothing_and_changes_reseat_an_open_gate() -> None:
    run = make_run()
    gates.open_gate(run, Gate.SCOPE_APPROVAL, T0)
    assert run.state.gate is not None
    assert "priya" not in run.state.gate.eligible
    live.set_deputies(
        run,
        SetDeputies(
            actor="bo",
            deputies={Role.BUSINESS_OWNER: [Deputy(person="priya", until=T0 + timedelta(days=1))]},
        ),
        T0,
    )
    assert "priya" in run.state.gate.eligible  # the open gate took the deputy in
    later = T0 + timedelta(days=2)
    assert "priya" not in gates.seats_for(run, Gate.SCOPE_APPROVAL, later).eligible


def test_deputies_resolve_groups_and_refuse_unknown_people() -> None:
    from workflows.model import DeputyIn

    resolved = policy.resolve_deputies(
        {Role.TECHNICAL_OWNER: [DeputyIn(who="group:engineering")]}, DIRECTORY
    )
    assert [d.person for d in resolved[Role.TECHNICAL_OWNER]] == DIRECTORY.members("engineering")
    err = refusal(
        policy.resolve_deputies, {Role.TECHNICAL_OWNER: [DeputyIn(who="mallory")]}, DIRECTORY
    )
    assert "unknown person 'mallory'" in err.detail


# ----------------------------------------------------------------------------- property


PEOPLE = sorted(DIRECTORY.people)
person = st.sampled_from(PEOPLE)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tier=st.sampled_from(list(RiskTier)),
    lead=person,
    business=person,
    technical=person,
    operations=person,
    risk=st.lists(person, min_size=1, max_size=4, unique=True),
    deputies=st.dictionaries(
        st.sampled_from([Role.BUSINESS_OWNER, Role.TECHNICAL_OWNER, Role.OPERATIONS_OWNER]),
        st.lists(person, max_size=3, unique=True),
        max_size=3,
    ),
    raiser=st.sampled_from(["lead", "technical", None]),
    approvals=st.lists(person, max_size=8),
)
def test_no_gate_passes_with_a_requester_and_no_seat_is_filled_twice(
    tier: RiskTier,
    lead: str,
    business: str,
    technical: str,
    operations: str,
    risk: list[str],
    deputies: dict[Role, list[str]],
    raiser: str | None,
    approvals: list[str],
) -> None:
    """Over generated owners, groups and deputies: whenever a start (or a change) is accepted,
    no gate's seats hold a requester, and an approval sequence that meets a quorum used as many
    distinct people as there are seats, none of them a requester."""
    o = owners(
        delivery_lead=lead,
        business_owner=business,
        technical_owner=technical,
        operations_owner=operations,
        risk_approvers=risk,
        stop_authority=[business],
    )
    r = policy.resolve_roster(o, DIRECTORY)
    pinned = POLICY.pin(tier)
    stand_ins = {role: set(ids) for role, ids in deputies.items()}
    raised_by = {"lead": lead, "technical": technical, None: None}[raiser]
    try:
        policy.check_staffing(pinned, r, stand_ins)
        if raised_by is not None:
            policy.check_change_staffing(pinned, r, Materiality.MATERIAL, raised_by, stand_ins)
    except PolicyViolation:
        return  # refused with a clear reason: nothing to decide
    rules = [*pinned.rules.gates, *pinned.live.gates]
    for rule in rules:
        if raised_by is None and rule.gate == Gate.CHANGE_APPROVAL:
            continue
        excluded = policy.excluded_from_gate(
            rule.gate, r, change_raised_by=raised_by, allow_requester=rule.allow_requester
        )
        seats = policy.seat_candidates(
            rule, r, excluded, change_raised_by=raised_by, deputies=stand_ins
        )
        asked = {lead} | ({raised_by} if raised_by else set())
        for seat in seats:
            assert not seat & asked
        counted: list[str] = []
        for who in approvals:
            if policy.max_matching(seats, [*counted, who]) > policy.max_matching(seats, counted):
                counted.append(who)
        if policy.max_matching(seats, counted) >= len(seats):
            assert len(set(counted)) == len(seats)
            assert not set(counted) & asked


def test_the_shipped_policy_lets_no_requester_decide() -> None:
    for tier in RiskTier:
        pinned = POLICY.pin(tier)
        for rule in [*pinned.rules.gates, *pinned.live.gates]:
            assert not rule.allow_requester, f"{tier.value}.{rule.gate.value}"
        assert Stage.LIVE in policy.stage_path(pinned.rules)
