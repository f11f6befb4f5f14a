"""The Bolt app: listeners that acknowledge first and then hand the work to ``SlackDesk``.

Listeners stay thin. ``SlackDesk`` maps the Slack user to a directory person, asks the
workflow (through the same gateway the REST routes use) and answers in Slack; Block Kit comes
from ``blocks``. The workflow's update validators decide; the desk only pre-checks for a fast,
friendly answer and never records anything itself.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient
from sqlalchemy.exc import SQLAlchemyError

from services.api.deps import Resources
from services.api.gateway import workflow_id_for
from services.api.problems import Problem
from services.api.slack import blocks, forms
from services.api.slack.actions import SLASH_COMMAND, ActionId, CallbackId, InputId
from services.api.slack.client import web_client
from services.store.registry import RegistryRepository, to_registry_row
from workflows.model import Channel, Decision, Gate, GateDecision, UseCaseCreate, UseCaseView
from workflows.policy import Person
from workflows.release import UseCaseRelease

log = logging.getLogger("releasegate.slack")

GATE_NAMES = frozenset(g.value for g in Gate)
KEY_PATTERN = re.compile(r"^(usecase-)?[a-z0-9][a-z0-9-]{2,62}$")
UNKNOWN_USER = (
    "Your Slack account is not linked to anyone in the ReleaseGate directory, so ReleaseGate "
    "cannot act for you. Nothing was recorded."
)
# refusals after which the clicked card is out of date: show where the run stands now
STALE_CARD = {"gate-not-open", "run-closed", "already-decided", "wrong-stage", "evidence-changed"}


@dataclass(frozen=True)
class Click:
    """A click on a gate card's button, as Slack delivers it."""

    action: ActionId
    user: str
    channel: str | None
    message_ts: str | None
    action_ts: str
    trigger_id: str | None
    ref: blocks.CardRef | None

    @classmethod
    def from_body(cls, body: dict[str, Any], action: dict[str, Any]) -> Click:
        container = body.get("container") or {}
        return cls(
            action=ActionId(action.get("action_id", "")),
            user=str((body.get("user") or {}).get("id", "")),
            channel=container.get("channel_id") or (body.get("channel") or {}).get("id"),
            message_ts=container.get("message_ts") or (body.get("message") or {}).get("ts"),
            action_ts=str(action.get("action_ts", "")),
            trigger_id=body.get("trigger_id"),
            ref=blocks.CardRef.decode(action.get("value")),
        )

    @property
    def update_id(self) -> str:
        """The idempotency key: Slack delivering the same click again gives the same id, so
        the workflow counts it once; a new click is a new action_ts."""
        return f"slack-{self.message_ts}-{self.action_ts}-{self.user}"


