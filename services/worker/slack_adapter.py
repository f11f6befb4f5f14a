"""Slack notification adapter: posts gate cards and keeps every copy of them current.

On ``gate_opened`` the card goes to the use case's channel (when it has one) and as a direct
message to each person the gate waits on; the posts' references go back to the workflow,
which hands them in with later ``gate_updated`` / ``gate_closed`` notices for the same gate
and round, so each copy is redrawn in place (approvals so far, then the outcome, no buttons).
Reminders and escalations are direct messages; live-operation events go to the channel and
the owners.

A retried notice posts nothing twice: each post is recorded in the notice's ``Progress``
(heartbeated), and on a retry a conversation with no recorded post is first searched for the
one an earlier attempt made but never heard back about (``conversations.history`` with
message metadata: the card's workflow, gate and round, or the notice's key), which is adopted
instead of posting again. Without the history scopes (``channels:history``, ``groups:history``,
``im:history``) the search fails, is logged, and the post goes out again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from services.settings import Settings
from services.slack.blocks import (
    CARD_EVENT_TYPE,
    SLACK_USER_ID,
    card_from_notice,
    card_metadata,
    card_text,
    esc,
    gate_card,
    people_labels,
)
from services.slack.client import web_client
from services.worker.notify import Progress, notice_key
from workflows.activities import MessageRef, Notification, NotificationKind
from workflows.policy import Directory, load_directory

log = logging.getLogger("releasegate.notify.slack")

CARD_KINDS = (
    NotificationKind.GATE_OPENED,
    NotificationKind.GATE_UPDATED,
    NotificationKind.GATE_CLOSED,
)
SLACK_ERRORS = (SlackClientError, aiohttp.ClientError, TimeoutError)
# the message metadata of notices that are not cards (reminders, escalations, live events)
NOTICE_EVENT_TYPE = "releasegate_notice"
# how many of a conversation's newest messages a retry searches for an earlier attempt's post
# (a retry follows its attempt within minutes; the card's or notice's mark is unique to it)
HISTORY_LIMIT = 200


@dataclass(frozen=True)
class Mark:
    """How a retry recognises, in a conversation's history, a post of this notice."""

    event_type: str
    payload: dict[str, Any]  # every item must match the message metadata's event_payload

    def matches(self, message: dict[str, Any]) -> bool:
        metadata = message.get("metadata")
        if not isinstance(metadata, dict) or metadata.get("event_type") != self.event_type:
            return False
        payload = metadata.get("event_payload")
        return isinstance(payload, dict) and all(
            payload.get(k) == v for k, v in self.payload.items()
        )


