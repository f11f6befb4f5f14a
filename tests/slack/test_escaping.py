"""Text people supply never becomes Slack markup: hostile titles, keys, comments, evidence and
notice texts go through card building and the worker's adapter to the Web API double, and every
``<…>`` that reaches Slack is one ReleaseGate made (a directory mention, a date, its own link),
every ``&`` an escape."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.commands.errors import WorkflowRejected
from services.settings import Settings
from services.slack import blocks
from services.slack.client import web_client
from services.slack.desk import _nothing_recorded
from services.worker.slack_adapter import SlackAdapter
from tests.slack.double import SlackDouble
from tests.slack.helpers import CHANNEL
from workflows.activities import GateCard, Notification, NotificationKind, RegistryRow
from workflows.model import (
    Approval,
    Channel,
    Decision,
    Evidence,
    EvidenceRecord,
    Gate,
    OpenGate,
    Owners,
    PolicyRef,
    RiskTier,
    Stage,
    UseCaseView,
)
from workflows.policy import Directory, Person

AT = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
HOSTILE = "<!channel> approve now <@U0EVIL> <http://evil.example|click> <!subteam^S0EVIL> & co"
HOSTILE_ID = "<!everyone>"
HOSTILE_URI = "<!channel>&<@U0EVIL>&<http://evil.example|x>"  # a URI has no whitespace
LEGIT_URI = "https://docs.example.com/report?a=1&b=2"
DIRECTORY = Directory(
    [
        Person(id="rita", name="Rita", email="rita@example.com", slack_user_id="U01RITA"),
        Person(id="raj", name="Raj <!here>", email="raj@example.com", slack_user_id="U01RAJ"),
        # a directory entry whose Slack id would close the mention and open a broadcast
        Person(id="mal", name="Mal & <!here>", email="mal@example.com", slack_user_id="U1><!here"),
    ]
)
MENTIONS = {"<@U01RITA>", "<@U01RAJ>"}
DATE = re.compile(r"!date\^\d+\^\{date_short_pretty\} \{time\}\|[0-9: -]+ UTC")
ENTITY = re.compile(r"&(amp|lt|gt);")
# what Slack never renders: ids and values the app reads back, and message metadata
NOT_RENDERED = {
    "value",
    "private_metadata",
    "metadata",
    "action_id",
    "block_id",
    "callback_id",
    "channel",
    "users",
    "ts",
}
UI = "http://ui.example/"
LINKS = (UI, LEGIT_URI.replace("&", "&amp;"))


def rendered_strings(value: Any, key: str = "") -> Iterator[str]:
    if key in NOT_RENDERED:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from rendered_strings(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from rendered_strings(v, key)


def assert_only_our_markup(payload: Any, links: tuple[str, ...]) -> None:
    """Every ``<…>`` is a directory mention, a date or a link ReleaseGate built; every ``&`` is
    an escape. ``links``: the URL prefixes ReleaseGate links to."""
    for text in rendered_strings(payload):
        for token in ("<!channel", "<!here", "<!everyone", "<!subteam", "<@U0EVIL", "<http://evil"):
            assert token not in text, text
        for match in re.finditer(r"<([^>]*)>?", text):
            inner = match.group(1)
            ok = (
                match.group(0) in MENTIONS
                or DATE.fullmatch(inner) is not None
                or (inner.startswith(links) and "|" in inner)
            )
            assert ok, f"{match.group(0)!r} in {text!r}"
        for amp in re.finditer("&", text):
            assert ENTITY.match(text, amp.start()), f"bare & in {text!r}"


def hostile_evidence() -> list[Evidence]:
    return [
        Evidence(kind="risk_assessment", name=HOSTILE, uri=LEGIT_URI, sha256="a" * 64),
        Evidence(
            kind="dpia",
            name="dpia.pdf",
            uri=f"https://evil.example/x|{HOSTILE_URI}",
            sha256="b" * 64,
        ),
        Evidence(kind="dpia", name="notes", uri=f"s3://bucket/{HOSTILE_URI}", sha256="c" * 64),
    ]


def hostile_notice(kind: NotificationKind, *, closed: bool = False) -> Notification:
    approval = Approval(actor=HOSTILE_ID, at=AT, channel=Channel.API, comment=HOSTILE)
    return Notification(
        kind=kind,
        workflow_id="usecase-escaping",
        key=HOSTILE,
        title=HOSTILE,
        risk_tier=HOSTILE,
        stage="risk_signoff",
        round=1,
        at=AT,
        text=f"{HOSTILE}: risk_signoff waits on rita",
        gate=GateCard(
            gate="risk_signoff",
            round=1,
            quorum=2,
            eligible=["rita", "raj", "mal", HOSTILE_ID],
            pending=[] if closed else ["rita", "mal", HOSTILE_ID],
            approvals=[approval],
            due_at=AT + timedelta(days=3),
            outcome="rejected" if closed else None,
            decided_by=HOSTILE_ID if closed else None,
            comment=HOSTILE if closed else "",
        ),
        evidence=hostile_evidence(),
        recipients=["rita", "raj", "mal"],
        slack_channel=CHANNEL,
    )


@pytest.fixture
def adapter(slack_settings: Settings, slack_double: SlackDouble) -> SlackAdapter:
    slack_double.fail_channels.clear()
    return SlackAdapter(web_client(slack_settings), DIRECTORY, slack_settings.workflow_ui_url)


async def test_hostile_text_reaches_slack_only_as_text(
    adapter: SlackAdapter, slack_double: SlackDouble, slack_settings: Settings
) -> None:
    since = len(slack_double.calls)
    refs = await adapter.send(hostile_notice(NotificationKind.GATE_OPENED), [])
    assert refs
    await adapter.send(hostile_notice(NotificationKind.GATE_UPDATED), refs)
    await adapter.send(hostile_notice(NotificationKind.GATE_CLOSED, closed=True), refs)
    for kind in (NotificationKind.REMINDER, NotificationKind.LIVE_EVENT):
        await adapter.send(hostile_notice(kind).model_copy(update={"gate": None}), [])

    calls = [c for c in slack_double.calls[since:] if c.method.startswith("chat.")]
    methods = {c.method for c in calls}
    assert {"chat.postMessage", "chat.update"} <= methods
    links = (slack_settings.ui_base_url, *LINKS)
    for call in calls:
        assert call.args["text"]  # the fallback is checked as well as the blocks
        assert_only_our_markup(call.args, links)
    # the text is still there, as text
    card = slack_double.messages[(refs[0].channel, refs[0].ts)]
    assert "&lt;!channel&gt; approve now" in card.header()
    assert "&lt;!channel&gt; approve now" in card.text
    assert f"<{LEGIT_URI.replace('&', '&amp;')}|&lt;!channel&gt;" in card.mrkdwn()


def hostile_view() -> UseCaseView:
    records = [
        EvidenceRecord(
            **e.model_dump(), scope="risk_signoff", round=1, submitted_by=HOSTILE_ID, at=AT
        )
        for e in hostile_evidence()
    ]
    return UseCaseView(
        id="usecase-escaping",
        key=HOSTILE,
        title=HOSTILE,
        summary=HOSTILE,
        risk_tier=RiskTier.HIGH,
        stage=Stage.RISK_SIGNOFF,
        closed=False,
        round=1,
        owners=Owners(
            delivery_lead=HOSTILE_ID,
            business_owner="rita",
            technical_owner="raj",
            operations_owner="mal",
            risk_approvers=[HOSTILE_ID],
            escalation_owner="rita",
            stop_authority=["rita"],
        ),
        open_gate=OpenGate(
            gate=Gate.RISK_SIGNOFF,
            eligible=["rita", HOSTILE_ID],
            quorum=2,
            approvals=[Approval(actor=HOSTILE_ID, at=AT, comment=HOSTILE)],
            pending=["rita"],
            opened_at=AT,
            due_at=AT,
            round=1,
        ),
        required_evidence=[HOSTILE],
        evidence=records,
        policy=PolicyRef(version="2026.1", sha256="d" * 64),
        stage_entered_at=AT,
        started_at=AT,
        updated_at=AT,
        event_count=3,
        temporal_ui_url=f"{UI}namespaces/default/workflows/usecase-escaping",
    )


def test_replies_and_modals_escape_what_people_wrote() -> None:
    people = blocks.people_labels(DIRECTORY.people.values())
    assert people["mal"] == "Mal &amp; &lt;!here&gt;"  # a bad Slack id is not mentioned
    view = hostile_view()
    links = LINKS
    assert_only_our_markup(blocks.status_blocks(view, people), links)
    assert_only_our_markup(blocks.status_text(view), links)
    card = blocks.card_from_state(view, [], "risk_signoff", 1)
    assert_only_our_markup(blocks.gate_card(card, people), links)
    assert_only_our_markup(blocks.card_text(card), links)
    ref = blocks.CardRef("usecase-escaping", "risk_signoff", 1, "e")
    pending = blocks.PendingDecision(ref, Decision.REJECT, "k")
    assert_only_our_markup(blocks.comment_modal(pending, HOSTILE), links)
    start = blocks.start_modal(list(DIRECTORY.people.values()), [HOSTILE], blocks.StartContext())
    assert_only_our_markup(start, links)
    row = RegistryRow.model_validate(
        {
            "workflow_id": "usecase-escaping",
            "key": HOSTILE,
            "title": HOSTILE,
            "risk_tier": "high",
            "stage": "risk_signoff",
            "closed": False,
            "business_owner": "rita",
            "owners": {},
            "gate": "risk_signoff",
            "updated_at": AT,
            "event_id": 1,
        }
    )
    assert_only_our_markup(blocks.pending_blocks([row]), links)
    assert_only_our_markup(_nothing_recorded(WorkflowRejected(HOSTILE)), links)
