"""Notifications: one activity, many channel adapters (log, Slack, outbound webhook).

The workflow does not care where a notice goes. Every adapter receives the same
``Notification`` and returns the references of anything it posted, which the workflow keeps
and hands back with later notices about the same gate so cards are updated in place.

Effects once in effect. The activity is at-least-once (a worker killed mid-send runs it again),
so its progress survives the retry: every post is heartbeated as a ``NotifyProgress`` and read
back on the next attempt (``activity.info().heartbeat_details``), so a card already posted is
not posted again; an adapter that posts can also look, on a retry, for what an attempt posted
but never heard back about (the Slack adapter reads the conversation). A notice that finally
fails carries its progress (heartbeat details of a timeout, details of its error), so the run
still knows, and closes, every card posted for it. A webhook notice is delivered at most once
per ``Idempotency-Key`` as the receiver sees it: the key names the notice (not the attempt),
the body is the same bytes on every attempt, and a delivery heartbeated as done is not
repeated.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

import httpx
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from services.worker.hooks import sign
from workflows.activities import NOTIFY, MessageRef, Notification, NotifyProgress, NotifyResult

log = logging.getLogger("releasegate.notify")

# ApplicationError type of a notice no adapter could deliver (retried; its details carry the
# NotifyProgress so far)
NOTIFY_FAILED = "notify_failed"


def notice_body(notice: Notification) -> bytes:
    """The notice as every delivery of it carries it: the workflow's notice without the
    adapters' own message references, byte for byte the same on every attempt."""
    return notice.model_dump_json(exclude={"message_refs"}).encode()


def notice_key(notice: Notification) -> str:
    """The notice's idempotency key: stable across attempts, and distinct for two notices of
    one kind at one instant (the digest of the body tells them apart)."""
    digest = hashlib.sha256(notice_body(notice)).hexdigest()[:16]
    return f"{notice.workflow_id}:{notice.kind.value}:{notice.at.isoformat()}:{digest}"


class Progress:
    """A notice's ``NotifyProgress``: what earlier attempts heartbeated, and what this one
    adds. Every change is heartbeated at once, so a retry starts from it."""

    def __init__(
        self,
        earlier: NotifyProgress | None = None,
        *,
        retry: bool = False,
        beat: Callable[[NotifyProgress], None] | None = None,
    ) -> None:
        self.state = earlier.model_copy(deep=True) if earlier else NotifyProgress()
        # an earlier attempt ran: it may have posted what it never heard back about
        self.retry = retry
        self._beat = beat

    @classmethod
    def of_activity(cls) -> Progress:
        """The running attempt's progress (an empty one outside an activity)."""
        if not activity.in_activity():
            return cls()
        info = activity.info()
        earlier = None
        if info.heartbeat_details:
            try:
                earlier = NotifyProgress.model_validate(info.heartbeat_details[0])
            except ValidationError as exc:
                log.warning("ignoring unreadable notify progress: %s", exc)
        if info.attempt > 1:
            log.info(
                "notice attempt %d: earlier attempts delivered %s and posted %d message(s)",
                info.attempt,
                ", ".join(earlier.delivered) if earlier and earlier.delivered else "nothing",
                len(earlier.posted) if earlier else 0,
            )
        return cls(earlier, retry=info.attempt > 1, beat=activity.heartbeat)

    def posted(self, adapter: str, target: str) -> MessageRef | None:
        return self.state.posted.get(f"{adapter}:{target}")

    def record(self, adapter: str, target: str, ref: MessageRef) -> None:
        self.state.posted[f"{adapter}:{target}"] = ref
        self._save()

    def delivered(self, adapter: str) -> bool:
        return adapter in self.state.delivered

    def mark_delivered(self, adapter: str) -> None:
        if adapter not in self.state.delivered:
            self.state.delivered.append(adapter)
            self._save()

    def refs(self, adapter: str) -> list[MessageRef]:
        return [r for r in self.state.refs() if r.adapter == adapter]

    def _save(self) -> None:
        if self._beat is not None:
            self._beat(self.state)


class Adapter(Protocol):
    name: str

    async def send(
        self, notice: Notification, refs: list[MessageRef], progress: Progress | None = None
    ) -> list[MessageRef]:
        """Deliver ``notice``; ``refs`` are this adapter's earlier posts for the same card;
        ``progress`` what earlier attempts of this notice achieved (record every post in it)."""
        ...


class LogAdapter:
    """Always on: every notice lands in the worker's log, so nothing is silent."""

    name = "log"
    # logging again on a retry harms nobody: no heartbeat spent on it, so the first one (sent
    # at once; later ones wait out the throttle) records a delivery that must not repeat
    repeatable = True

    async def send(
        self, notice: Notification, refs: list[MessageRef], progress: Progress | None = None
    ) -> list[MessageRef]:
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
        progress = Progress.of_activity()
        posted: list[MessageRef] = []
        failures: list[str] = []
        for adapter in self._adapters:
            if progress.delivered(adapter.name):
                posted += progress.refs(adapter.name)  # an earlier attempt delivered it all
                continue
            mine = [r for r in notice.message_refs if r.adapter == adapter.name]
            try:
                posted += await adapter.send(notice, mine, progress)
            except Exception as exc:  # one broken channel must not silence the others
                log.warning("adapter %s failed for %s: %s", adapter.name, notice.workflow_id, exc)
                failures.append(f"{adapter.name}: {exc}")
                # what it did post before failing is still its, and the run's to close
                posted += [r for r in progress.refs(adapter.name) if r not in posted]
            else:
                if not getattr(adapter, "repeatable", False):
                    progress.mark_delivered(adapter.name)
        if failures and not posted and len(failures) == len(self._adapters):
            # nothing got through anywhere: let Temporal retry the whole notice; the progress
            # goes with the failure, so a notice that fails for good still names its posts
            raise ApplicationError("; ".join(failures), progress.state, type=NOTIFY_FAILED)
        return NotifyResult(message_refs=posted)


class WebhookAdapter:
    """Posts every notice as signed JSON to an outbound webhook (chat bridges, paging, SIEM).

    Signed like the deploy hooks: ``X-ReleaseGate-Signature: sha256=HMAC(secret,
    "<timestamp>.<body>")``. ``Idempotency-Key`` names the notice (``notice_key``) and the
    body is the same on every attempt, so a receiver that keeps the keys it has seen sees each
    notice once. A 5xx or network error raises, so the notice is retried.
    """

    name = "webhook"

    def __init__(self, http: httpx.AsyncClient, url: str, secret: str | None) -> None:
        self._http = http
        self._url = url
        self._secret = secret

    async def send(
        self, notice: Notification, refs: list[MessageRef], progress: Progress | None = None
    ) -> list[MessageRef]:
        body = notice_body(notice)
        timestamp = str(int(time.time()))  # a header, signed: replay protection, not the body
        headers = {
            "Content-Type": "application/json",
            "X-ReleaseGate-Timestamp": timestamp,
            "Idempotency-Key": notice_key(notice),
        }
        if self._secret:
            headers["X-ReleaseGate-Signature"] = sign(self._secret, timestamp, body)
        response = await self._http.post(self._url, content=body, headers=headers)
        if response.status_code >= 500:
            raise RuntimeError(f"notification webhook answered {response.status_code}")
        return []