class SlackDesk:
    """What the listeners do once they have acknowledged."""

    def __init__(self, resources: Resources) -> None:
        self.res = resources
        self.gateway = resources.gateway
        self.directory = resources.directory
        self.people = blocks.people_labels(resources.directory.people.values())

    # ------------------------------------------------------------------ gate cards

    async def click(self, client: AsyncWebClient, click: Click) -> None:
        ref = click.ref
        if ref is None:
            await self._tell(client, click.channel, click.user, "That button is not ReleaseGate's.")
            return
        person = self.directory.by_slack(click.user)
        if person is None:
            await self._tell(client, click.channel, click.user, UNKNOWN_USER)
            return
        try:
            view = await self.gateway.state(ref.workflow_id)
        except Problem as problem:
            await self._tell(client, click.channel, click.user, _nothing_recorded(problem))
            return
        gate = view.open_gate
        if view.closed or gate is None or gate.gate.value != ref.gate or gate.round != ref.round:
            if click.action == ActionId.APPROVE and _closed_gate(view, ref):
                # No gate of this name is open, so the workflow refuses any new decision; a
                # redelivered click gets its first answer back (same update id) instead.
                cmd = GateDecision(
                    actor=person.id,
                    gate=Gate(ref.gate),
                    decision=Decision.APPROVE,
                    channel=Channel.SLACK,
                )
                await self._decide(
                    client, click.user, cmd, ref, click.update_id, click.channel, click.message_ts
                )
                return
            await self._refresh(client, click.channel, click.message_ts, ref, view)
            await self._tell(
                client,
                click.channel,
                click.user,
                f"{blocks.label(ref.gate)} (round {ref.round}) of *{blocks.esc(view.title)}* is "
                f"no longer open; the use case is at {blocks.label(view.stage.value)}. Nothing "
                "was recorded; the card now shows where it stands.",
            )
            return
        if person.id not in gate.eligible:
            await self._tell(client, click.channel, click.user, _not_eligible(ref, view.title))
            return
        if click.action == ActionId.APPROVE:
            if blocks.evidence_fingerprint(gate.evidence_digests) != ref.evidence:
                await self._refresh(client, click.channel, click.message_ts, ref, view)
                await self._tell(
                    client,
                    click.channel,
                    click.user,
                    "The evidence changed since this card was posted. Nothing was recorded; "
                    "review the refreshed card and approve again.",
                )
                return
            cmd = GateDecision(
                actor=person.id,
                gate=gate.gate,
                decision=Decision.APPROVE,
                evidence_digests=list(gate.evidence_digests),
                channel=Channel.SLACK,
            )
            await self._decide(
                client, click.user, cmd, ref, click.update_id, click.channel, click.message_ts
            )
            return
        pending = blocks.PendingDecision(
            ref=ref,
            decision=click.action.decision,
            update_id=click.update_id,
            channel=click.channel,
            message_ts=click.message_ts,
        )
        await _call(
            client.views_open(
                trigger_id=click.trigger_id, view=blocks.comment_modal(pending, view.title)
            )
        )

    async def comment_submitted(
        self, client: AsyncWebClient, user: str, pending: blocks.PendingDecision, comment: str
    ) -> None:
        person = self.directory.by_slack(user)
        if person is None:
            await self._tell(client, pending.channel, user, UNKNOWN_USER)
            return
        try:
            gate = Gate(pending.ref.gate)
        except ValueError:
            await self._tell(client, pending.channel, user, "That card names no ReleaseGate gate.")
            return
        cmd = GateDecision(
            actor=person.id,
            gate=gate,
            decision=pending.decision,
            comment=comment,
            channel=Channel.SLACK,
        )
        await self._decide(
            client, user, cmd, pending.ref, pending.update_id, pending.channel, pending.message_ts
        )

    async def _decide(
        self,
        client: AsyncWebClient,
        user: str,
        cmd: GateDecision,
        ref: blocks.CardRef,
        update_id: str,
        channel: str | None,
        message_ts: str | None,
    ) -> None:
        """Send the decision as the same Update the REST API sends; the workflow decides."""
        try:
            view = await self.gateway.update(
                ref.workflow_id, UseCaseRelease.decide, cmd, update_id=update_id
            )
        except Problem as problem:
            if problem.code == "not-eligible":
                await self._tell(client, channel, user, _not_eligible(ref))
                return
            if problem.code in STALE_CARD:
                await self._refresh(client, channel, message_ts, ref)
            await self._tell(client, channel, user, _nothing_recorded(problem))
            return
        # Every copy of the card is updated by the worker when the workflow's gate notice
        # runs; updating only this copy here could race it with an older state.
        await self._tell(
            client,
            channel,
            user,
            f"Recorded: you {blocks.DECISION_WORDS[cmd.decision]} "
            f"{blocks.label(ref.gate)} of *{blocks.esc(view.title)}*. "
            f"The use case is at {blocks.label(view.stage.value)}.",
        )

    async def _refresh(
        self,
        client: AsyncWebClient,
        channel: str | None,
        message_ts: str | None,
        ref: blocks.CardRef,
        view: UseCaseView | None = None,
    ) -> None:
        """Redraw a clicked card from the run's current state and history."""
        if not channel or not message_ts:
            return
        try:
            view = view or await self.gateway.state(ref.workflow_id)
            events = await self.gateway.history(ref.workflow_id)
        except Problem as problem:
            log.warning("cannot refresh card %s: %s", ref, problem.detail)
            return
        card = blocks.card_from_state(view, events, ref.gate, ref.round)
        await _call(
            client.chat_update(
                channel=channel,
                ts=message_ts,
                text=blocks.card_text(card),
                blocks=blocks.gate_card(card, self.people),
                metadata=blocks.card_metadata(card),
            )
        )

    async def _tell(
        self, client: AsyncWebClient, channel: str | None, user: str, text: str
    ) -> None:
        """An ephemeral note for one person in the card's conversation (a DM without one)."""
        if channel:
            await _call(client.chat_postEphemeral(channel=channel, user=user, text=text))
        else:
            await _call(client.chat_postMessage(channel=user, text=text))

    # ------------------------------------------------------------------ /releasegate

    async def command(
        self, client: AsyncWebClient, respond: AsyncRespond, body: dict[str, Any]
    ) -> None:
        verb, _, rest = str(body.get("text", "")).strip().partition(" ")
        verb = verb.lower()
        if verb in ("", "help"):
            await respond(text=blocks.help_text(), response_type="ephemeral")
            return
        person = self.directory.by_slack(str(body.get("user_id", "")))
        if person is None:
            await respond(text=UNKNOWN_USER, response_type="ephemeral")
            return
        if verb == "status":
            await self._status(respond, rest.strip())
        elif verb == "pending":
            await self._pending(respond, person)
        elif verb == "start":
            context = blocks.StartContext(body.get("channel_id"), body.get("response_url"))
            people = sorted(self.directory.people.values(), key=lambda p: p.name.lower())
            groups = sorted({g for p in people for g in p.groups})
            view = blocks.start_modal(people, groups, context)
            await _call(client.views_open(trigger_id=body.get("trigger_id"), view=view))
        else:
            text = f"I don't know `{blocks.esc(verb)}`.\n{blocks.help_text()}"
            await respond(text=text, response_type="ephemeral")

    async def _status(self, respond: AsyncRespond, key: str) -> None:
        if not KEY_PATTERN.match(key):
            await respond(
                text=f"Usage: `{SLASH_COMMAND} status KEY`, e.g. `{SLASH_COMMAND} status "
                "kyc-onboarding`",
                response_type="ephemeral",
            )
            return
        try:
            view = await self.gateway.state(workflow_id_for(key))
        except Problem as problem:
            text = f"No use case `{key}`." if problem.status == 404 else problem.detail
            await respond(text=text, response_type="ephemeral")
            return
        await respond(
            text=blocks.status_text(view),
            blocks=blocks.status_blocks(view, self.people),
            response_type="ephemeral",
        )

    async def _pending(self, respond: AsyncRespond, person: Person) -> None:
        try:
            async with self.res.sessionmaker() as session:
                rows = await RegistryRepository(session).pending_for(person.id, limit=25)
                items = [to_registry_row(r) for r in rows if r.gate]
        except (SQLAlchemyError, OSError) as exc:
            log.warning("pending for %s: %s", person.id, exc)
            await respond(
                text="The ReleaseGate database is unreachable.", response_type="ephemeral"
            )
            return
        await respond(
            text=f"{len(items)} gate(s) waiting on you",
            blocks=blocks.pending_blocks(items),
            response_type="ephemeral",
        )

    async def start(
        self,
        client: AsyncWebClient,
        person: Person,
        request: UseCaseCreate,
        context: blocks.StartContext,
        user: str,
    ) -> None:
        try:
            view, created = await self.gateway.start(request, person.id)
        except Problem as problem:
            text = f"Could not start `{request.key}`: {problem.detail}"
        else:
            text = (
                f"Started *{blocks.esc(view.title)}* (`{view.key}`); you are its delivery lead "
                f"and it is at {blocks.label(view.stage.value)}."
                if created
                else f"`{view.key}` already runs with this definition; nothing new was started."
            )
            if view.temporal_ui_url:
                text += f" <{view.temporal_ui_url}|Open the run in the Temporal UI>"
        if context.response_url:
            try:
                await AsyncWebhookClient(context.response_url).send(
                    text=text, response_type="ephemeral"
                )
                return
            except (SlackClientError, OSError) as exc:
                log.warning("start reply via response_url failed: %s", exc)
        await _call(client.chat_postMessage(channel=user, text=text))


