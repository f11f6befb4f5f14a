"""Deploy and rollback hooks: outbound webhooks with an HMAC-signed body.

The receiver verifies ``X-ReleaseGate-Signature: sha256=<hex>`` over
``<timestamp>.<body>`` with the shared secret, and may use ``Idempotency-Key`` to recognise a
delivery Temporal retried.

Only URLs ``services.hook_targets`` allows are called, at the address that was checked, and
redirects are not followed. Every failure is an ``ApplicationError`` whose ``type`` is a
``HookFailure`` and whose message is that class's fixed text: the workflow records the class in
the ledger, never a host, port or network error text (which would make the hook a probe of the
worker's network). The details are logged here, for the operator. Unreachable, timed out and
5xx are retried by Temporal's retry policy; a refused URL and any other answer are final.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from services.hook_targets import HookAllowList, HookTargetRefused, Resolver, system_resolver
from workflows.activities import HOOK_CALL, HookFailure, HookRequest, HookResult

SIGNATURE_HEADER = "X-ReleaseGate-Signature"
TIMESTAMP_HEADER = "X-ReleaseGate-Timestamp"

log = logging.getLogger("releasegate.hooks")


FAILURE_TEXT: dict[HookFailure, str] = {
    HookFailure.REFUSED: "the hook URL is not allowed by RELEASEGATE_HOOK_ALLOWED_HOSTS",
    HookFailure.UNREACHABLE: "the hook could not be reached",
    HookFailure.TIMEOUT: "the hook did not answer in time",
    HookFailure.HTTP_ERROR: "the hook answered with an error status",
}


def hook_failure(kind: HookFailure, *details: object, retryable: bool) -> ApplicationError:
    return ApplicationError(
        FAILURE_TEXT[kind], *details, type=kind.value, non_retryable=not retryable
    )


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class HookActivities:
    def __init__(
        self,
        http: httpx.AsyncClient,
        secret: str | None,
        allowed: HookAllowList,
        resolver: Resolver = system_resolver,
    ) -> None:
        self._http = http
        self._secret = secret
        self._allowed = allowed
        self._resolve = resolver

    @activity.defn(name=HOOK_CALL)
    async def call(self, request: HookRequest) -> HookResult:
        where = f"{request.hook.value} hook of {request.workflow_id}"
        try:
            pinned = await self._allowed.pin(request.url, self._resolve)
        except HookTargetRefused as exc:
            log.warning("%s refused (%s): %s", where, request.url, exc)
            raise hook_failure(HookFailure.REFUSED, retryable=False) from None
        except OSError as exc:  # the name does not resolve (now)
            log.warning("%s: cannot resolve its host: %s", where, exc)
            raise hook_failure(HookFailure.UNREACHABLE, retryable=True) from None
        body = json.dumps(
            {
                "hook": request.hook,
                "workflow_id": request.workflow_id,
                "use_case": request.use_case_key,
                **request.payload,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        timestamp = str(int(time.time()))
        headers = {
            **pinned.headers,
            "Content-Type": "application/json",
            "Idempotency-Key": request.idempotency_key,
            TIMESTAMP_HEADER: timestamp,
        }
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
        # `from None` throughout: a chained cause would carry the network error's text into
        # the failure the workflow sees
        try:
            response = await self._http.post(
                pinned.url,
                content=body,
                headers=headers,
                extensions=pinned.extensions,
                follow_redirects=False,
            )
        except httpx.TimeoutException as exc:
            log.warning("%s timed out: %r", where, exc)
            raise hook_failure(HookFailure.TIMEOUT, retryable=True) from None
        except httpx.HTTPError as exc:
            log.warning("%s unreachable: %r", where, exc)
            raise hook_failure(HookFailure.UNREACHABLE, retryable=True) from None
        status = response.status_code
        if not 200 <= status < 300:
            log.warning("%s answered %d", where, status)
            # a 5xx may pass; retrying a refusal (or a redirect not followed) would not help
            raise hook_failure(HookFailure.HTTP_ERROR, status, retryable=status >= 500)
        return HookResult(status_code=status, ok=True)