class SlackAdapter:
    name = "slack"

    def __init__(
        self,
        client: AsyncWebClient,
        directory: Directory,
        ui_url: Callable[[str], str] | None = None,
    ) -> None:
        self._client = client
        self._directory = directory
        self._ui_url = ui_url
        self._people = people_labels(directory.people.values())
        self._dm_channels: dict[str, str] = {}  # Slack user id -> DM channel id

    async def send(
        self, notice: Notification, refs: list[MessageRef], progress: Progress | None = None
    ) -> list[MessageRef]:
        progress = progress or Progress()
        if notice.gate is None or notice.kind not in CARD_KINDS:
            await self._post_text(notice, progress)
            return []
        card = card_from_notice(notice, self._ui_url(notice.workflow_id) if self._ui_url else None)
        metadata = card_metadata(card)
        message: dict[str, Any] = {
            "text": card_text(card),
            "blocks": gate_card(card, self._people),
            "metadata": metadata,
        }
        if notice.kind == NotificationKind.GATE_OPENED:
            # the card of this gate and round, whichever attempt posted it
            identity = {k: metadata["event_payload"][k] for k in ("workflow_id", "gate", "round")}
            return await self._post_everywhere(
                notice, message, progress, Mark(CARD_EVENT_TYPE, identity)
            )
        await self._update_all(refs, message)
        return refs

    # ------------------------------------------------------------------ posting

    def _slack_users(self, person_ids: list[str]) -> list[str]:
        users = []
        for pid in dict.fromkeys(person_ids):
            person = self._directory.get(pid)
            if person is None or not person.slack_user_id:
                log.info("no Slack id for %s: no direct message", pid)
                continue
            if not SLACK_USER_ID.match(person.slack_user_id):
                log.warning("%s: slack_user_id is not a Slack user id: no direct message", pid)
                continue
            users.append(person.slack_user_id)
        return users

    async def _dm_channel(self, slack_user: str) -> str:
        channel = self._dm_channels.get(slack_user)
        if channel is None:
            opened = await self._client.conversations_open(users=slack_user)
            channel = str(opened["channel"]["id"])
            self._dm_channels[slack_user] = channel
        return channel

    async def _post(
        self, message: dict[str, Any], *, channel: str | None = None, user: str | None = None
    ) -> MessageRef | None:
        """One post; a failure is logged so one unreachable recipient never stops the rest."""
        try:
            target = channel or await self._dm_channel(str(user))
            posted = await self._client.chat_postMessage(channel=target, **message)
        except SLACK_ERRORS as exc:
            log.warning("Slack post to %s failed: %s", channel or user, exc)
            return None
        return MessageRef(adapter=self.name, channel=str(posted["channel"]), ts=str(posted["ts"]))

    async def _post_to(
        self,
        message: dict[str, Any],
        channel: str | None,
        users: list[str],
        progress: Progress,
        mark: Mark,
    ) -> list[MessageRef]:
        """Post ``message`` once to the channel and to each user: a conversation this notice
        already has a post in (recorded, or found on a retry) gets none."""

        async def once(target: str, *, user: bool) -> MessageRef | None:
            known = progress.posted(self.name, target)
            if known is not None:
                return known
            ref = None
            if progress.retry:
                ref = await self._find(mark, user=target if user else None, channel=target)
            if ref is None:
                ref = await self._post(
                    message, **({"user": target} if user else {"channel": target})
                )
            if ref is not None:
                progress.record(self.name, target, ref)
            return ref

        posts = [once(u, user=True) for u in users]
        if channel:
            posts.insert(0, once(channel, user=False))
        if not posts:
            return []
        refs = [r for r in await asyncio.gather(*posts) if r is not None]
        if not refs:
            raise RuntimeError(f"no Slack message could be posted ({len(posts)} attempted)")
        return refs

    async def _find(self, mark: Mark, *, user: str | None, channel: str) -> MessageRef | None:
        """This notice's post in the conversation, made by an attempt that never heard back
        about it; None when there is none or the history cannot be read."""
        try:
            conversation = await self._dm_channel(user) if user else channel
            answer = await self._client.conversations_history(
                channel=conversation,
                include_all_metadata=True,
                limit=HISTORY_LIMIT,
            )
        except SLACK_ERRORS as exc:
            log.warning("cannot search %s for an earlier post: %s", user or channel, exc)
            return None
        for found in answer.get("messages") or []:
            if isinstance(found, dict) and mark.matches(found) and found.get("ts"):
                log.info("adopting %s/%s posted by an earlier attempt", conversation, found["ts"])
                return MessageRef(adapter=self.name, channel=conversation, ts=str(found["ts"]))
        return None

    async def _post_everywhere(
        self, notice: Notification, message: dict[str, Any], progress: Progress, mark: Mark
    ) -> list[MessageRef]:
        return await self._post_to(
            message,
            notice.slack_channel,
            self._slack_users(notice.recipients),
            progress,
            mark,
        )

    async def _update_all(self, refs: list[MessageRef], message: dict[str, Any]) -> None:
        async def update(ref: MessageRef) -> bool:
            try:
                await self._client.chat_update(channel=ref.channel, ts=ref.ts, **message)
            except SLACK_ERRORS as exc:
                log.warning("Slack update of %s/%s failed: %s", ref.channel, ref.ts, exc)
                return False
            return True

        done = await asyncio.gather(*(update(r) for r in refs))
        if refs and not any(done):
            raise RuntimeError(f"no Slack card could be updated ({len(refs)} attempted)")

    async def _post_text(self, notice: Notification, progress: Progress) -> None:
        """Reminders and escalations to the people named; live events to the channel too."""
        text = esc(notice.text)
        if self._ui_url:
            text += f" — <{self._ui_url(notice.workflow_id)}|open the run>"
        channel = notice.slack_channel if notice.kind == NotificationKind.LIVE_EVENT else None
        mark = Mark(NOTICE_EVENT_TYPE, {"notice": notice_key(notice)})
        message = {
            "text": text,
            "metadata": {"event_type": mark.event_type, "event_payload": mark.payload},
        }
        await self._post_to(message, channel, self._slack_users(notice.recipients), progress, mark)


def slack_adapter(settings: Settings) -> SlackAdapter:
    """The adapter the worker runs when ``SLACK_BOT_TOKEN`` and ``SLACK_SIGNING_SECRET`` are set."""
    return SlackAdapter(
        web_client(settings), load_directory(settings.directory_path), settings.workflow_ui_url
    )
