"""Signed Slack requests and a few REST steps, shared by the Slack tests."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from tests.slack.double import Message, SlackDouble
from tests.workflows.helpers import GATE_APPROVERS, GATE_EVIDENCE, STAGE_EVIDENCE, evidence

TOKEN = "xoxb-releasegate-test"
SECRET = "slack-signing-secret-under-test"
CHANNEL = "C0GATES"
SLACK_IDS = {
    "dana": "U01DANA",
    "tom": "U01TOM",
    "bo": "U01BO",
    "olga": "U01OLGA",
    "rita": "U01RITA",
    "raj": "U01RAJ",
    "eve": "U01EVE",
}
FORM = "application/x-www-form-urlencoded"
_action_seq = itertools.count(1)


def sign(body: bytes, timestamp: str, secret: str = SECRET) -> str:
    """Slack's v0 signature: HMAC-SHA256 over ``v0:<timestamp>:<body>``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def auth(person: str) -> dict[str, str]:
    return {"Authorization": f"Bearer dev-{person}"}


@dataclass
class Slack:
    """Posts to ``/slack/events`` the way Slack does (signed), against the in-process API."""

    api: httpx.AsyncClient
    double: SlackDouble

    async def post(
        self,
        body: bytes,
        *,
        content_type: str = FORM,
        secret: str = SECRET,
        timestamp: int | None = None,
        signed_body: bytes | None = None,
    ) -> httpx.Response:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": sign(signed_body if signed_body is not None else body, ts, secret),
        }
        return await self.api.post("/slack/events", content=body, headers=headers)

    async def interact(self, payload: dict[str, Any], **kw: Any) -> httpx.Response:
        return await self.post(urlencode({"payload": json.dumps(payload)}).encode(), **kw)

    @staticmethod
    def click_payload(
        user: str,
        message: Message,
        action_id: str,
        *,
        value: str | None = None,
        action_ts: str | None = None,
    ) -> dict[str, Any]:
        value = value if value is not None else message.buttons()[action_id]
        return {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "team_id": "T0TEST"},
            "api_app_id": "A0RELEASEGATE",
            "token": "legacy-verification-token",
            "team": {"id": "T0TEST", "domain": "releasegate-test"},
            "container": {
                "type": "message",
                "message_ts": message.ts,
                "channel_id": message.channel,
                "is_ephemeral": False,
            },
            "trigger_id": f"trigger-{uuid.uuid4().hex[:12]}",
            "channel": {"id": message.channel, "name": "gates"},
            "message": {"type": "message", "ts": message.ts, "text": message.text},
            "response_url": "https://hooks.invalid/not-used",
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "gate_actions",
                    "value": value,
                    "action_ts": action_ts or f"{time.time():.6f}{next(_action_seq)}",
                }
            ],
        }

    async def click(self, user: str, message: Message, action_id: str, **kw: Any) -> httpx.Response:
        return await self.interact(self.click_payload(user, message, action_id, **kw))

    async def submit(
        self, user: str, view: dict[str, Any], values: dict[str, Any]
    ) -> httpx.Response:
        """Submit a modal the bot opened (``view`` as views.open received it)."""
        payload = {
            "type": "view_submission",
            "team": {"id": "T0TEST", "domain": "releasegate-test"},
            "user": {"id": user, "username": user.lower(), "team_id": "T0TEST"},
            "api_app_id": "A0RELEASEGATE",
            "token": "legacy-verification-token",
            "trigger_id": f"trigger-{uuid.uuid4().hex[:12]}",
            "view": {
                **view,
                "id": view.get("id", f"V{uuid.uuid4().hex[:8]}"),
                "state": {"values": values},
                "hash": uuid.uuid4().hex,
            },
            "response_urls": [],
        }
        return await self.interact(payload)

    async def command(self, user: str, text: str, channel: str = CHANNEL) -> httpx.Response:
        form = {
            "token": "legacy-verification-token",
            "team_id": "T0TEST",
            "team_domain": "releasegate-test",
            "channel_id": channel,
            "channel_name": "gates",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/releasegate",
            "text": text,
            "api_app_id": "A0RELEASEGATE",
            "response_url": self.double.response_url(),
            "trigger_id": f"trigger-{uuid.uuid4().hex[:12]}",
        }
        return await self.post(urlencode(form).encode())

    def responses(self, since: int = 0) -> list[dict[str, Any]]:
        return [c.args for c in self.double.calls[since:] if c.method == "respond"]


def comment_values(text: str) -> dict[str, Any]:
    return {"comment": {"comment": {"type": "plain_text_input", "value": text}}}


# --------------------------------------------------------------------------- REST steps


async def start_use_case(
    api: httpx.AsyncClient, tier: str = "low", *, channel: str | None = CHANNEL
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": f"uc-{uuid.uuid4().hex[:10]}",
        "title": "Claims triage assistant",
        "summary": "Routes incoming claims to the right queue",
        "risk_tier": tier,
        "owners": {
            "business_owner": "bo",
            "technical_owner": "tom",
            "operations_owner": "olga",
            "risk_approvers": ["group:risk-committee"],
            "escalation_owner": "eve",
        },
    }
    if channel:
        body["slack_channel"] = channel
    r = await api.post("/v1/use-cases", json=body, headers=auth("dana"))
    assert r.status_code == 201, r.text
    return dict(r.json())


async def walk_to(api: httpx.AsyncClient, uc: dict[str, Any], target: str) -> dict[str, Any]:
    """Drive a use case over REST until ``target`` is open. Validation brings the evidence
    every later gate asks for, so the gates open with nothing missing."""
    tier, state = uc["risk_tier"], await state_of(api, uc)
    while state["stage"] != target:
        stage = state["stage"]
        if state["open_gate"] is None:
            kinds = list(STAGE_EVIDENCE[tier].get(stage, []))
            if stage == "validation":
                kinds += [k for ks in GATE_EVIDENCE[tier].values() for k in ks]
            r = await api.post(
                f"/v1/use-cases/{uc['id']}/stages/{stage}/complete",
                json={"evidence": [evidence(k).model_dump() for k in kinds]},
                headers=auth("dana"),
            )
        else:
            for person in GATE_APPROVERS[tier][stage]:
                r = await api.post(
                    f"/v1/use-cases/{uc['id']}/gates/{stage}/decisions",
                    json={"decision": "approve"},
                    headers={**auth(person), **await seen(api, uc, person)},
                )
        assert r.status_code == 200, r.text
        state = r.json()
    return state


async def seen(api: httpx.AsyncClient, uc: dict[str, Any], person: str) -> dict[str, str]:
    """``If-Match`` of ``person`` having reviewed the run's state: an approval over REST names
    the evidence its approver saw."""
    r = await api.get(f"/v1/use-cases/{uc['id']}", headers=auth(person))
    assert r.status_code == 200, r.text
    return {"If-Match": r.headers["etag"]}


async def decisions(api: httpx.AsyncClient, uc: dict[str, Any], gate: str) -> list[dict[str, Any]]:
    r = await api.get(f"/v1/use-cases/{uc['id']}/history", headers=auth("dana"))
    assert r.status_code == 200, r.text
    return [e for e in r.json() if e["kind"] == "decision" and e["gate"] == gate]


async def state_of(
    api: httpx.AsyncClient, uc: dict[str, Any], person: str = "dana"
) -> dict[str, Any]:
    """The run's state as ``person`` reads it (one of its people: reads are need-to-know)."""
    r = await api.get(f"/v1/use-cases/{uc['id']}", headers=auth(person))
    assert r.status_code == 200, r.text
    return dict(r.json())
