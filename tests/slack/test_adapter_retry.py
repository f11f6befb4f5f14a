"""A retried notice posts nothing twice (the worker's Slack adapter against the Web API double).

An attempt killed mid-send may have posted cards it never heard back about. The retry adopts
them — from the progress the attempt heartbeated, or, when even that was lost, from the
conversation's history (the card's metadata names its workflow, gate and round) — instead of
posting a second, soon stale, copy.
"""

from __future__ import annotations

import uuid

import pytest

from services.settings import Settings
from services.slack.client import web_client
from services.worker.notify import Progress
from services.worker.slack_adapter import SlackAdapter
from tests.slack.double import SlackDouble
from tests.slack.test_adapter import DIRECTORY, notice
from workflows.activities import Notification, NotificationKind, NotifyProgress


@pytest.fixture
def adapter(slack_settings: Settings, slack_double: SlackDouble) -> SlackAdapter:
    slack_double.fail_channels.clear()
    slack_double.delays.clear()
    return SlackAdapter(web_client(slack_settings), DIRECTORY, slack_settings.workflow_ui_url)


def unique(kind: NotificationKind, **over: object) -> Notification:
    """A notice of a workflow no other test posts for."""
    return notice(kind, workflow_id=f"usecase-retry-{uuid.uuid4().hex[:8]}", **over)


async def test_a_retry_adopts_the_cards_a_lost_attempt_posted(
    adapter: SlackAdapter, slack_double: SlackDouble
) -> None:
    opened = unique(NotificationKind.GATE_OPENED)
    lost = await adapter.send(opened, [], Progress())  # its answer never reached the workflow
    posts = len(slack_double.of("chat.postMessage"))

    beats: list[NotifyProgress] = []
    retry = Progress(retry=True, beat=beats.append)
    refs = await adapter.send(opened, [], retry)

    assert sorted(refs, key=str) == sorted(lost, key=str)
    assert len(slack_double.of("chat.postMessage")) == posts  # no second card anywhere
    assert sorted(beats[-1].refs(), key=str) == sorted(lost, key=str)
    cards = slack_double.cards(opened.workflow_id, "risk_signoff")
    assert len(cards) == 3  # the channel and one direct message per person with a Slack id

    closed = opened.model_copy(
        update={
            "kind": NotificationKind.GATE_CLOSED,
            "gate": unique(NotificationKind.GATE_CLOSED, outcome="passed").gate,
        }
    )
    await adapter.send(closed, refs)
    assert all(not c.buttons() and c.card["outcome"] == "passed" for c in cards)


async def test_recorded_progress_is_not_posted_or_searched_again(
    adapter: SlackAdapter, slack_double: SlackDouble
) -> None:
    opened = unique(NotificationKind.GATE_OPENED)
    first = Progress()
    refs = await adapter.send(opened, [], first)
    calls = len(slack_double.calls)
    again = await adapter.send(opened, [], Progress(first.state, retry=True))
    assert again == refs
    assert slack_double.calls[calls:] == []


async def test_a_retried_reminder_is_not_sent_twice(
    adapter: SlackAdapter, slack_double: SlackDouble
) -> None:
    reminder = unique(NotificationKind.REMINDER, recipients=["raj"], text="Reminder — due soon")
    await adapter.send(reminder, [], Progress())
    posts = len(slack_double.of("chat.postMessage"))
    await adapter.send(reminder, [], Progress(retry=True))
    assert len(slack_double.of("chat.postMessage")) == posts
    # another reminder (another notice) is posted
    await adapter.send(
        reminder.model_copy(update={"text": "Reminder — due now"}), [], Progress(retry=True)
    )
    assert len(slack_double.of("chat.postMessage")) == posts + 1
