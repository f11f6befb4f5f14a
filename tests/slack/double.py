"""A Slack Web API double on loopback: answers like Slack and records every call.

It keeps the messages it was asked to post, so a test reads a card the way a person sees it
(its current blocks after every ``chat.update``), and it serves ``response_url`` posts too.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.harness import serve_loopback

JSON_ARGS = ("blocks", "metadata", "view", "attachments")


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any]
    updates: int = 0

    @property
    def card(self) -> dict[str, Any]:
        payload = self.metadata.get("event_payload", {})
        return payload if isinstance(payload, dict) else {}

    def buttons(self) -> dict[str, str]:
        """action_id -> value of the card's buttons (empty once the gate is closed)."""
        return {
            e["action_id"]: e.get("value", "")
            for b in self.blocks
            if b.get("type") == "actions"
            for e in b.get("elements", [])
            if e.get("type") == "button"
        }

    def header(self) -> str:
        return next((b["text"]["text"] for b in self.blocks if b.get("type") == "header"), "")

    def mrkdwn(self) -> str:
        parts: list[str] = []
        for b in self.blocks:
            text = b.get("text")
            if isinstance(text, dict):
                parts.append(text.get("text", ""))
            for f in b.get("fields", []) + b.get("elements", []):
                if isinstance(f, dict) and isinstance(f.get("text"), str):
                    parts.append(f["text"])
        return "\n".join(parts)


class SlackDouble:
    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], Message] = {}
        self.fail_channels: set[str] = set()
        self.delays: dict[str, float] = {}
        self._seq = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""

    # ------------------------------------------------------------------ server

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)  # slack_sdk reads history with GET
        app.router.add_post("/respond/{hook}", self._respond)
        self._runner, self.url = await serve_loopback(app)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self) -> str:
        return f"{self.url}/respond/{next(self._seq)}"

    async def _args(self, request: web.Request) -> dict[str, Any]:
        raw = await request.text()
        if request.content_type == "application/json":
            args: dict[str, Any] = json.loads(raw or "{}")
        else:
            args = dict(parse_qsl(raw, keep_blank_values=True))
        args = {**dict(request.query), **args}  # slack_sdk sends some methods' args in the query
        for name in JSON_ARGS:
            if isinstance(args.get(name), str):
                args[name] = json.loads(args[name])
        return args

    async def _respond(self, request: web.Request) -> web.Response:
        self.calls.append(Call("respond", await request.json()))
        return web.Response(text="ok")

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        args = await self._args(request)
        self.calls.append(Call(method, args))
        if method in self.delays:
            await asyncio.sleep(self.delays[method])
        return web.json_response(self._answer(method, args))

    def _next_ts(self) -> str:
        n = next(self._seq)
        return f"{1_700_000_000 + n}.{n:06d}"

    @staticmethod
    def _dm(user: str) -> str:
        return "D" + user[1:]

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if channel in self.fail_channels:
            return {"ok": False, "error": "channel_not_found"}
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://releasegate-test.slack.com/",
                "team": "ReleaseGate Test",
                "user": "releasegate",
                "team_id": "T0TEST",
                "user_id": "U0BOT",
                "bot_id": "B0BOT",
                "is_enterprise_install": False,
            }
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": self._dm(str(args["users"]))}}
        if method == "chat.postMessage":
            if channel.startswith("U"):
                channel = self._dm(channel)
            ts = self._next_ts()
            self.messages[(channel, ts)] = Message(
                channel,
                ts,
                str(args.get("text", "")),
                list(args.get("blocks") or []),
                dict(args.get("metadata") or {}),
            )
            return {"ok": True, "channel": channel, "ts": ts, "message": {"text": args.get("text")}}
        if method == "chat.update":
            message = self.messages.get((channel, str(args.get("ts"))))
            if message is None:
                return {"ok": False, "error": "message_not_found"}
            message.text = str(args.get("text", ""))
            message.blocks = list(args.get("blocks") or [])
            message.metadata = dict(args.get("metadata") or message.metadata)
            message.updates += 1
            return {"ok": True, "channel": channel, "ts": message.ts, "text": message.text}
        if method == "conversations.history":
            return self._history(channel, args)
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self._next_ts()}
        if method == "views.open":
            if not args.get("trigger_id"):
                return {"ok": False, "error": "invalid_arguments"}
            return {"ok": True, "view": {**args["view"], "id": f"V{next(self._seq):06d}"}}
        return {"ok": True}

    def _history(self, channel: str, args: dict[str, Any]) -> dict[str, Any]:
        """Newest first, from ``oldest`` on; metadata only when asked for, as Slack does."""
        oldest = float(args.get("oldest") or 0)
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        found = sorted(
            (m for (c, ts), m in self.messages.items() if c == channel and float(ts) >= oldest),
            key=lambda m: float(m.ts),
            reverse=True,
        )[: int(args.get("limit") or 100)]
        return {
            "ok": True,
            "has_more": False,
            "messages": [
                {
                    "type": "message",
                    "ts": m.ts,
                    "text": m.text,
                    "bot_id": "B0BOT",
                    **({"metadata": m.metadata} if with_metadata and m.metadata else {}),
                }
                for m in found
            ],
        }

    # ------------------------------------------------------------------ reading what happened

    def of(self, method: str, where: Callable[[dict[str, Any]], bool] | None = None) -> list[Call]:
        return [c for c in self.calls if c.method == method and (where is None or where(c.args))]

    def cards(self, workflow_id: str, gate: str, round_: int = 1) -> list[Message]:
        return [
            m
            for m in self.messages.values()
            if m.card.get("workflow_id") == workflow_id
            and m.card.get("gate") == gate
            and m.card.get("round") == round_
        ]

    async def wait_for(
        self, check: Callable[[], Any], *, timeout: float = 20.0, what: str = "condition"
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)
