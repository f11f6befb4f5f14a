"""``/releasegate status | pending | start`` over the real workflow and read model."""

from __future__ import annotations

import uuid
from typing import Any

from tests.slack.helpers import CHANNEL, Slack, auth, start_use_case, state_of, walk_to


async def reply(slack: Slack, since: int) -> dict[str, Any]:
    found: list[dict[str, Any]] = await slack.double.wait_for(
        lambda: slack.responses(since), what="a reply on the response_url"
    )
    return found[-1]


def text_of(reply: dict[str, Any]) -> str:
    parts = [str(reply.get("text", ""))]
    for b in reply.get("blocks") or []:
        if isinstance(b.get("text"), dict):
            parts.append(b["text"]["text"])
        parts += [f["text"] for f in b.get("fields", []) + b.get("elements", []) if "text" in f]
    return "\n".join(parts)


async def test_status_shows_where_a_use_case_stands(slack: Slack) -> None:
    uc = await start_use_case(slack.api, "low")
    await walk_to(slack.api, uc, "risk_signoff")
    since = len(slack.double.calls)
    r = await slack.command("U01BO", f"status {uc['key']}")
    assert r.status_code == 200
    answer = await reply(slack, since)
    assert answer["response_type"] == "ephemeral"
    text = text_of(answer)
    assert uc["title"] in text
    assert uc["key"] in text
    assert "Risk signoff" in text
    assert "0/1 approved" in text
    assert "<@U01RITA>" in text
    assert "<@U01RAJ>" in text
    assert f"workflows/{uc['id']}|Open the run in the Temporal UI>" in text


async def test_status_of_an_unknown_or_malformed_key(slack: Slack) -> None:
    since = len(slack.double.calls)
    await slack.command("U01BO", "status no-such-use-case")
    assert "No use case" in text_of(await reply(slack, since))
    since = len(slack.double.calls)
    await slack.command("U01BO", "status ../../etc")
    assert "Usage" in text_of(await reply(slack, since))


async def test_status_of_a_run_the_caller_may_not_read(slack: Slack) -> None:
    """Need-to-know: priya is none of the run's people and in no reader group, so the run is
    "No use case" for her, worded as for a key that names nothing; carla (compliance, a
    reader group) and the run's own people see it."""
    uc = await start_use_case(slack.api, "low")
    since = len(slack.double.calls)
    await slack.command("U01PRIYA", f"status {uc['key']}")
    hidden = text_of(await reply(slack, since))
    assert hidden == f"No use case `{uc['key']}`."
    assert uc["title"] not in hidden
    for user in ("U01CARLA", "U01TOM"):
        since = len(slack.double.calls)
        await slack.command(user, f"status {uc['key']}")
        assert uc["title"] in text_of(await reply(slack, since))


async def test_pending_lists_the_gates_waiting_on_the_caller(slack: Slack) -> None:
    uc = await start_use_case(slack.api, "low")
    await walk_to(slack.api, uc, "risk_signoff")

    async def pending_of(user: str) -> str:
        since = len(slack.double.calls)
        await slack.command(user, "pending")
        return text_of(await reply(slack, since))

    # the inbox is the read model, kept in step by the workflow: wait for it to catch up
    for _ in range(100):
        text = await pending_of("U01RITA")
        if uc["key"] in text:
            break
    assert uc["key"] in text
    assert "Risk signoff" in text
    assert uc["key"] not in await pending_of("U01DANA")


async def test_start_opens_a_modal_and_launches_the_use_case(slack: Slack) -> None:
    views_before = len(slack.double.of("views.open"))
    r = await slack.command("U01LEE", "start")
    assert r.status_code == 200
    await slack.double.wait_for(
        lambda: len(slack.double.of("views.open")) > views_before, what="the start modal"
    )
    modal = slack.double.of("views.open")[-1].args["view"]
    assert modal["callback_id"] == "start_use_case"
    owner = next(b for b in modal["blocks"] if b.get("block_id") == "business_owner")
    assert {"text": {"type": "plain_text", "text": "Bo Lindqvist (bo)"}, "value": "bo"} in owner[
        "element"
    ]["options"]
    risk = next(b for b in modal["blocks"] if b.get("block_id") == "risk_approvers")
    assert "group:risk-committee" in [o["value"] for o in risk["element"]["options"]]

    key = f"uc-{uuid.uuid4().hex[:10]}"
    values = start_values(key)
    bad = start_values("Not A Key!")
    r = await slack.submit("U01LEE", modal, bad)
    assert r.json()["response_action"] == "errors"
    assert "key" in r.json()["errors"]
    unstaffable = start_values(key, risk=["lee"])  # the delivery lead can't sign off risk
    r = await slack.submit("U01LEE", modal, unstaffable)
    assert r.json()["response_action"] == "errors"
    assert "risk_approvers" in r.json()["errors"]
    got = await slack.api.get(f"/v1/use-cases/usecase-{key}", headers=auth("lee"))
    assert got.status_code == 404  # nothing started by refused submissions

    since = len(slack.double.calls)
    r = await slack.submit("U01LEE", modal, values)
    assert r.status_code == 200
    assert "errors" not in r.text
    assert f"Started *Fraud alert summariser* (`{key}`)" in text_of(await reply(slack, since))
    state = await state_of(slack.api, {"id": f"usecase-{key}"}, person="lee")
    assert state["owners"]["delivery_lead"] == "lee"
    assert state["owners"]["business_owner"] == "priya"
    assert state["risk_tier"] == "medium"
    assert state["slack_channel"] == CHANNEL
    assert state["stage"] == "scoping"


def start_values(key: str, *, risk: list[str] | None = None) -> dict[str, Any]:
    def text(value: str) -> dict[str, Any]:
        return {"type": "plain_text_input", "value": value}

    def one(value: str) -> dict[str, Any]:
        return {"type": "static_select", "selected_option": {"value": value}}

    def many(values: list[str]) -> dict[str, Any]:
        return {
            "type": "multi_static_select",
            "selected_options": [{"value": v} for v in values],
        }

    fields = {
        "key": text(key),
        "title": text("Fraud alert summariser"),
        "summary": text("Summarises fraud alerts for analysts"),
        "risk_tier": one("medium"),
        "business_owner": one("priya"),
        "technical_owner": one("tom"),
        "operations_owner": one("sam"),
        "risk_approvers": many(risk or ["group:risk-committee"]),
        "escalation_owner": one("eve"),
        "stop_authority": many([]),
        "slack_channel": {"type": "conversations_select", "selected_conversation": CHANNEL},
    }
    return {name: {name: value} for name, value in fields.items()}


async def test_unknown_people_and_unknown_verbs(slack: Slack) -> None:
    since = len(slack.double.calls)
    await slack.command("U0STRANGER", "pending")
    assert "not linked" in text_of(await reply(slack, since))
    since = len(slack.double.calls)
    await slack.command("U01RITA", "dance")
    assert "status KEY" in text_of(await reply(slack, since))
    since = len(slack.double.calls)
    await slack.command("U0STRANGER", "")
    assert "pending" in text_of(await reply(slack, since))  # help needs no identity
