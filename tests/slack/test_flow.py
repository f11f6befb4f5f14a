"""Gate cards in Slack over the real workflow: posted, clicked, decided, updated in place."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from temporalio.testing import WorkflowEnvironment

from services.slack.blocks import CardRef
from tests.slack.double import Message
from tests.slack.helpers import (
    CHANNEL,
    SLACK_IDS,
    Slack,
    auth,
    comment_values,
    decisions,
    seen,
    start_use_case,
    state_of,
    walk_to,
)
from tests.workflows.helpers import evidence
from workflows.model import Decision, Gate, GateDecision
from workflows.release import UseCaseRelease

APPROVE, CHANGES, REJECT = "gate_approve", "gate_request_changes", "gate_reject"


async def open_gate(
    slack: Slack, tier: str, gate: str, copies: int
) -> tuple[dict[str, Any], list[Message]]:
    """A use case at ``gate`` and its card's copies (channel + one DM per pending person)."""
    uc = await start_use_case(slack.api, tier)
    await walk_to(slack.api, uc, gate)
    cards = await slack.double.wait_for(
        lambda: (
            len(slack.double.cards(uc["id"], gate)) >= copies and slack.double.cards(uc["id"], gate)
        ),
        what=f"{copies} copies of the {gate} card",
    )
    return uc, cards


def in_channel(cards: list[Message]) -> Message:
    return next(c for c in cards if c.channel == CHANNEL)


async def closed(slack: Slack, uc: dict[str, Any], gate: str, outcome: str) -> list[Message]:
    def done() -> list[Message] | None:
        cards = slack.double.cards(uc["id"], gate)
        ok = cards and all(c.card.get("outcome") == outcome and not c.buttons() for c in cards)
        return cards if ok else None

    result: list[Message] = await slack.double.wait_for(done, what=f"{gate} cards {outcome}")
    return result


async def told(slack: Slack, user: str, since: int) -> str:
    def note() -> str | None:
        notes = [
            str(c.args.get("text", ""))
            for c in slack.double.calls[since:]
            if c.method == "chat.postEphemeral" and c.args.get("user") == user
        ]
        return notes[-1] if notes else None

    result: str = await slack.double.wait_for(note, what=f"an ephemeral note to {user}")
    return result


async def test_gate_opens_card_goes_to_the_channel_and_each_approver(slack: Slack) -> None:
    uc, cards = await open_gate(slack, "low", "risk_signoff", copies=3)
    assert sorted(c.channel for c in cards) == sorted([CHANNEL, "D01RAJ", "D01RITA"])
    opened = {c.args["users"] for c in slack.double.of("conversations.open")}
    assert {"U01RITA", "U01RAJ"} <= opened
    card = in_channel(cards)
    assert set(card.buttons()) == {APPROVE, CHANGES, REJECT}
    ref = CardRef.decode(card.buttons()[APPROVE])
    assert ref is not None
    assert (ref.workflow_id, ref.gate, ref.round) == (uc["id"], "risk_signoff", 1)
    text = card.mrkdwn()
    state = await state_of(slack.api, uc)
    assert state["evidence"]
    for item in state["evidence"]:
        assert f"<{item['uri']}|{item['name']}>" in text
        assert item["sha256"][:12] in text
    assert f"/namespaces/default/workflows/{uc['id']}|Open the run in the Temporal UI>" in text
    assert "Risk signoff · round 1" in text
    assert "<!date^" in text  # the due time, in the reader's time zone
    assert "<@U01RITA>" in text
    assert "<@U01RAJ>" in text
    assert card.header() == uc["title"]
    assert card.card == {
        "workflow_id": uc["id"],
        "key": uc["key"],
        "gate": "risk_signoff",
        "round": 1,
        "outcome": "open",
    }


async def test_click_records_the_decision_and_updates_every_copy(slack: Slack) -> None:
    uc, cards = await open_gate(slack, "low", "risk_signoff", copies=3)
    since = len(slack.double.calls)
    r = await slack.click("U01RITA", in_channel(cards), APPROVE)
    assert r.status_code == 200
    assert "Recorded" in await told(slack, "U01RITA", since)
    [decision] = await decisions(slack.api, uc, "risk_signoff")
    assert (decision["actor"], decision["decision"], decision["channel"]) == (
        "rita",
        "approve",
        "slack",
    )
    for card in await closed(slack, uc, "risk_signoff", "passed"):
        assert "final approval by <@U01RITA>" in card.mrkdwn()
        assert "via slack" in card.mrkdwn()
    assert (await state_of(slack.api, uc))["stage"] == "ops_handoff"
    # the next gate's card goes to the one person it waits on
    await slack.double.wait_for(
        lambda: (
            {c.channel for c in slack.double.cards(uc["id"], "ops_handoff")} == {CHANNEL, "D01OLGA"}
        ),
        what="the ops_handoff card",
    )


