"""workflows.policy: the checks behind every command, and the evidence helpers they use.

Each check authorizes first (from the roster pinned at start) and looks at the run's state
second. Expected values are written out from docs (ARCHITECTURE.md "Stages and gates" and
"Policy", CONTRACT.md) and the shipped config files, never computed by the code under test.
"""

from __future__ import annotations

import pytest

from tests.workflows.policy_cases import (
    T0,
    add,
    check,
    complete,
    decision,
    digest,
    make_gate,
    make_view,
    risk_view,
)
from workflows import policy
from workflows.model import (
    Cancel,
    CommandName,
    CompleteStage,
    Decision,
    EvidenceRecord,
    GateDecision,
    OpenGate,
    Refusal,
    UseCaseView,
)
from workflows.policy import PolicyViolation

D1, D2, D3 = digest("one"), digest("two"), digest("three")


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
