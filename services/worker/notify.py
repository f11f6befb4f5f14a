"""Notifications: one activity, many channel adapters (log, Slack, outbound webhook).

The workflow does not care where a notice goes. Every adapter receives the same
``Notification`` and returns the references of anything it posted, which the workflow keeps
and hands back with later notices about the same gate so cards are updated in place.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

import httpx
from temporalio import activity

from services.worker.hooks import sign
from workflows.activities import NOTIFY, MessageRef, Notification, NotifyResult

log = logging.getLogger("releasegate.notify")


class Adapter(Protocol):
    name: str

    async def send(self, notice: Notification, refs: list[MessageRef]) -> list[MessageRef]:
        """Deliver ``notice``; ``refs`` are this adapter's earlier posts for the same card."""
        ...


class LogAdapter:
    """Always on: every notice lands in the worker's log, so nothing is silent."""

    name = "log"

    async def send(self, notice: Notification, refs: list[MessageRef]) -> list[MessageRef]:
        log.info(
            "notify %s %s [%s] to=%s: %s",
            notice.kind.value,
            notice.workflow_id,
            notice.gate.gate if notice.gate else notice.stage,
            ",".join(notice.recipients) or "-",
            notice.text,
        )
        return []


class NotificationActivities:
    def __init__(self, adapters: list[Adapter]) -> None:
        self._adapters = adapters

    @activity.defn(name=NOTIFY)
    async def notify(self, notice: Notification) -> NotifyResult:
        posted: list[MessageRef] = []
        failures: list[str] = []
        for adapter in self._adapters:
            mine = [r for r in notice.message_refs if r.adapter == adapter.name]
            try:
                posted += await adapter.send(notice, mine)
            except Exception as exc:  # one broken channel must not silence the others
                log.warning("adapter %s failed for %s: %s", adapter.name, notice.workflow_id, exc)
                failures.append(f"{adapter.name}: {exc}")
        if failures and not posted and len(failures) == len(self._adapters):
            # nothing got through anywhere: let Temporal retry the whole notice
            raise RuntimeError("; ".join(failures))
        return NotifyResult(message_refs=posted)


class WebhookAdapter:
    """Posts every notice as signed JSON to an outbound webhook (chat bridges, paging, SIEM).

    Signed like the deploy hooks: ``X-ReleaseGate-Signature: sha256=HMAC(secret,
    "<timestamp>.<body>")``. A 5xx or network error raises, so the notice is retried.
    """

    name = "webhook"

    def __init__(self, http: httpx.AsyncClient, url: str, secret: str | None) -> None:
        self._http = http
        self._url = url
        self._secret = secret

    async def send(self, notice: Notification, refs: list[MessageRef]) -> list[MessageRef]:
        body = notice.model_dump_json().encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-ReleaseGate-Timestamp": timestamp,
            "Idempotency-Key": f"{notice.workflow_id}:{notice.kind.value}:{notice.at.isoformat()}",
        }
        if self._secret:
            headers["X-ReleaseGate-Signature"] = sign(self._secret, timestamp, body)
        response = await self._http.post(self._url, content=body, headers=headers)
        if response.status_code >= 500:
            raise RuntimeError(f"notification webhook answered {response.status_code}")
        return []
