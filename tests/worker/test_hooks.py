"""The deploy/rollback hook activity: a signed body, and Temporal's retry rules by status."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from services.worker.hooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, HookActivities
from workflows.activities import HookRequest, HookResult
from workflows.ids import use_case_workflow_id
from workflows.model import HookKind

SECRET = "hook-secret"


def request(hook: HookKind = HookKind.DEPLOY) -> HookRequest:
    return HookRequest(
        workflow_id=use_case_workflow_id("kyc"),
        use_case_key="kyc",
        hook=hook,
        url="https://deploy.example/hook",
        idempotency_key="usecase-kyc/42",
        payload={"live_version": 2},
    )


def answering(status: int, seen: list[httpx.Request]) -> httpx.AsyncClient:
    def handle(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(status)

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


async def test_call_posts_a_signed_body() -> None:
    seen: list[httpx.Request] = []
    async with answering(204, seen) as http:
        result = await ActivityEnvironment().run(HookActivities(http, SECRET).call, request())
    assert result == HookResult(status_code=204, ok=True)
    (sent,) = seen
    body = sent.content
    assert json.loads(body) == {
        "hook": "deploy",
        "workflow_id": "usecase-kyc",
        "use_case": "kyc",
        "live_version": 2,
    }
    assert sent.headers["Idempotency-Key"] == "usecase-kyc/42"
    timestamp = sent.headers[TIMESTAMP_HEADER]
    mac = hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    assert sent.headers[SIGNATURE_HEADER] == "sha256=" + mac.hexdigest()


async def test_without_a_secret_the_body_goes_unsigned() -> None:
    seen: list[httpx.Request] = []
    async with answering(200, seen) as http:
        await ActivityEnvironment().run(HookActivities(http, None).call, request())
    assert SIGNATURE_HEADER not in seen[0].headers


async def test_a_refusal_is_final() -> None:
    async with answering(403, []) as http:
        with pytest.raises(ApplicationError) as caught:
            await ActivityEnvironment().run(
                HookActivities(http, SECRET).call, request(HookKind.ROLLBACK)
            )
    assert caught.value.type == "HookRefused"
    assert caught.value.non_retryable


async def test_a_server_error_is_retried() -> None:
    async with answering(502, []) as http:
        # not an ApplicationError: Temporal's retry policy applies
        with pytest.raises(RuntimeError, match="rollback hook answered 502"):
            await ActivityEnvironment().run(
                HookActivities(http, SECRET).call, request(HookKind.ROLLBACK)
            )
