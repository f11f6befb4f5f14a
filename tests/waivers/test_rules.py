"""Governed exceptions as pure rules: the policy's checks, seats without the requester (a
property), the Slack card line, and what the ledger's facts make of an exception in the
compliance view and flow metrics — no Temporal, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.controls.evaluate import ControlStatus, LedgerFact, RunFacts, read_run
from services.controls.evaluate import judge_control as judge
from services.flow import FlowEntry, compute_flow
from services.slack import blocks
from tests.slack.test_blocks import PEOPLE, notice, texts
from tests.workflows.helpers import EXPECTED_PATH, POLICY, make_input
from workflows import policy
from workflows.model import (
    CommandName,
    RequestWaiver,
    Requirement,
    Role,
    Stage,
    WaiverKind,
    WaiverRequirement,
    WaiverRule,
)

AT = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
WHY = "the vendor's assessment lands next sprint; nothing else changed"


def test_a_requirement_names_exactly_what_its_kind_needs() -> None:
    WaiverRequirement(kind=WaiverKind.EVIDENCE, stage=Stage.VALIDATION, evidence_kind="dpia")
    WaiverRequirement(kind=WaiverKind.SLA, gate="go_live")
    WaiverRequirement(kind=WaiverKind.PERIODIC_REVIEW)
    for bad in (
        {"kind": "evidence", "stage": "validation"},  # which kind?
        {"kind": "evidence", "evidence_kind": "dpia"},  # where?
        {"kind": "evidence", "stage": "validation", "gate": "go_live", "evidence_kind": "dpia"},
        {"kind": "evidence", "stage": "live", "evidence_kind": "dpia"},  # not a work stage
        {"kind": "sla"},
        {"kind": "sla", "gate": "go_live", "evidence_kind": "dpia"},
        {"kind": "periodic_review", "gate": "go_live"},
    ):
        with pytest.raises(ValidationError):
            WaiverRequirement.model_validate(bad)
    with pytest.raises(ValidationError):  # an expiry without its offset
        RequestWaiver(
            actor="dana",
            requirement=WaiverRequirement(kind=WaiverKind.PERIODIC_REVIEW),
            justification=WHY,
            expires_at=datetime(2030, 1, 1),  # noqa: DTZ001 - the point of the test
        )


def test_the_policy_names_grantors_per_tier_and_pins_them() -> None:
    high = POLICY.pin("high").waivers  # type: ignore[arg-type]
    assert high is not None
    assert high.max_days == 30
    assert [(g.role, g.count) for g in high.grantors] == [
        (Role.RISK_APPROVER, 2),
        (Role.BUSINESS_OWNER, 1),
    ]
    # a pin without the section dumps exactly as before it existed (signed starts verify)
    bare = POLICY.pin("low").model_copy(update={"waivers": None})  # type: ignore[arg-type]
    assert "waivers" not in bare.model_dump(mode="json")
    assert "waivers" in POLICY.pin("low").model_dump(mode="json")  # type: ignore[arg-type]


def test_who_may_ask_and_who_may_decide() -> None:
    roster = make_input("high").roster
    for person in ("dana", "tom"):
        policy.check_actor(CommandName.REQUEST_WAIVER, roster, person)
    for person in ("rita", "bo", "olga"):
        with pytest.raises(policy.PolicyViolation) as info:
            policy.check_actor(CommandName.REQUEST_WAIVER, roster, person)
        assert info.value.refusal == "not_eligible"
    pinned = POLICY.pin("high")  # type: ignore[arg-type]
    for person in ("rita", "raj", "bo"):
        policy.check_waiver_grantor(pinned, roster, person)
    for person in ("dana", "tom", "olga", "eve"):
        with pytest.raises(policy.PolicyViolation):
            policy.check_waiver_grantor(pinned, roster, person)


def test_an_exception_nobody_but_its_requester_could_grant_is_refused() -> None:
    rule = WaiverRule(max_days=30, grantors=[Requirement(role=Role.TECHNICAL_OWNER)])
    roster = make_input("low").roster
    with pytest.raises(policy.PolicyViolation, match="name a deputy for technical_owner"):
        policy.check_waiver_staffable(rule, roster, "tom")
    policy.check_waiver_staffable(rule, roster, "tom", deputies={Role.TECHNICAL_OWNER: {"lee"}})
    policy.check_waiver_staffable(rule, roster, "dana")


PEOPLE_POOL = ["dana", "tom", "bo", "olga", "rita", "raj", "eve", "lee"]
GRANTOR_ROLES = [Role.RISK_APPROVER, Role.BUSINESS_OWNER, Role.TECHNICAL_OWNER]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    holders=st.fixed_dictionaries(
        {
            role: st.lists(st.sampled_from(PEOPLE_POOL), min_size=1, max_size=3, unique=True)
            for role in GRANTOR_ROLES
        }
    ),
    grantors=st.lists(
        st.tuples(st.sampled_from(GRANTOR_ROLES), st.integers(min_value=1, max_value=2)),
        min_size=1,
        max_size=3,
        unique_by=lambda g: g[0],
    ),
    requester=st.sampled_from(["dana", "tom", "lee"]),
)
def test_whoever_asked_never_fills_a_seat_and_staffing_says_so(
    holders: dict[Role, list[str]], grantors: list[tuple[Role, int]], requester: str
) -> None:
    roster = {**holders, Role.DELIVERY_LEAD: ["dana"]}
    rule = WaiverRule(max_days=30, grantors=[Requirement(role=r, count=n) for r, n in grantors])
    seats = policy.waiver_seats(rule, roster, requester)
    assert len(seats) == rule.quorum
    for seat in seats:
        assert requester not in seat
        assert "dana" not in seat  # whoever asked for the run
    fillable = policy.max_matching(seats, PEOPLE_POOL) == len(seats)
    try:
        policy.check_waiver_staffable(rule, roster, requester)
    except policy.PolicyViolation:
        assert not fillable
    else:
        assert fillable


@given(minutes=st.integers(min_value=-10 * 1440, max_value=200 * 1440))
def test_the_expiry_is_within_the_tiers_maximum(minutes: int) -> None:
    inp = make_input("low")  # low: 90 days
    view = _view(inp)
    cmd = RequestWaiver(
        actor="dana",
        requirement=WaiverRequirement(
            kind=WaiverKind.EVIDENCE, stage=Stage.VALIDATION, evidence_kind="evaluation_report"
        ),
        justification=WHY,
        expires_at=AT + timedelta(minutes=minutes),
    )
    if 0 < minutes <= 90 * 1440:
        policy.check_waiver_request(view, cmd, inp.policy, AT)
    else:
        with pytest.raises(policy.PolicyViolation) as info:
            policy.check_waiver_request(view, cmd, inp.policy, AT)
        assert info.value.refusal == "invalid"


def _view(inp: Any) -> Any:
    from workflows import presentation
    from workflows.state import ReleaseState, Run

    return presentation.view(Run(inp, ReleaseState.fresh(inp, AT), "usecase-x"))


def test_the_gate_card_shows_exceptions_as_exceptions() -> None:
    line = "evidence risk_assessment at risk_signoff waived until 2026-12-20 10:00 UTC (w-1)"
    text = texts(blocks.gate_card(blocks.card_from_notice(notice(exceptions=[line])), PEOPLE))
    assert "*Exceptions:*" in text
    assert line in text
    assert "Exceptions" not in texts(blocks.gate_card(blocks.card_from_notice(notice()), PEOPLE))


# --------------------------------------------------------------------------- from the ledger


def _entries(*, expired: bool) -> list[tuple[str, str, dict[str, Any]]]:
    requirement = {"kind": "evidence", "gate": "risk_signoff", "evidence_kind": "risk_assessment"}
    fact = {"waiver": "w-1", "requirement": requirement, "expires_at": "2026-12-20T10:00:00+00:00"}
    rows: list[tuple[str, str, dict[str, Any]]] = [
        (
            "run_started",
            "dana",
            {
                "stage": "scoping",
                "risk_tier": "medium",
                "title": "t",
                "path": EXPECTED_PATH["medium"],
                "policy": {"version": "v", "sha256": "s"},
                "roster": {"risk_approver": ["rita", "raj"], "business_owner": ["bo"]},
            },
        ),
        ("stage_entered", "dana", {"stage": "risk_signoff"}),
        (
            "waiver_requested",
            "dana",
            {
                "stage": "risk_signoff",
                **fact,
                "grantors": ["raj", "bo"],
                "quorum": 2,
                "comment": WHY,
            },
        ),
        ("decision", "raj", {"stage": "risk_signoff", "decision": "approve", "waiver": "w-1"}),
        ("decision", "bo", {"stage": "risk_signoff", "decision": "approve", "waiver": "w-1"}),
        ("waiver_granted", "bo", {"stage": "risk_signoff", **fact, "grantors": ["raj", "bo"]}),
        (
            "decision",
            "raj",
            {"stage": "risk_signoff", "gate": "risk_signoff", "decision": "approve"},
        ),
        (
            "gate_passed",
            "raj",
            {"stage": "risk_signoff", "gate": "risk_signoff", "approvers": ["raj"]},
        ),
        ("stage_entered", "raj", {"stage": "ops_handoff"}),
    ]
    if expired:
        rows.append(
            ("waiver_expired", "system", {"stage": "ops_handoff", **fact, "was_granted": True})
        )
    return rows


def _control(expired: bool) -> Any:
    from services.controls.catalog import load_catalog
    from tests.workflows.helpers import ROOT

    catalog = load_catalog(ROOT / "config" / "controls.yaml", POLICY)
    facts = RunFacts(
        "usecase-x",
        [
            LedgerFact(i + 1, AT + timedelta(hours=i), kind, actor, payload)
            for i, (kind, actor, payload) in enumerate(_entries(expired=expired))
        ],
    )
    rec = read_run(facts)
    assert rec is not None
    [control] = [c for c in catalog.controls if c.id == "nist-ai-rmf.map-1.5"]
    return judge(rec, control, None)


def test_a_waived_item_is_an_exception_in_the_compliance_view_then_a_gap() -> None:
    granted = _control(expired=False)
    assert granted.status == ControlStatus.EXCEPTION
    assert "w-1" in granted.reason
    assert "raj, bo" in granted.reason
    ended = _control(expired=True)
    assert ended.status == ControlStatus.GAP
    assert "w-1 expired" in ended.reason


def test_flow_metrics_count_exceptions() -> None:
    entries = [
        FlowEntry("usecase-x", i + 1, AT + timedelta(hours=i), kind, actor, payload)
        for i, (kind, actor, payload) in enumerate(_entries(expired=True))
    ]
    flow = compute_flow(entries, now=AT + timedelta(days=1), slas={}, detail=True)
    assert flow.waivers.requested == flow.waivers.granted == flow.waivers.expired == 1
    assert flow.waivers.in_force == 0
    assert flow.waivers.granted_by_kind == {"evidence": 1}
    assert flow.waivers.grant_wait_hours.count == 1
    assert flow.waivers.grant_wait_hours.p50 == 3.0  # requested at +2 h, granted at +5 h
    assert flow.waivers.runs_with_exceptions == 1


def test_a_deferred_periodic_review_is_an_exception_in_the_compliance_view() -> None:
    from services.controls.catalog import load_catalog
    from tests.workflows.helpers import ROOT

    catalog = load_catalog(ROOT / "config" / "controls.yaml", POLICY)
    [control] = [c for c in catalog.controls if c.id == "nist-ai-rmf.manage-4.1"]
    fact = {"waiver": "w-1", "requirement": {"kind": "periodic_review"}}
    rows: list[tuple[str, str, dict[str, Any]]] = [
        *_entries(expired=False)[:2],
        ("stage_entered", "bo", {"stage": "live"}),
        ("waiver_requested", "dana", {"stage": "live", **fact, "grantors": ["rita"]}),
        ("waiver_granted", "rita", {"stage": "live", **fact, "grantors": ["rita"]}),
    ]

    def judged(entries: list[tuple[str, str, dict[str, Any]]]) -> Any:
        facts = RunFacts(
            "usecase-x",
            [
                LedgerFact(i + 1, AT + timedelta(hours=i), kind, actor, payload)
                for i, (kind, actor, payload) in enumerate(entries)
            ],
        )
        rec = read_run(facts)
        assert rec is not None
        return judge(rec, control, None)

    deferred = judged(rows)
    assert deferred.status == ControlStatus.EXCEPTION
    assert "deferred" in deferred.reason
    ended = judged([*rows, ("waiver_expired", "system", {"stage": "live", **fact})])
    assert ended.status == ControlStatus.SATISFIED  # no review has fallen due: nothing set aside