async def _call(awaitable: Any) -> Any:
    """One Slack Web API call; a failure is logged, never raised into the listener."""
    try:
        return await awaitable
    except (SlackClientError, OSError, TimeoutError) as exc:
        log.warning("Slack API call failed: %s", exc)
        return None


def _closed_gate(view: UseCaseView, ref: blocks.CardRef) -> bool:
    """The run is open but no gate named like the card's is: a decision can only be refused."""
    open_now = view.open_gate.gate.value if view.open_gate else None
    return not view.closed and ref.gate in GATE_NAMES and open_now != ref.gate


def _nothing_recorded(problem: Problem) -> str:
    if problem.status == 503:
        return "ReleaseGate cannot reach its workflow service right now. Nothing was recorded."
    return f"Nothing was recorded: {problem.detail}."


def _not_eligible(ref: blocks.CardRef, title: str | None = None) -> str:
    of = f" of *{blocks.esc(title)}*" if title else ""
    return f"You are not eligible to decide {blocks.label(ref.gate)}{of}. Nothing was recorded."


def build_slack_app(resources: Resources) -> AsyncApp:
    """One Bolt app per process, its Web API client pointed at ``SLACK_API_URL``."""
    settings = resources.settings
    app = AsyncApp(
        client=web_client(settings),
        signing_secret=settings.slack_signing_secret,
        request_verification_enabled=True,
        name="releasegate",
    )
    desk = SlackDesk(resources)

    async def on_button(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()
        await desk.click(client, Click.from_body(body, action))

    for action_id in ActionId:
        app.action(action_id.value)(on_button)

    @app.view(CallbackId.DECISION_COMMENT.value)
    async def on_comment(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        pending = blocks.PendingDecision.decode(view.get("private_metadata"))
        comment = forms.comment_of(view)
        if pending is not None and not comment:
            verb = "request changes" if pending.decision == Decision.REQUEST_CHANGES else "reject"
            await ack(
                response_action="errors",
                errors={InputId.COMMENT.value: f"A comment is required to {verb}."},
            )
            return
        await ack()
        if pending is None:
            log.warning("comment modal without its decision context: %s", view.get("id"))
            return
        await desk.comment_submitted(client, str(body["user"]["id"]), pending, comment)

    @app.command(SLASH_COMMAND)
    async def on_command(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        await desk.command(client, respond, body)

    @app.view(CallbackId.START_USE_CASE.value)
    async def on_start(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        user = str(body["user"]["id"])
        person = resources.directory.by_slack(user)
        if person is None:
            await ack(response_action="errors", errors={InputId.KEY.value: UNKNOWN_USER})
            return
        request = forms.start_request(view, person.id, resources.directory, resources.policy)
        if isinstance(request, dict):
            await ack(response_action="errors", errors=request)
            return
        await ack()
        context = blocks.StartContext.decode(view.get("private_metadata"))
        await desk.start(client, person, request, context, user)

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error("Slack listener failed (%s): %s", body.get("type"), error, exc_info=error)

    return app
