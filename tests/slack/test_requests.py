"""``POST /slack/events``: signed requests only, malformed payloads refused, off when unset."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlencode

import httpx
import pytest

from services.api.app import create_app
from services.settings import Settings
from tests.slack.double import Message
from tests.slack.helpers import CHANNEL, Slack

PROBLEM = "application/problem+json"
FAKE_TS = "1600000000.000001"


def fake_card_click(slack: Slack, user: str = "U01RITA") -> dict[str, object]:
    message = Message(CHANNEL, FAKE_TS, "card", [], {})
    value = json.dumps({"w": "usecase-nope", "g": "risk_signoff", "r": 1, "e": "0" * 16})
    return slack.click_payload(user, message, "gate_approve", value=value)


async def test_correctly_signed_request_is_processed(slack: Slack) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "t"}).encode()
    r = await slack.post(body, content_type="application/json")
    assert r.status_code == 200, r.text
    assert r.json() == {"challenge": "c-123"}


# what a listener answering a request calls; the worker posting cards for other tests' runs
# meanwhile only posts messages and updates its own
ANSWERS = ("chat.postEphemeral", "views.open", "respond", "auth.test")


async def _assert_nothing_processed(slack: Slack, before: int) -> None:
    await asyncio.sleep(0.3)  # a listener would have called Slack by now
    answered = [
        c for c in slack.double.calls[before:] if c.method in ANSWERS or c.args.get("ts") == FAKE_TS
    ]
    assert answered == []


async def test_wrong_secret_is_401_and_nothing_processed(slack: Slack) -> None:
    before = len(slack.double.calls)
    r = await slack.interact(fake_card_click(slack), secret="not-the-signing-secret")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith(PROBLEM)
    await _assert_nothing_processed(slack, before)


async def test_stale_timestamp_is_401_even_when_signed(slack: Slack) -> None:
    before = len(slack.double.calls)
    r = await slack.interact(fake_card_click(slack), timestamp=int(time.time()) - 6 * 60)
    assert r.status_code == 401
    await _assert_nothing_processed(slack, before)


async def test_body_modified_after_signing_is_401(slack: Slack) -> None:
    before = len(slack.double.calls)
    original = urlencode({"payload": json.dumps(fake_card_click(slack, "U01BO"))}).encode()
    tampered = urlencode({"payload": json.dumps(fake_card_click(slack, "U01RITA"))}).encode()
    r = await slack.post(tampered, signed_body=original)
    assert r.status_code == 401
    await _assert_nothing_processed(slack, before)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Slack-Request-Timestamp": "yesterday", "X-Slack-Signature": "v0=abc"},
        {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": ""},
    ],
)
async def test_missing_or_garbled_signature_headers_are_401(
    slack: Slack, headers: dict[str, str]
) -> None:
    r = await slack.api.post("/slack/events", content=b"payload=%7B%7D", headers=headers)
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"payload=not-json", "application/x-www-form-urlencoded"),
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (urlencode({"payload": json.dumps({"no": "type"})}).encode(), None),
        (urlencode({"payload": json.dumps({"type": "block_actions"})}).encode(), None),
        (urlencode({"command": "releasegate", "user_id": "U01RITA"}).encode(), None),
        (b"", "application/x-www-form-urlencoded"),
        (b"\xff\xfe", "application/x-www-form-urlencoded"),
    ],
)
async def test_malformed_payload_is_400(
    slack: Slack, body: bytes, content_type: str | None
) -> None:
    before = len(slack.double.calls)
    r = await slack.post(body, content_type=content_type or "application/x-www-form-urlencoded")
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    await _assert_nothing_processed(slack, before)


async def test_without_slack_settings_the_route_is_absent(slack_settings: Settings) -> None:
    settings = slack_settings.model_copy(
        update={"slack_bot_token": None, "slack_signing_secret": None}
    )
    app = create_app(settings)
    assert all(getattr(r, "path", "") != "/slack/events" for r in app.routes)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as client:
        r = await client.post("/slack/events", content=b"payload=%7B%7D")
        assert r.status_code == 404
        assert (await client.get("/healthz")).status_code == 200


async def test_token_alone_does_not_turn_slack_on(slack_settings: Settings) -> None:
    app = create_app(slack_settings.model_copy(update={"slack_signing_secret": None}))
    assert all(getattr(r, "path", "") != "/slack/events" for r in app.routes)
