"""The notification activity and its adapters (log, outbound webhook) on real HTTP."""

from __future__ import annotations

import dataclasses
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
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from services.worker.notify import LogAdapter, NotificationActivities, Progress, WebhookAdapter
from workflows.activities import MessageRef, Notification, NotificationKind, NotifyProgress

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
                        "key": self.headers.get("Idempotency-Key"),
                        "raw": body,
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

    async def send(
        self, notice: Notification, refs: list[MessageRef], progress: Progress | None = None
    ) -> list[MessageRef]:
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
    with pytest.raises(ApplicationError, match="chat service down"):
        await acts.notify(notice())


def retried(progress: Any) -> ActivityEnvironment:
    """An activity context for the attempt after one that heartbeated ``progress`` (as the
    worker decodes heartbeat details: plain JSON)."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info,
        attempt=2,
        heartbeat_details=[NotifyProgress.model_validate(progress).model_dump(mode="json")],
    )
    return env


async def test_webhook_key_names_the_notice_and_the_body_is_the_same_on_every_attempt(
    receiver: Receiver,
) -> None:
    """Without progress (a worker killed before its heartbeat left) a notice is delivered
    again: under the same key with the very same bytes, so the receiver can drop it."""
    first = notice().model_copy(
        update={"message_refs": [MessageRef(adapter="slack", channel="C1", ts="1.1")]}
    )
    async with httpx.AsyncClient() as http:
        acts = NotificationActivities([WebhookAdapter(http, receiver.url, SECRET)])
        await acts.notify(first)
        await acts.notify(first)
        # another notice of the same kind at the same instant is another key
        await acts.notify(notice().model_copy(update={"text": "Escalation — X: go_live"}))
    a, b, other = receiver.calls
    assert a["key"] == b["key"]
    assert a["raw"] == b["raw"]
    assert a["key"].startswith("usecase-x:escalation:2026-11-28T00:00:00+00:00:")
    assert other["key"] != a["key"]
    assert "message_refs" not in a["body"]  # the adapters' own references stay theirs
    assert all(c["signed"] for c in receiver.calls)


async def test_a_retry_does_not_deliver_again_what_an_attempt_delivered(
    receiver: Receiver,
) -> None:
    beats: list[NotifyProgress] = []
    async with httpx.AsyncClient() as http:
        acts = NotificationActivities([LogAdapter(), WebhookAdapter(http, receiver.url, SECRET)])
        first = ActivityEnvironment()
        first.on_heartbeat = lambda *details: beats.append(details[0])
        await first.run(acts.notify, notice())
        assert len(receiver.calls) == 1
        assert "webhook" in beats[-1].delivered
        await retried(beats[-1]).run(acts.notify, notice())
    assert len(receiver.calls) == 1


async def test_a_notice_that_fails_for_good_carries_its_progress() -> None:
    """Nothing delivered on this attempt, but an earlier one posted: the failure names it, so
    the run still closes that card."""
    earlier = NotifyProgress(
        posted={"slack:C1": MessageRef(adapter="slack", channel="C1", ts="9.1")}
    )
    acts = NotificationActivities([Broken()])
    with pytest.raises(ApplicationError) as failed:
        await retried(earlier).run(acts.notify, notice())
    assert NotifyProgress.model_validate(failed.value.details[0]).refs() == earlier.refs()
