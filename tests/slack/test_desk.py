"""The Slack desk over the real command layer and a gateway double: it restates no rule.

Every click goes to the command layer, which authorizes with ``workflows.policy`` and sends the
Update; the desk's answer follows the ``Refusal`` that comes back (a stale card is redrawn, a
caller who may not decide is told so) and nothing else.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import pytest

from services.commands.errors import CommandRefused, Outage, Unavailable
from services.commands.evidence import evidence_fingerprint
from services.commands.service import CommandService
from services.slack import blocks, desk
from services.slack.actions import ActionId
from services.slack.desk import Click, SlackDesk
from tests.commands.fakes import DIRECTORY, POLICY, WID, FakeGateway, open_gate, view_of
from workflows.model import Channel, Decision, Gate, Refusal

DIGESTS = ["a" * 64]
CARD = blocks.CardRef(WID, "risk_signoff", 1, evidence_fingerprint(DIGESTS))


@dataclass
class FakeSlack:
    """The Web API calls the desk makes, recorded."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def _record(self, method: str, args: dict[str, Any]) -> Any:
        self.calls.append((method, args))

        async def done() -> dict[str, Any]:
            return {"ok": True}

        return done()

    def chat_postEphemeral(self, **args: Any) -> Any:  # noqa: N802 - Slack's method name
        return self._record("chat.postEphemeral", args)

    def chat_postMessage(self, **args: Any) -> Any:  # noqa: N802
        return self._record("chat.postMessage", args)

    def chat_update(self, **args: Any) -> Any:
        return self._record("chat.update", args)

    def views_open(self, **args: Any) -> Any:
        return self._record("views.open", args)

    def of(self, method: str) -> list[dict[str, Any]]:
        return [args for m, args in self.calls if m == method]

    def note(self) -> str:
        [note] = self.of("chat.postEphemeral")
        return str(note["text"])


def a_desk(gateway: FakeGateway) -> SlackDesk:
    commands = CommandService(gateway, POLICY, DIRECTORY)  # type: ignore[arg-type]
    return SlackDesk(commands, DIRECTORY, sessionmaker=None)  # type: ignore[arg-type]


def click(user: str, action: ActionId = ActionId.APPROVE, ref: blocks.CardRef = CARD) -> Click:
    return Click(action, user, "C0GATES", "170.1", "171.2", "trigger-1", ref)


def at_risk_signoff() -> FakeGateway:
    gateway = FakeGateway()
    gateway.views[WID] = view_of("risk_signoff", gate=open_gate(digests=DIGESTS))
    return gateway


@pytest.mark.parametrize("user", ["U01BO", "U01DANA"])  # no seat; delivery lead (SoD)
@pytest.mark.parametrize("action", list(ActionId))
async def test_a_click_by_someone_who_may_not_decide_sends_and_reads_nothing(
    user: str, action: ActionId
) -> None:
    gateway = FakeGateway()
    gateway.views.clear()  # the desk does not look at the run to decide who may click
    slack = FakeSlack()
    await a_desk(gateway).click(slack, click(user, action))  # type: ignore[arg-type]
    assert gateway.sent == []
    assert "not eligible" in slack.note()
    assert slack.of("views.open") == slack.of("chat.update") == []


async def test_an_approval_is_sent_bound_to_the_cards_evidence() -> None:
    gateway = at_risk_signoff()
    gateway.answer = view_of("ops_handoff")
    slack = FakeSlack()
    await a_desk(gateway).click(slack, click("U01RITA"))  # type: ignore[arg-type]
    [sent] = gateway.sent
    assert (sent.arg.actor, sent.arg.decision, sent.arg.channel) == (
        "rita",
        Decision.APPROVE,
        Channel.SLACK,
    )
    assert sent.arg.evidence_digests == DIGESTS
    assert sent.update_id == "decide:rita:" + click("U01RITA").idempotency_key
    assert slack.note().startswith("Recorded")


