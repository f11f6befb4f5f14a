"""Deploy and rollback hooks: outbound webhooks with an HMAC-signed body.

The receiver verifies ``X-ReleaseGate-Signature: sha256=<hex>`` over
``<timestamp>.<body>`` with the shared secret, and may use ``Idempotency-Key`` to recognise a
delivery Temporal retried. A 5xx or a network error raises, so Temporal's retry policy applies;
a 4xx is final (retrying a refused request would not change the answer).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.activities import HOOK_CALL, HookRequest, HookResult

SIGNATURE_HEADER = "X-ReleaseGate-Signature"
TIMESTAMP_HEADER = "X-ReleaseGate-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class HookActivities:
    def __init__(self, http: httpx.AsyncClient, secret: str | None) -> None:
        self._http = http
        self._secret = secret

    @activity.defn(name=HOOK_CALL)
    async def call(self, request: HookRequest) -> HookResult:
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
            "Content-Type": "application/json",
            "Idempotency-Key": request.idempotency_key,
            TIMESTAMP_HEADER: timestamp,
        }
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
        response = await self._http.post(request.url, content=body, headers=headers)
        if response.status_code >= 500:
            raise RuntimeError(f"{request.hook} hook answered {response.status_code}")
        if response.status_code >= 400:
            raise ApplicationError(
                f"{request.hook} hook refused the call: {response.status_code}",
                type="HookRefused",
                non_retryable=True,
            )
        return HookResult(status_code=response.status_code, ok=True)
