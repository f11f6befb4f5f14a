"""Slack notification adapter: posts gate cards and keeps every copy of them current.

On ``gate_opened`` the card goes to the use case's channel (when it has one) and as a direct
message to each person the gate waits on; the posts' references go back to the workflow,
which hands them in with later ``gate_updated`` / ``gate_closed`` notices for the same gate
and round, so each copy is redrawn in place (approvals so far, then the outcome, no buttons).
Reminders and escalations are direct messages; live-operation events go to the channel and
the owners.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from services.settings import Settings
from services.slack.blocks import (
    SLACK_USER_ID,
    card_from_notice,
    card_metadata,
    card_text,
    esc,
    gate_card,
    people_labels,
)
from services.slack.client import web_client
from workflows.activities import MessageRef, Notification, NotificationKind
from workflows.policy import Directory, load_directory

log = logging.getLogger("releasegate.notify.slack")

CARD_KINDS = (
    NotificationKind.GATE_OPENED,
    NotificationKind.GATE_UPDATED,
    NotificationKind.GATE_CLOSED,
)
SLACK_ERRORS = (SlackClientError, aiohttp.ClientError, TimeoutError)


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

    async def send(self, notice: Notification, refs: list[MessageRef]) -> list[MessageRef]:
        if notice.gate is None or notice.kind not in CARD_KINDS:
            await self._post_text(notice)
            return []
        card = card_from_notice(notice, self._ui_url(notice.workflow_id) if self._ui_url else None)
        message: dict[str, Any] = {
            "text": card_text(card),
            "blocks": gate_card(card, self._people),
            "metadata": card_metadata(card),
        }
        if notice.kind == NotificationKind.GATE_OPENED:
            return await self._post_everywhere(notice, message)
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
        self, message: dict[str, Any], channel: str | None, users: list[str]
    ) -> list[MessageRef]:
        posts = [self._post(message, user=u) for u in users]
        if channel:
            posts.insert(0, self._post(message, channel=channel))
        if not posts:
            return []
        refs = [r for r in await asyncio.gather(*posts) if r is not None]
        if not refs:
            raise RuntimeError(f"no Slack message could be posted ({len(posts)} attempted)")
        return refs

    async def _post_everywhere(
        self, notice: Notification, message: dict[str, Any]
    ) -> list[MessageRef]:
        return await self._post_to(
            message, notice.slack_channel, self._slack_users(notice.recipients)
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

    async def _post_text(self, notice: Notification) -> None:
        """Reminders and escalations to the people named; live events to the channel too."""
        text = esc(notice.text)
        if self._ui_url:
            text += f" — <{self._ui_url(notice.workflow_id)}|open the run>"
        channel = notice.slack_channel if notice.kind == NotificationKind.LIVE_EVENT else None
        await self._post_to({"text": text}, channel, self._slack_users(notice.recipients))


def slack_adapter(settings: Settings) -> SlackAdapter:
    """The adapter the worker runs when ``SLACK_BOT_TOKEN`` and ``SLACK_SIGNING_SECRET`` are set."""
    return SlackAdapter(
        web_client(settings), load_directory(settings.directory_path), settings.workflow_ui_url
    )