async def test_request_changes_needs_a_comment_in_the_modal(slack: Slack) -> None:
    uc, cards = await open_gate(slack, "low", "risk_signoff", copies=3)
    since = len(slack.double.calls)
    views_before = len(slack.double.of("views.open"))
    dm = next(c for c in cards if c.channel == "D01RAJ")
    r = await slack.click("U01RAJ", dm, CHANGES)
    assert r.status_code == 200
    await slack.double.wait_for(
        lambda: len(slack.double.of("views.open")) > views_before, what="the comment modal"
    )
    opened = slack.double.of("views.open")[-1].args
    modal = opened["view"]
    assert opened["trigger_id"].startswith("trigger-")
    assert modal["callback_id"] == "gate_decision_comment"
    assert any(b.get("block_id") == "comment" for b in modal["blocks"])

    for blank in ("", "   \n "):
        r = await slack.submit("U01RAJ", modal, comment_values(blank))
        assert r.status_code == 200
        assert r.json()["response_action"] == "errors"
        assert "comment" in r.json()["errors"]
    await asyncio.sleep(0.3)
    assert await decisions(slack.api, uc, "risk_signoff") == []

    r = await slack.submit("U01RAJ", modal, comment_values("Add the bias evaluation"))
    assert r.status_code == 200
    assert "errors" not in r.text  # the modal closes
    assert "Recorded" in await told(slack, "U01RAJ", since)
    [decision] = await decisions(slack.api, uc, "risk_signoff")
    assert decision["decision"] == "request_changes"
    assert decision["comment"] == "Add the bias evaluation"
    assert decision["channel"] == "slack"
    state = await state_of(slack.api, uc)
    assert (state["stage"], state["round"]) == ("implementation", 2)
    for card in await closed(slack, uc, "risk_signoff", "changes_requested"):
        assert "> Add the bias evaluation" in card.mrkdwn()
    # the rework round reopens the gate: a fresh card for round 2, buttons on
    await walk_to(slack.api, uc, "risk_signoff")
    fresh = await slack.double.wait_for(
        lambda: (
            len(slack.double.cards(uc["id"], "risk_signoff", 2)) == 3
            and slack.double.cards(uc["id"], "risk_signoff", 2)
        ),
        what="the round 2 cards",
    )
    assert all(set(c.buttons()) == {APPROVE, CHANGES, REJECT} for c in fresh)
    assert "round 2" in fresh[0].mrkdwn()


async def test_reject_through_the_modal_ends_the_run(slack: Slack) -> None:
    uc, cards = await open_gate(slack, "low", "risk_signoff", copies=3)
    views_before = len(slack.double.of("views.open"))
    await slack.click("U01RITA", in_channel(cards), REJECT)
    await slack.double.wait_for(
        lambda: len(slack.double.of("views.open")) > views_before, what="the comment modal"
    )
    modal = slack.double.of("views.open")[-1].args["view"]
    assert modal["title"]["text"] == "Reject"
    r = await slack.submit("U01RITA", modal, comment_values("No lawful basis"))
    assert r.status_code == 200
    await closed(slack, uc, "risk_signoff", "rejected")
    state = await state_of(slack.api, uc)
    assert (state["stage"], state["closed"]) == ("rejected", True)
    # a click on the closed run: told, card redrawn, nothing recorded
    stale = next(c for c in cards if c.channel == "D01RAJ")
    value = CardRef(uc["id"], "risk_signoff", 1, "0" * 16).encode()
    since = len(slack.double.calls)
    await slack.click("U01RAJ", stale, APPROVE, value=value)
    assert "no longer open" in await told(slack, "U01RAJ", since)
    assert any(
        c.method == "chat.update" and c.args["ts"] == stale.ts for c in slack.double.calls[since:]
    )
    assert [d["decision"] for d in await decisions(slack.api, uc, "risk_signoff")] == ["reject"]


