"""``POST /slack/events``: events, interactivity and slash commands on one URL.

The signature is checked here before Bolt sees the request (Bolt checks it again), so a bad
signature or a stale timestamp is a 401 problem document and a signed body that Slack would
never send is a 400, instead of an error inside the framework. Nothing is processed for either.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, FastAPI, Request, Response
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler

from services.api.deps import Resources
from services.api.problems import problem_response
from services.settings import Settings
from services.slack.app import build_slack_app
from services.slack.client import slack_configured
from services.slack.desk import SlackDesk

router = APIRouter(tags=["slack"])

MAX_CLOCK_SKEW_SECONDS = 5 * 60  # Slack's replay window

# interactive payloads that name the person acting
USER_PAYLOADS = {
    "block_actions",
    "view_submission",
    "view_closed",
    "shortcut",
    "message_action",
    "block_suggestion",
}


def install_slack(app: FastAPI, settings: Settings) -> None:
    """Mount ``POST /slack/events`` when Slack is configured; otherwise the route is absent."""
    if slack_configured(settings):
        app.include_router(router)


def signed_by_slack(secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
    """Slack's v0 signature: HMAC-SHA256 over ``v0:<timestamp>:<raw body>``, with the
    timestamp at most five minutes off. Same check as ``slack_sdk``'s SignatureVerifier, done
    on the raw bytes so a body that is not UTF-8 is still judged by its signature first."""
    timestamp = headers.get("x-slack-request-timestamp", "")
    signature = headers.get("x-slack-signature", "")
    if not timestamp.isdigit() or not signature or not secret:
        return False
    if abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        return False
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode())


def parse_payload(body: bytes, content_type: str | None) -> dict[str, Any] | None:
    """The payload as Bolt will read it, or None when it is not something Slack sends."""
    try:
        text = body.decode("utf-8")
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media == "application/json" or text.startswith("{"):
            doc = json.loads(text)
        else:
            params = dict(parse_qsl(text, keep_blank_values=True, strict_parsing=True))
            doc = json.loads(params["payload"]) if "payload" in params else params
    except (UnicodeDecodeError, ValueError, KeyError):
        return None
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("command"), str):
        return doc if doc["command"].startswith("/") and doc.get("user_id") else None
    kind = doc.get("type")
    if not isinstance(kind, str):
        return None
    if kind in USER_PAYLOADS:
        user = doc.get("user")
        return doc if isinstance(user, dict) and user.get("id") else None
    if kind == "event_callback":
        return doc if isinstance(doc.get("event"), dict) else None
    if kind == "url_verification":
        return doc if isinstance(doc.get("challenge"), str) else None
    return doc


def _handler(app: FastAPI, resources: Resources) -> AsyncSlackRequestHandler:
    """The Bolt app, built on first use from the lifespan's resources (command layer,
    directory, database)."""
    handler: AsyncSlackRequestHandler | None = getattr(app.state, "slack_handler", None)
    if handler is None:
        desk = SlackDesk(resources.commands, resources.directory, resources.sessionmaker)
        handler = AsyncSlackRequestHandler(
            build_slack_app(resources.settings, desk, resources.policy)
        )
        app.state.slack_handler = handler
    return handler


@router.post("/slack/events", include_in_schema=False)
async def slack_events(request: Request) -> Response:
    resources: Resources = request.app.state.resources
    secret = resources.settings.slack_signing_secret or ""
    body = await request.body()
    if not signed_by_slack(secret, body, request.headers):
        return problem_response(
            401,
            "the request is not signed by Slack (bad signature or a timestamp older than 5 min)",
            "invalid-slack-signature",
        )
    if parse_payload(body, request.headers.get("content-type")) is None:
        return problem_response(400, "not a Slack payload", "malformed-slack-payload")
    # the handler reads the body again: Starlette caches it on the request
    return await _handler(request.app, resources).handle(request)
