"""The notification activity and its adapters (log, outbound webhook) on real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from services.worker.notify import LogAdapter, NotificationActivities, WebhookAdapter
from workflows.activities import MessageRef, Notification, NotificationKind

SECRET = "notify-secret"


class Receiver:
    def __init__(self, status: int = 204) -> None:
        self.calls: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ts = self.headers["X-ReleaseGate-Timestamp"]
                expected = (
                    "sha256="
                    + hmac.new(
                        SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256
                    ).hexdigest()
                )
                receiver.calls.append(
                    {
                        "body": json.loads(body),
                        "signed": self.headers.get("X-ReleaseGate-Signature") == expected,
                    }
                )
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def notice() -> Notification:
    return Notification(
        kind=NotificationKind.ESCALATION,
        workflow_id="usecase-x",
        key="x",
        title="X",
        risk_tier="low",
        stage="risk_signoff",
        round=1,
        at=datetime(2026, 11, 28, tzinfo=UTC),
        text="Escalation — X: risk_signoff passed its SLA",
        recipients=["eve"],
    )


class Broken:
    name = "broken"

    async def send(self, notice: Notification, refs: list[MessageRef]) -> list[MessageRef]:
        raise RuntimeError("chat service down")


async def test_webhook_adapter_posts_signed_notice(receiver: Receiver) -> None:
    async with httpx.AsyncClient() as http:
        acts = NotificationActivities([LogAdapter(), WebhookAdapter(http, receiver.url, SECRET)])
        await acts.notify(notice())
    assert len(receiver.calls) == 1
    assert receiver.calls[0]["signed"]
    assert receiver.calls[0]["body"]["kind"] == "escalation"
    assert receiver.calls[0]["body"]["recipients"] == ["eve"]


async def test_one_broken_channel_does_not_silence_the_others(receiver: Receiver) -> None:
    async with httpx.AsyncClient() as http:
        acts = NotificationActivities([Broken(), WebhookAdapter(http, receiver.url, SECRET)])
        await acts.notify(notice())
    assert len(receiver.calls) == 1


async def test_all_channels_failing_raises_so_temporal_retries() -> None:
    acts = NotificationActivities([Broken()])
    with pytest.raises(RuntimeError, match="chat service down"):
        await acts.notify(notice())