async def test_ineligible_people_are_told_and_nothing_is_recorded(slack: Slack) -> None:
    uc, cards = await open_gate(slack, "low", "risk_signoff", copies=3)
    card = in_channel(cards)
    # bo holds no seat at risk_signoff; dana (delivery lead) is excluded by separation of duties
    for person in ("bo", "dana"):
        since = len(slack.double.calls)
        r = await slack.click(SLACK_IDS[person], card, APPROVE)
        assert r.status_code == 200
        assert "not eligible" in await told(slack, SLACK_IDS[person], since)
    since = len(slack.double.calls)
    await slack.click("U01BO", card, CHANGES)  # no modal for someone who cannot decide
    assert "not eligible" in await told(slack, "U01BO", since)
    assert not [c for c in slack.double.calls[since:] if c.method == "views.open"]
    assert await decisions(slack.api, uc, "risk_signoff") == []
    assert all(c.buttons() for c in slack.double.cards(uc["id"], "risk_signoff"))


async def test_unknown_slack_user_is_told_and_nothing_is_recorded(slack: Slack) -> None:
    uc, cards = await open_gate(slack, "low", "risk_signoff", copies=3)
    since = len(slack.double.calls)
    await slack.click("U0STRANGER", in_channel(cards), APPROVE)
    assert "not linked" in await told(slack, "U0STRANGER", since)
    assert await decisions(slack.api, uc, "risk_signoff") == []


async def test_click_on_a_decided_gate_refreshes_the_card(slack: Slack) -> None:
    uc, cards = await open_gate(slack, "low", "risk_signoff", copies=3)
    stale = in_channel(cards)
    old_buttons = dict(stale.buttons())
    r = await slack.api.post(
        f"/v1/use-cases/{uc['id']}/gates/risk_signoff/decisions",
        json={"decision": "approve"},
        headers={**auth("raj"), **await seen(slack.api, uc, "raj")},
    )
    assert r.status_code == 200
    await closed(slack, uc, "risk_signoff", "passed")
    # rita clicks a copy that had not been redrawn yet
    updates_before = stale.updates
    since = len(slack.double.calls)
    await slack.click("U01RITA", stale, APPROVE, value=old_buttons[APPROVE])
    assert "Nothing was recorded" in await told(slack, "U01RITA", since)
    assert any(
        c.method == "chat.update" and c.args["ts"] == stale.ts for c in slack.double.calls[since:]
    )
    assert stale.updates > updates_before
    assert stale.card["outcome"] == "passed"
    assert not stale.buttons()
    [decision] = await decisions(slack.api, uc, "risk_signoff")
    assert decision["actor"] == "raj"


async def test_slack_and_api_at_the_same_moment_make_one_decision(slack: Slack) -> None:
    uc, cards = await open_gate(slack, "low", "risk_signoff", copies=3)
    since = len(slack.double.calls)
    api_call = slack.api.post(
        f"/v1/use-cases/{uc['id']}/gates/risk_signoff/decisions",
        json={"decision": "approve"},
        headers={**auth("raj"), **await seen(slack.api, uc, "raj")},
    )
    click, api = await asyncio.gather(slack.click("U01RITA", in_channel(cards), APPROVE), api_call)
    assert click.status_code == 200
    assert api.status_code in (200, 409)
    note = await told(slack, "U01RITA", since)
    slack_won = "Recorded" in note
    assert slack_won == (api.status_code == 409), (note, api.text)
    [decision] = await decisions(slack.api, uc, "risk_signoff")
    assert decision["actor"] == ("rita" if slack_won else "raj")
    assert decision["channel"] == ("slack" if slack_won else "api")
    await closed(slack, uc, "risk_signoff", "passed")


async def test_the_same_click_delivered_twice_counts_once(slack: Slack) -> None:
    # high tier: risk_signoff needs two risk approvers, so the gate stays open after one
    uc, cards = await open_gate(slack, "high", "risk_signoff", copies=3)
    payload = slack.click_payload("U01RITA", in_channel(cards), APPROVE)
    since = len(slack.double.calls)
    first, again = await asyncio.gather(slack.interact(payload), slack.interact(payload))
    assert (first.status_code, again.status_code) == (200, 200)
    await slack.double.wait_for(
        lambda: (
            len(
                [
                    c
                    for c in slack.double.calls[since:]
                    if c.args.get("user") == "U01RITA" and c.method == "chat.postEphemeral"
                ]
            )
            == 2
        ),
        what="an answer to each delivery",
    )
    # a retry is answered like the first delivery (same update id), never refused as a repeat
    notes = [
        c.args["text"]
        for c in slack.double.calls[since:]
        if c.method == "chat.postEphemeral" and c.args["user"] == "U01RITA"
    ]
    assert all("Recorded" in n for n in notes), notes
    # and Slack retrying later, once the first is long done
    since = len(slack.double.calls)
    await slack.interact(payload)
    assert "Recorded" in await told(slack, "U01RITA", since)
    # a new click by rita is a second decision, which the workflow refuses
    since = len(slack.double.calls)
    await slack.click("U01RITA", in_channel(cards), APPROVE)
    assert "already approved" in await told(slack, "U01RITA", since)
    [decision] = await decisions(slack.api, uc, "risk_signoff")
    assert decision["actor"] == "rita"
    state = await state_of(slack.api, uc)
    assert [a["actor"] for a in state["open_gate"]["approvals"]] == ["rita"]

    # the cards show the approval so far, buttons still on for raj
    def updated() -> bool:
        return all(
            "approved" in c.mrkdwn() and "1/2" in c.mrkdwn() and c.buttons()
            for c in slack.double.cards(uc["id"], "risk_signoff")
        )

    await slack.double.wait_for(updated, what="cards showing rita's approval")


