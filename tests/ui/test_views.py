"""What the console shows, from a run's state and history: SLA state, who may decide and why
not, seats and who filled them, voided approvals, the stage timeline. Pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.api.ui.session import secure_cookies, session_secret
from services.api.ui.views import (
    Eligibility,
    SlaState,
    decisions,
    eligibility,
    seats,
    sla_state,
    timeline,
)
from services.settings import Settings
from tests.workflows.helpers import POLICY
from workflows.credentials import Signer
from workflows.model import (
    Approval,
    Decision,
    EventKind,
    Gate,
    GateRule,
    HistoryEvent,
    OpenGate,
    Requirement,
    Role,
    Stage,
    UseCaseView,
)

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
RULE = GateRule(
    gate=Gate.RISK_SIGNOFF,
    deciders=[Requirement(role=Role.RISK_APPROVER, count=2)],
    sla_hours=120,
    remind_before_hours=[48, 24],
    expire_after_hours=336,
)


def test_sla_state_follows_the_gates_clock() -> None:
    due = T0 + timedelta(hours=120)
    assert sla_state(due, RULE, T0) is SlaState.ON_TIME
    assert sla_state(due, RULE, due - timedelta(hours=48, seconds=1)) is SlaState.ON_TIME
    assert sla_state(due, RULE, due - timedelta(hours=48)) is SlaState.REMINDED
    assert sla_state(due, RULE, due) is SlaState.ESCALATED
    assert sla_state(due, RULE, T0 + timedelta(hours=336)) is SlaState.EXPIRED
    # no expiry in the rule: escalated for as long as it waits
    lasting = RULE.model_copy(update={"expire_after_hours": None})
    assert sla_state(due, lasting, T0 + timedelta(days=400)) is SlaState.ESCALATED
    # a reminder point before the gate opened is never sent
    short = RULE.model_copy(update={"sla_hours": 12})
    assert sla_state(T0 + timedelta(hours=12), short, T0 + timedelta(hours=1)) is SlaState.ON_TIME


def gate(approvals: list[str], pending: list[str]) -> OpenGate:
    return OpenGate(
        gate=Gate.RISK_SIGNOFF,
        eligible=["raj", "rita", "omar"],
        quorum=2,
        approvals=[Approval(actor=a, at=T0) for a in approvals],
        opened_at=T0,
        due_at=T0 + timedelta(hours=120),
        round=1,
        seats=[["raj", "rita"], ["omar", "rita"]],
        pending=pending,
    )


def view_with(open_gate: OpenGate | None) -> UseCaseView:
    from tests.workflows.helpers import make_input

    inp = make_input("high")
    return UseCaseView(
        id=f"usecase-{inp.key}",
        key=inp.key,
        title=inp.title,
        summary="",
        risk_tier=inp.risk_tier,
        stage=Stage.RISK_SIGNOFF if open_gate else Stage.IMPLEMENTATION,
        closed=False,
        round=1,
        owners=inp.owners,
        open_gate=open_gate,
        required_evidence=[],
        evidence=[],
        policy={"version": POLICY.version, "sha256": POLICY.sha256},
        stage_entered_at=T0,
        started_at=T0,
        updated_at=T0,
        event_count=1,
    )


def test_who_may_decide_and_why_not() -> None:
    # rita approved into a seat raj could also fill: raj's only seat is taken, omar's is not
    g = gate(["rita"], pending=["omar"])
    v = view_with(g)
    assert eligibility(v, "omar") is Eligibility.MAY_DECIDE
    assert eligibility(v, "raj") is Eligibility.SEAT_TAKEN
    assert eligibility(v, "rita") is Eligibility.ALREADY_APPROVED
    assert eligibility(v, "olga") is Eligibility.NOT_ELIGIBLE
    assert eligibility(view_with(None), "omar") is Eligibility.NOT_OPEN
    filled = seats(g)
    assert [(s.number, s.filled_by.actor if s.filled_by else None) for s in filled] == [
        (1, "rita"),
        (2, None),
    ]


def event(kind: EventKind, at: int, **kw: object) -> HistoryEvent:
    return HistoryEvent(at=T0 + timedelta(hours=at), kind=kind, **kw)  # type: ignore[arg-type]


def test_voided_approvals_and_the_timeline() -> None:
    history = [
        event(EventKind.STAGE_ENTERED, 0, stage=Stage.SCOPING, actor="dana"),
        event(EventKind.STAGE_ENTERED, 2, stage=Stage.RISK_SIGNOFF, actor="dana"),
        event(
            EventKind.DECISION, 3, stage=Stage.RISK_SIGNOFF, actor="rita",
            gate=Gate.RISK_SIGNOFF, decision=Decision.APPROVE,
        ),
        event(
            EventKind.APPROVALS_VOIDED, 4, stage=Stage.RISK_SIGNOFF, actor="tom",
            gate=Gate.RISK_SIGNOFF,
        ),
        event(
            EventKind.DECISION, 5, stage=Stage.RISK_SIGNOFF, actor="rita",
            gate=Gate.RISK_SIGNOFF, decision=Decision.APPROVE,
        ),
        event(
            EventKind.DECISION, 6, stage=Stage.RISK_SIGNOFF, actor="raj",
            gate=Gate.RISK_SIGNOFF, decision=Decision.REQUEST_CHANGES, comment="thin",
        ),
    ]  # fmt: skip
    rows = decisions(history)
    assert [(r.event.actor, r.voided) for r in rows] == [
        ("rita", True),
        ("rita", False),
        ("raj", False),
    ]
    visits = timeline(history)
    assert [(v.stage, v.left_at) for v in visits] == [
        (Stage.SCOPING, T0 + timedelta(hours=2)),
        (Stage.RISK_SIGNOFF, None),
    ]
    assert visits[0].duration(T0 + timedelta(hours=9)) == timedelta(hours=2)


def test_session_secret_and_cookie_security() -> None:
    signer = Signer.generate("k1")
    plain = Settings(RELEASEGATE_URL="http://localhost:8000")
    derived = session_secret(plain, signer)
    assert derived == session_secret(plain, signer)  # every replica with the key agrees
    assert derived != session_secret(plain, Signer.generate("k2"))
    assert signer.seed.hex() not in derived
    configured = Settings(RELEASEGATE_SESSION_SECRET="s" * 40)
    assert session_secret(configured, signer) == "s" * 40
    assert not secure_cookies(plain)
    assert secure_cookies(Settings(RELEASEGATE_URL="https://gate.example.com"))
    assert secure_cookies(Settings(RELEASEGATE_ENV="production"))
