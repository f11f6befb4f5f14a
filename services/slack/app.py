"""The Bolt app: listeners that acknowledge first and then hand the work to ``SlackDesk``.

Listeners stay thin: they read what Slack sent, answer a bad modal submission inside the modal,
and leave everything else to the desk, which goes through the command layer.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from services.settings import Settings
from services.slack import blocks, forms
from services.slack.actions import SLASH_COMMAND, ActionId, CallbackId, InputId
from services.slack.client import web_client
from services.slack.desk import UNKNOWN_USER, Click, SlackDesk
from workflows.model import Decision
from workflows.policy import LoadedPolicy

log = logging.getLogger("releasegate.slack")


def build_slack_app(settings: Settings, desk: SlackDesk, loaded_policy: LoadedPolicy) -> AsyncApp:
    """One Bolt app per process, its Web API client pointed at ``SLACK_API_URL``."""
    app = AsyncApp(
        client=web_client(settings),
        signing_secret=settings.slack_signing_secret,
        request_verification_enabled=True,
        name="releasegate",
    )
    directory = desk.directory

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
        person = directory.by_slack(user)
        if person is None:
            await ack(response_action="errors", errors={InputId.KEY.value: UNKNOWN_USER})
            return
        request = forms.start_request(view, person.id, directory, loaded_policy)
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