async def test_a_click_redelivered_after_it_closed_the_gate_gets_its_first_answer(
    slack: Slack,
) -> None:
    uc, cards = await open_gate(slack, "low", "risk_signoff", copies=3)
    payload = slack.click_payload("U01RITA", in_channel(cards), APPROVE)
    since = len(slack.double.calls)
    await slack.interact(payload)
    assert "Recorded" in await told(slack, "U01RITA", since)
    await closed(slack, uc, "risk_signoff", "passed")
    since = len(slack.double.calls)
    await slack.interact(payload)  # the gate it decided is closed now
    assert "Recorded" in await told(slack, "U01RITA", since)
    [decision] = await decisions(slack.api, uc, "risk_signoff")
    assert decision["actor"] == "rita"


async def test_a_decision_through_the_api_updates_the_slack_cards(slack: Slack) -> None:
    uc, _ = await open_gate(slack, "low", "risk_signoff", copies=3)
    r = await slack.api.post(
        f"/v1/use-cases/{uc['id']}/gates/risk_signoff/decisions",
        json={"decision": "approve"},
        headers={**auth("rita"), **await seen(slack.api, uc, "rita")},
    )
    assert r.status_code == 200
    for card in await closed(slack, uc, "risk_signoff", "passed"):
        assert "via api" in card.mrkdwn()


async def test_a_click_on_a_card_with_old_evidence_is_refused(slack: Slack) -> None:
    uc, cards = await open_gate(slack, "high", "risk_signoff", copies=3)
    card = in_channel(cards)
    old_value = card.buttons()[APPROVE]
    r = await slack.api.post(
        f"/v1/use-cases/{uc['id']}/evidence",
        json={"evidence": [evidence("risk_assessment").model_dump()]},
        headers=auth("tom"),
    )
    assert r.status_code == 201, r.text
    await slack.double.wait_for(
        lambda: card.buttons().get(APPROVE) not in (None, old_value), what="redrawn card"
    )
    since = len(slack.double.calls)
    await slack.click("U01RITA", card, APPROVE, value=old_value)
    assert "evidence changed" in await told(slack, "U01RITA", since)
    assert await decisions(slack.api, uc, "risk_signoff") == []
    # the redrawn card's button approves against the evidence it shows
    since = len(slack.double.calls)
    await slack.click("U01RITA", card, APPROVE)
    assert "Recorded" in await told(slack, "U01RITA", since)


async def test_listeners_acknowledge_before_slow_work(slack: Slack) -> None:
    uc, cards = await open_gate(slack, "low", "risk_signoff", copies=3)
    slack.double.delays["views.open"] = 2.0
    slack.double.delays["chat.postEphemeral"] = 2.0
    views_before = len(slack.double.of("views.open"))
    started = time.monotonic()
    r = await slack.click("U01RAJ", in_channel(cards), CHANGES)
    assert r.status_code == 200
    assert time.monotonic() - started < 1.5  # the slow calls take 2 s each
    await slack.double.wait_for(
        lambda: len(slack.double.of("views.open")) > views_before, what="the modal"
    )


async def test_a_decision_sent_as_a_signal_updates_the_slack_cards(
    slack: Slack, temporal_env: WorkflowEnvironment
) -> None:
    uc, _ = await open_gate(slack, "low", "risk_signoff", copies=3)
    handle = temporal_env.client.get_workflow_handle(uc["id"])
    await handle.signal(
        UseCaseRelease.decide_signal,
        GateDecision(actor="raj", gate=Gate.RISK_SIGNOFF, decision=Decision.APPROVE),
    )
    for card in await closed(slack, uc, "risk_signoff", "passed"):
        assert "via signal" in card.mrkdwn()
