"""The worker's Slack adapter against the Web API double (no workflow needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.settings import Settings
from services.slack.client import web_client
from services.worker.notify import LogAdapter, NotificationActivities
from services.worker.slack_adapter import SlackAdapter
from tests.slack.double import SlackDouble
from tests.slack.helpers import CHANNEL
from tests.workflows.helpers import evidence
from workflows.activities import GateCard, MessageRef, Notification, NotificationKind
from workflows.model import Approval, Channel
from workflows.policy import Directory, Person

AT = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
DIRECTORY = Directory(
    [
        Person(id="rita", name="Rita", email="rita@example.com", slack_user_id="U01RITA"),
        Person(id="raj", name="Raj", email="raj@example.com", slack_user_id="U01RAJ"),
        Person(id="offline", name="No Slack", email="offline@example.com"),
    ]
)


@pytest.fixture
def adapter(slack_settings: Settings, slack_double: SlackDouble) -> SlackAdapter:
    slack_double.fail_channels.clear()
    return SlackAdapter(web_client(slack_settings), DIRECTORY, slack_settings.workflow_ui_url)


def notice(kind: NotificationKind, *, outcome: str | None = None, **over: object) -> Notification:
    approvals = [Approval(actor="rita", at=AT, channel=Channel.API)] if outcome else []
    fields: dict[str, object] = {
        "kind": kind,
        "workflow_id": "usecase-adapter",
        "key": "adapter",
        "title": "Adapter under test",
        "risk_tier": "low",
        "stage": "risk_signoff",
        "round": 1,
        "at": AT,
        "text": "Adapter under test: risk_signoff waits on rita, raj",
        "gate": GateCard(
            gate="risk_signoff",
            round=1,
            quorum=1,
            eligible=["rita", "raj"],
            pending=[] if outcome else ["rita", "raj"],
            approvals=approvals,
            due_at=AT + timedelta(days=3),
            outcome=outcome,
            decided_by="rita" if outcome else None,
        ),
        "evidence": [evidence("evaluation_report")],
        "recipients": ["rita", "raj", "offline"],
        "slack_channel": CHANNEL,
    }
    fields.update(over)
    return Notification.model_validate(fields)


async def test_gate_opened_posts_to_the_channel_and_dms_each_person_with_a_slack_id(
    adapter: SlackAdapter, slack_double: SlackDouble
) -> None:
    refs = await adapter.send(notice(NotificationKind.GATE_OPENED), [])
    assert sorted(r.channel for r in refs) == sorted([CHANNEL, "D01RITA", "D01RAJ"])
    assert all(r.adapter == "slack" for r in refs)
    for ref in refs:
        message = slack_double.messages[(ref.channel, ref.ts)]
        assert set(message.buttons()) == {"gate_approve", "gate_request_changes", "gate_reject"}
        assert "/namespaces/default/workflows/usecase-adapter|" in message.mrkdwn()


async def test_gate_closed_updates_every_copy_in_place(
    adapter: SlackAdapter, slack_double: SlackDouble
) -> None:
    refs = await adapter.send(notice(NotificationKind.GATE_OPENED), [])
    posts = len(slack_double.of("chat.postMessage"))
    again = await adapter.send(notice(NotificationKind.GATE_CLOSED, outcome="passed"), refs)
    assert again == refs
    assert len(slack_double.of("chat.postMessage")) == posts  # nothing new posted
    for ref in refs:
        message = slack_double.messages[(ref.channel, ref.ts)]
        assert message.updates == 1
        assert not message.buttons()
        assert message.card["outcome"] == "passed"


async def test_one_unreachable_conversation_does_not_stop_the_others(
    adapter: SlackAdapter, slack_double: SlackDouble
) -> None:
    slack_double.fail_channels.add(CHANNEL)
    refs = await adapter.send(notice(NotificationKind.GATE_OPENED), [])
    assert sorted(r.channel for r in refs) == ["D01RAJ", "D01RITA"]
    gone = MessageRef(adapter="slack", channel="D01RITA", ts="1.000001")
    await adapter.send(notice(NotificationKind.GATE_UPDATED), [*refs, gone])
    assert all(slack_double.messages[(r.channel, r.ts)].updates == 1 for r in refs)


async def test_nothing_delivered_fails_the_adapter_but_not_the_activity(
    adapter: SlackAdapter, slack_double: SlackDouble
) -> None:
    slack_double.fail_channels.add(CHANNEL)
    lonely = notice(NotificationKind.GATE_OPENED, recipients=["offline"])
    with pytest.raises(RuntimeError, match="no Slack message"):
        await adapter.send(lonely, [])
    # the activity logs it and lets the other channels report; the log always gets it
    result = await NotificationActivities([LogAdapter(), adapter]).notify(lonely)
    assert result.message_refs == []


async def test_reminders_are_direct_messages(
    adapter: SlackAdapter, slack_double: SlackDouble
) -> None:
    before = len(slack_double.of("chat.postMessage"))
    refs = await adapter.send(
        notice(NotificationKind.REMINDER, recipients=["raj"], text="Reminder — due <soon>"), []
    )
    assert refs == []
    [post] = slack_double.of("chat.postMessage")[before:]
    assert post.args["channel"] == "D01RAJ"
    assert post.args["text"].startswith("Reminder — due &lt;soon&gt;")
