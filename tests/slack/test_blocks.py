"""Block Kit and modal forms: pure functions, no Slack, no Temporal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.slack import blocks, forms
from tests.workflows.helpers import DIRECTORY, POLICY, evidence, make_input
from workflows.activities import GateCard, Notification, NotificationKind
from workflows.model import (
    Approval,
    Channel,
    Decision,
    Gate,
    HistoryEvent,
    OpenGate,
    PolicyRef,
    Stage,
    UseCaseCreate,
    UseCaseView,
)

AT = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
PEOPLE = blocks.people_labels(DIRECTORY.people.values())


def notice(kind: NotificationKind = NotificationKind.GATE_OPENED, **gate: Any) -> Notification:
    card = GateCard(
        gate="risk_signoff",
        round=2,
        quorum=2,
        eligible=["rita", "raj"],
        pending=["raj"],
        approvals=[Approval(actor="rita", at=AT, channel=Channel.SLACK)],
        due_at=AT + timedelta(hours=72),
        **gate,
    )
    return Notification(
        kind=kind,
        workflow_id="usecase-kyc",
        key="kyc",
        title="KYC <onboarding> & more",
        risk_tier="high",
        stage="risk_signoff",
        round=2,
        at=AT + timedelta(hours=1),
        text="fallback",
        gate=card,
        evidence=[evidence("risk_assessment", "r"), evidence("dpia", "d")],
        recipients=["raj"],
    )


def texts(found: list[dict[str, Any]]) -> str:
    out = []
    for b in found:
        if isinstance(b.get("text"), dict):
            out.append(b["text"]["text"])
        out += [f["text"] for f in b.get("fields", []) + b.get("elements", []) if "text" in f]
    return "\n".join(str(t) for t in out)


def test_open_card_shows_the_gate_and_offers_three_buttons() -> None:
    n = notice()
    card = blocks.card_from_notice(n, "http://ui/namespaces/default/workflows/usecase-kyc")
    rendered = blocks.gate_card(card, PEOPLE)
    assert rendered[0] == {
        "type": "header",
        # Slack reads &, < and > as control characters in plain_text objects too
        "text": {"type": "plain_text", "text": "KYC &lt;onboarding&gt; &amp; more"},
    }
    text = texts(rendered)
    assert "Risk signoff · round 2" in text
    assert "`kyc`" in text
    assert "high" in text
    for item in n.evidence:
        assert f"<{item.uri}|{item.name}> · {item.kind} · `{item.sha256[:12]}`" in text
    assert "*Approvals* 1/2" in text
    assert "<@U01RITA> approved" in text
    assert "via slack" in text
    assert "*Waiting on:* <@U01RAJ>" in text
    assert (
        "<http://ui/namespaces/default/workflows/usecase-kyc|Open the run in the Temporal UI>"
        in text
    )
    [actions] = [b for b in rendered if b["type"] == "actions"]
    assert [e["action_id"] for e in actions["elements"]] == [
        "gate_approve",
        "gate_request_changes",
        "gate_reject",
    ]
    ref = blocks.CardRef.decode(actions["elements"][0]["value"])
    assert ref == blocks.CardRef(
        "usecase-kyc",
        "risk_signoff",
        2,
        blocks.evidence_fingerprint(e.sha256 for e in n.evidence),
    )
    assert len(rendered) <= 50
    assert all(len(v["value"]) <= 2000 for v in actions["elements"])


def test_closed_card_has_the_outcome_and_no_buttons() -> None:
    n = notice(
        NotificationKind.GATE_CLOSED,
        outcome="changes_requested",
        decided_by="raj",
        comment="Needs <b>bias</b> evaluation\nand a runbook",
    )
    rendered = blocks.gate_card(blocks.card_from_notice(n), PEOPLE)
    assert not [b for b in rendered if b["type"] == "actions"]
    text = texts(rendered)
    assert "*Changes requested* by <@U01RAJ> <!date^" in text
    assert "> Needs &lt;b&gt;bias&lt;/b&gt; evaluation\n> and a runbook" in text
    assert blocks.card_metadata(blocks.card_from_notice(n))["event_payload"]["outcome"] == (
        "changes_requested"
    )


def test_evidence_that_is_not_a_web_link_is_shown_not_linked() -> None:
    item = evidence("model_card").model_copy(update={"uri": "s3://bucket/card.pdf"})
    assert blocks.evidence_line(item).startswith(f"• {item.name} (`s3://bucket/card.pdf`)")


def view(**over: Any) -> UseCaseView:
    inp = make_input("low", key="kyc")
    base: dict[str, Any] = {
        "id": "usecase-kyc",
        "key": "kyc",
        "title": "KYC",
        "summary": "",
        "risk_tier": inp.risk_tier,
        "stage": Stage.OPS_HANDOFF,
        "closed": False,
        "round": 1,
        "owners": inp.owners,
        "open_gate": None,
        "required_evidence": [],
        "evidence": [],
        "policy": PolicyRef(version="1", sha256="0" * 64),
        "stage_entered_at": AT,
        "started_at": AT,
        "updated_at": AT,
        "event_count": 9,
    }
    return UseCaseView(**{**base, **over})


def event(kind: str, actor: str, decision: Decision | None = None, **kw: Any) -> HistoryEvent:
    return HistoryEvent(
        at=AT,
        stage=Stage.RISK_SIGNOFF,
        kind=kind,
        actor=actor,
        gate=Gate.RISK_SIGNOFF,
        decision=decision,
        **kw,
    )


def test_card_from_state_tells_how_a_closed_gate_ended() -> None:
    history = [
        event("decision", "rita", Decision.APPROVE),
        event("approvals_voided", "tom"),
        event("decision", "raj", Decision.APPROVE),
        event("gate_passed", "raj"),
        event("decision", "rita", Decision.REJECT, comment="other round", round=2),
    ]
    card = blocks.card_from_state(view(), history, "risk_signoff", 1)
    assert (card.outcome, card.decided_by) == ("passed", "raj")
    assert [a.actor for a in card.approvals] == ["raj"]
    assert not card.is_open


def test_card_from_state_of_an_open_gate_keeps_its_buttons() -> None:
    gate = OpenGate(
        gate=Gate.OPS_HANDOFF,
        eligible=["olga"],
        quorum=1,
        approvals=[],
        opened_at=AT,
        due_at=AT,
        round=1,
    )
    card = blocks.card_from_state(view(open_gate=gate), [], "ops_handoff", 1)
    rendered = blocks.gate_card(card, PEOPLE)
    assert card.is_open
    assert [b for b in rendered if b["type"] == "actions"]
    assert "*May decide:* <@U01OLGA>" in texts(rendered)


def test_a_gate_closed_without_a_decision_says_where_the_run_is() -> None:
    card = blocks.card_from_state(view(stage=Stage.CANCELLED, closed=True), [], "go_live", 1)
    assert "no longer open; the use case is at *Cancelled*" in texts(blocks.gate_card(card))


@pytest.mark.parametrize(
    "value", [None, "", "{}", "[]", '{"w": "x"}', "not json", '{"w":"","g":"x","r":1,"e":""}']
)
def test_foreign_button_values_decode_to_nothing(value: str | None) -> None:
    assert blocks.CardRef.decode(value) is None
    assert blocks.PendingDecision.decode(value) is None


def test_pending_decision_survives_the_modal_round_trip() -> None:
    ref = blocks.CardRef("usecase-kyc", "go_live", 1, "abc")
    pending = blocks.PendingDecision(ref, Decision.REJECT, "slack-1-2-U1", "C1", "1.2")
    modal = blocks.comment_modal(pending, "KYC")
    assert blocks.PendingDecision.decode(modal["private_metadata"]) == pending
    assert len(modal["title"]["text"]) <= 24
    assert len(modal["private_metadata"]) <= 3000


def start_state(**over: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "key": {"type": "plain_text_input", "value": "fraud-alerts"},
        "title": {"type": "plain_text_input", "value": "Fraud alerts"},
        "summary": {"type": "plain_text_input", "value": None},
        "risk_tier": {"type": "static_select", "selected_option": {"value": "low"}},
        "business_owner": {"type": "static_select", "selected_option": {"value": "bo"}},
        "technical_owner": {"type": "static_select", "selected_option": {"value": "tom"}},
        "operations_owner": {"type": "static_select", "selected_option": {"value": "olga"}},
        "risk_approvers": {
            "type": "multi_static_select",
            "selected_options": [{"value": "rita"}],
        },
        "escalation_owner": {"type": "static_select", "selected_option": None},
        "slack_channel": {"type": "conversations_select", "selected_conversation": None},
    }
    fields.update(over)
    return {"state": {"values": {k: {k: v} for k, v in fields.items()}}}


def test_start_form_reads_into_the_api_request_or_errors_per_field() -> None:
    got = forms.start_request(
        start_state(escalation_owner={"selected_option": {"value": "eve"}}),
        "dana",
        DIRECTORY,
        POLICY,
    )
    assert isinstance(got, UseCaseCreate)
    assert got.owners.risk_approvers == ["rita"]
    assert got.slack_channel is None
    errors = forms.start_request(start_state(), "dana", DIRECTORY, POLICY)
    assert set(errors) == {"escalation_owner"}  # type: ignore[arg-type]
    errors = forms.start_request(
        start_state(
            escalation_owner={"selected_option": {"value": "nobody-here"}},
            key={"value": "X"},
        ),
        "dana",
        DIRECTORY,
        POLICY,
    )
    assert set(errors) == {"key"}  # type: ignore[arg-type]
    errors = forms.start_request(
        start_state(escalation_owner={"selected_option": {"value": "nobody-here"}}),
        "dana",
        DIRECTORY,
        POLICY,
    )
    assert errors == {"escalation_owner": "owners.escalation_owner: unknown person 'nobody-here'"}


@pytest.mark.parametrize("key", ["fraud-alerts-change-1", "usecase-fraud-alerts"])
def test_start_form_refuses_a_key_that_aliases_another_run(key: str) -> None:
    """``<key>-change-<n>`` is a change's run id, ``usecase-<key>`` a use case's id."""
    errors = forms.start_request(
        start_state(escalation_owner={"selected_option": {"value": "eve"}}, key={"value": key}),
        "dana",
        DIRECTORY,
        POLICY,
    )
    assert isinstance(errors, dict)
    assert set(errors) == {"key"}
    assert "must not" in errors["key"]


def test_start_modal_fits_slack_limits() -> None:
    people = sorted(DIRECTORY.people.values(), key=lambda p: p.name)
    modal = blocks.start_modal(people, ["risk-committee"], blocks.StartContext("C1", "https://x"))
    assert len(modal["title"]["text"]) <= 24
    assert blocks.StartContext.decode(modal["private_metadata"]) == blocks.StartContext(
        "C1", "https://x"
    )
    channel = next(b for b in modal["blocks"] if b["block_id"] == "slack_channel")
    assert channel["element"]["initial_conversation"] == "C1"


def test_many_long_evidence_items_fit_one_section_without_cut_links() -> None:
    items = [
        evidence("dpia").model_copy(update={"uri": "https://docs.example.com/" + "x" * 400})
        for _ in range(30)
    ]
    card = blocks.card_from_notice(notice().model_copy(update={"evidence": items}))
    section = next(
        b for b in blocks.gate_card(card) if "*Evidence*" in b.get("text", {}).get("text", "")
    )
    text = section["text"]["text"]
    assert len(text) <= blocks.SECTION_LIMIT
    assert not text.endswith("…")
    shown = text.count("<https://")
    assert 0 < shown < 30
    assert f"… and {30 - shown} more in the Temporal UI" in text


def test_cards_name_the_deputies_in_force() -> None:
    """Issue 12: deputies show on the gate cards, from a notice and from the state alike."""
    n = notice(deputies={"business_owner": ["priya (until 2026-12-24 00:00 UTC)"]})
    text = texts(blocks.gate_card(blocks.card_from_notice(n), PEOPLE))
    assert "*Deputies:* Business owner: priya (until 2026-12-24 00:00 UTC)" in text
    assert "Deputies" not in texts(blocks.gate_card(blocks.card_from_notice(notice()), PEOPLE))