@pytest.mark.parametrize(
    ("refusal", "detail", "told", "redrawn"),
    [
        # eligible by the pinned people, refused by the run (e.g. completed validation)
        (Refusal.NOT_ELIGIBLE, "not eligible for this gate", "not eligible", False),
        (Refusal.GATE_NOT_OPEN, "gate is not open", "no longer open", True),
        (Refusal.RUN_CLOSED, "the run is closed", "no longer open", True),
        (Refusal.ALREADY_DECIDED, "rita already approved", "Nothing was recorded: rita", True),
        (Refusal.EVIDENCE_CHANGED, "the evidence changed", "evidence changed", True),
        (Refusal.EVIDENCE_MISSING, "needs risk_assessment", "Nothing was recorded: needs", False),
    ],
)
async def test_the_answer_follows_the_workflows_refusal(
    refusal: Refusal, detail: str, told: str, redrawn: bool
) -> None:
    gateway = at_risk_signoff()
    gateway.answer = CommandRefused(refusal, detail)
    slack = FakeSlack()
    await a_desk(gateway).click(slack, click("U01RITA"))  # type: ignore[arg-type]
    assert len(gateway.sent) == 1
    assert told in slack.note()
    assert bool(slack.of("chat.update")) is redrawn


async def test_evidence_changed_since_the_card_was_posted_redraws_and_sends_nothing() -> None:
    gateway = at_risk_signoff()
    old = blocks.CardRef(WID, "risk_signoff", 1, evidence_fingerprint(["b" * 64]))
    slack = FakeSlack()
    await a_desk(gateway).click(slack, click("U01RITA", ref=old))  # type: ignore[arg-type]
    assert gateway.sent == []
    assert "evidence changed" in slack.note()
    [update] = slack.of("chat.update")
    assert update["ts"] == "170.1"


async def test_an_outage_is_told_as_such() -> None:
    gateway = at_risk_signoff()
    gateway.answer = Unavailable(Outage.UNREACHABLE, "down")
    slack = FakeSlack()
    await a_desk(gateway).click(slack, click("U01RITA"))  # type: ignore[arg-type]
    assert "cannot reach" in slack.note()


async def test_a_comment_decision_opens_the_modal_for_who_may_decide_then_sends() -> None:
    gateway = at_risk_signoff()
    slack = FakeSlack()
    the_desk = a_desk(gateway)
    await the_desk.click(slack, click("U01RAJ", ActionId.REJECT))  # type: ignore[arg-type]
    assert gateway.sent == []
    [opened] = slack.of("views.open")
    pending = blocks.PendingDecision.decode(opened["view"]["private_metadata"])
    assert pending is not None
    gateway.answer = view_of("rejected", closed=True)
    await the_desk.comment_submitted(slack, "U01RAJ", pending, "no lawful basis")  # type: ignore[arg-type]
    [sent] = gateway.sent
    assert (sent.arg.decision, sent.arg.comment, sent.arg.gate) == (
        Decision.REJECT,
        "no lawful basis",
        Gate.RISK_SIGNOFF,
    )
    assert sent.update_id == "decide:raj:" + click("U01RAJ").idempotency_key


async def test_a_refused_comment_decision_redraws_a_stale_card() -> None:
    gateway = at_risk_signoff()
    gateway.answer = CommandRefused(Refusal.GATE_NOT_OPEN, "gate risk_signoff is not open")
    pending = blocks.PendingDecision(CARD, Decision.REQUEST_CHANGES, "k", "C0GATES", "170.1")
    slack = FakeSlack()
    await a_desk(gateway).comment_submitted(slack, "U01RAJ", pending, "redo")  # type: ignore[arg-type]
    assert "no longer open" in slack.note()
    assert slack.of("chat.update")


def test_the_desk_holds_no_rules() -> None:
    """Who may decide, which gate and round are open and whether the evidence still matches
    are the command layer's and the workflow's questions, never the desk's."""
    source = inspect.getsource(desk)
    for rule in (".eligible", "open_gate", "evidence_fingerprint", "policy.", "GATE_NAMES"):
        assert rule not in source, rule
    # what a key or a run id looks like is workflows.ids's, never a pattern of the desk's
    assert "re.compile" not in source
    assert "usecase-" not in source


def click_body(action_ts: str, user: str = "U01RITA") -> tuple[dict[str, Any], dict[str, Any]]:
    action = {"action_id": "gate_approve", "value": "{}", "action_ts": action_ts}
    body = {
        "user": {"id": user},
        "container": {"channel_id": "C1", "message_ts": "170.1"},
        "trigger_id": "t",
        "actions": [action],
    }
    return body, action


def test_the_idempotency_key_is_stable_for_a_redelivery_and_new_for_a_new_click() -> None:
    first = Click.from_body(*click_body("1.5")).idempotency_key
    assert first == Click.from_body(*click_body("1.5")).idempotency_key == "slack-170.1-1.5-U01RITA"
    assert first != Click.from_body(*click_body("1.6")).idempotency_key
    assert first != Click.from_body(*click_body("1.5", user="U01RAJ")).idempotency_key
