"""What the Slack listeners do once they have acknowledged: ``SlackDesk``.

The desk maps the Slack user to a directory person, hands the command to the command layer
(which authorizes with ``workflows.policy`` and sends the same Update REST sends) and answers in
Slack by the ``Refusal`` that comes back: a stale card is redrawn, a caller who may not decide is
told so in an ephemeral note. It holds no rules of its own and never records anything itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.commands.errors import CommandError, CommandRefused, RunNotFound, Unavailable
from services.commands.service import CommandService, Sender, workflow_id
from services.slack import blocks
from services.slack.actions import SLASH_COMMAND, ActionId
from services.store.registry import RegistryRepository, to_registry_row
from workflows.ids import use_case_run_id
from workflows.model import (
    Channel,
    CommandName,
    Decision,
    Gate,
    Refusal,
    UseCaseCreate,
    UseCaseView,
)
from workflows.policy import Directory, Person

log = logging.getLogger("releasegate.slack")

UNKNOWN_USER = (
    "Your Slack account is not linked to anyone in the ReleaseGate directory, so ReleaseGate "
    "cannot act for you. Nothing was recorded."
)
NOT_OURS = "That button is not ReleaseGate's."
NO_SUCH_GATE = "That card names no ReleaseGate gate."
EVIDENCE_CHANGED = (
    "The evidence changed since this card was posted. Nothing was recorded; review the "
    "refreshed card and approve again."
)
UNREACHABLE = "ReleaseGate cannot reach its workflow service right now. Nothing was recorded."
# refusals that mean the clicked card no longer shows an open gate: redraw it as it stands
NO_LONGER_OPEN = frozenset({Refusal.GATE_NOT_OPEN, Refusal.RUN_CLOSED, Refusal.WRONG_STAGE})


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
    def idempotency_key(self) -> str:
        """Slack delivering the same click again gives the same key, so the workflow counts it
        once (and answers the redelivery with the first answer); a new click is a new
        action_ts."""
        return f"slack-{self.message_ts}-{self.action_ts}-{self.user}"


@dataclass(frozen=True)
class Reply:
    """Where an answer to a click or a modal goes."""

    user: str
    channel: str | None
    message_ts: str | None


class SlackDesk:
    """The bot's work: gate cards, the comment modal, and ``/releasegate``."""

    def __init__(
        self,
        commands: CommandService,
        directory: Directory,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        self.commands = commands
        self.directory = directory
        self.sessionmaker = sessionmaker
        self.people = blocks.people_labels(directory.people.values())

    # ------------------------------------------------------------------ gate cards

    async def click(self, client: AsyncWebClient, click: Click) -> None:
        reply = Reply(click.user, click.channel, click.message_ts)
        ref = click.ref
        if ref is None:
            await self._tell(client, reply, NOT_OURS)
            return
        person = self.directory.by_slack(click.user)
        if person is None:
            await self._tell(client, reply, UNKNOWN_USER)
            return
        gate = _gate_of(ref)
        if gate is None:
            await self._tell(client, reply, NO_SUCH_GATE)
            return
        sender = Sender(person.id, Channel.SLACK, click.idempotency_key)
        try:
            if click.action == ActionId.APPROVE:
                view = await self.commands.approve_as_seen(
                    ref.workflow_id, sender, gate, ref.round, ref.evidence
                )
                await self._recorded(client, reply, ref, Decision.APPROVE, view)
                return
            # a comment first: ask only someone who may decide this gate at all
            await self.commands.authorize(ref.workflow_id, CommandName.DECIDE, person.id, gate=gate)
            view = await self.commands.state(ref.workflow_id)
        except CommandError as exc:
            await self._refused(client, reply, ref, exc)
            return
        pending = blocks.PendingDecision(
            ref=ref,
            decision=click.action.decision,
            idempotency_key=click.idempotency_key,
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
        reply = Reply(user, pending.channel, pending.message_ts)
        person = self.directory.by_slack(user)
        if person is None:
            await self._tell(client, reply, UNKNOWN_USER)
            return
        gate = _gate_of(pending.ref)
        if gate is None:
            await self._tell(client, reply, NO_SUCH_GATE)
            return
        sender = Sender(person.id, Channel.SLACK, pending.idempotency_key)
        try:
            view = await self.commands.decide(
                pending.ref.workflow_id, sender, gate, pending.decision, comment=comment
            )
        except CommandError as exc:
            await self._refused(client, reply, pending.ref, exc)
            return
        await self._recorded(client, reply, pending.ref, pending.decision, view)

    async def _recorded(
        self,
        client: AsyncWebClient,
        reply: Reply,
        ref: blocks.CardRef,
        decision: Decision,
        view: UseCaseView,
    ) -> None:
        # Every copy of the card is updated by the worker when the workflow's gate notice
        # runs; updating only this copy here could race it with an older state.
        await self._tell(
            client,
            reply,
            f"Recorded: you {blocks.DECISION_WORDS[decision]} "
            f"{blocks.label(ref.gate)} of *{blocks.esc(view.title)}*. "
            f"The use case is at {blocks.label(view.stage.value)}.",
        )

    async def _refused(
        self, client: AsyncWebClient, reply: Reply, ref: blocks.CardRef, exc: CommandError
    ) -> None:
        """Answer a refused click by why it was refused; nothing was recorded."""
        if isinstance(exc, Unavailable):
            await self._tell(client, reply, UNREACHABLE)
            return
        refusal = exc.refusal if isinstance(exc, CommandRefused) else None
        if refusal == Refusal.NOT_ELIGIBLE:
            await self._tell(client, reply, _not_eligible(ref))
        elif refusal == Refusal.EVIDENCE_CHANGED:
            await self._refresh(client, reply, ref)
            await self._tell(client, reply, EVIDENCE_CHANGED)
        elif refusal in NO_LONGER_OPEN:
            view = await self._refresh(client, reply, ref)
            await self._tell(client, reply, _no_longer_open(ref, view))
        elif refusal == Refusal.ALREADY_DECIDED:
            await self._refresh(client, reply, ref)
            await self._tell(client, reply, _nothing_recorded(exc))
        else:
            await self._tell(client, reply, _nothing_recorded(exc))

    async def _refresh(
        self, client: AsyncWebClient, reply: Reply, ref: blocks.CardRef
    ) -> UseCaseView | None:
        """Redraw a clicked card from the run's current state and history; the state, or None
        when it cannot be read."""
        try:
            view = await self.commands.state(ref.workflow_id)
            events = await self.commands.history(ref.workflow_id)
        except CommandError as exc:
            log.warning("cannot refresh card %s: %s", ref, exc.detail)
            return None
        if not reply.channel or not reply.message_ts:
            return view
        card = blocks.card_from_state(view, events, ref.gate, ref.round)
        await _call(
            client.chat_update(
                channel=reply.channel,
                ts=reply.message_ts,
                text=blocks.card_text(card),
                blocks=blocks.gate_card(card, self.people),
                metadata=blocks.card_metadata(card),
            )
        )
        return view

    async def _tell(self, client: AsyncWebClient, reply: Reply, text: str) -> None:
        """An ephemeral note for one person in the card's conversation (a DM without one)."""
        if reply.channel:
            await _call(
                client.chat_postEphemeral(channel=reply.channel, user=reply.user, text=text)
            )
        else:
            await _call(client.chat_postMessage(channel=reply.user, text=text))

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
            await self._status(respond, person, rest.strip())
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

    async def _status(self, respond: AsyncRespond, person: Person, key: str) -> None:
        if use_case_run_id(key) is None:  # names no use case (workflows.ids)
            await respond(
                text=f"Usage: `{SLASH_COMMAND} status KEY`, e.g. `{SLASH_COMMAND} status "
                "kyc-onboarding`",
                response_type="ephemeral",
            )
            return
        try:
            # need-to-know: a run the person may not read is "No use case", as an unknown one
            wid = workflow_id(key)
            await self.commands.readable(wid, person)
            view = await self.commands.state(wid)
        except CommandError as exc:
            text = (
                f"No use case `{key}`." if isinstance(exc, RunNotFound) else blocks.esc(exc.detail)
            )
            await respond(text=text, response_type="ephemeral")
            return
        await respond(
            text=blocks.status_text(view),
            blocks=blocks.status_blocks(view, self.people),
            response_type="ephemeral",
        )

    async def _pending(self, respond: AsyncRespond, person: Person) -> None:
        try:
            async with self.sessionmaker() as session:
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
        text = await self._started(person, request)
        if context.response_url:
            try:
                await AsyncWebhookClient(context.response_url).send(
                    text=text, response_type="ephemeral"
                )
                return
            except (SlackClientError, OSError) as exc:
                log.warning("start reply via response_url failed: %s", exc)
        await _call(client.chat_postMessage(channel=user, text=text))

    async def _started(self, person: Person, request: UseCaseCreate) -> str:
        """Start the run; what to tell the person who asked."""
        try:
            view, created = await self.commands.start(request, Sender(person.id, Channel.SLACK))
        except CommandError as exc:
            return f"Could not start `{blocks.esc(request.key)}`: {blocks.esc(exc.detail)}"
        key = blocks.esc(view.key)
        text = (
            f"Started *{blocks.esc(view.title)}* (`{key}`); you are its delivery lead "
            f"and it is at {blocks.label(view.stage.value)}."
            if created
            else f"`{key}` already runs with this definition; nothing new was started."
        )
        if view.temporal_ui_url:
            text += f" <{view.temporal_ui_url}|Open the run in the Temporal UI>"
        return text


async def _call(awaitable: Any) -> Any:
    """One Slack Web API call; a failure is logged, never raised into the listener."""
    try:
        return await awaitable
    except (SlackClientError, OSError, TimeoutError) as exc:
        log.warning("Slack API call failed: %s", exc)
        return None


def _gate_of(ref: blocks.CardRef) -> Gate | None:
    try:
        return Gate(ref.gate)
    except ValueError:
        return None


def _nothing_recorded(exc: CommandError) -> str:
    return f"Nothing was recorded: {blocks.esc(exc.detail)}."


def _not_eligible(ref: blocks.CardRef) -> str:
    return f"You are not eligible to decide {blocks.label(ref.gate)}. Nothing was recorded."


def _no_longer_open(ref: blocks.CardRef, view: UseCaseView | None) -> str:
    gate = f"{blocks.label(ref.gate)} (round {ref.round})"
    if view is None:
        return f"{gate} is no longer open. Nothing was recorded."
    return (
        f"{gate} of *{blocks.esc(view.title)}* is no longer open; the use case is at "
        f"{blocks.label(view.stage.value)}. Nothing was recorded; the card now shows where it "
        "stands."
    )


__all__ = ["Click", "SlackDesk"]
