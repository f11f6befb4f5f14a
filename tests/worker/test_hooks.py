"""The deploy/rollback hook activity: a signed body, only to allowed hosts at a checked address,
and failures the ledger may record (a class, never a host, port or network error text)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from services.hook_targets import HookAllowList, IPAddress
from services.worker.hooks import (
    FAILURE_TEXT,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    HookActivities,
    HookFailure,
)
from workflows.activities import HookRequest, HookResult
from workflows.ids import use_case_workflow_id
from workflows.model import HookKind

SECRET = "hook-secret"
PUBLIC = "93.184.216.34"
ALLOWED = HookAllowList.parse("deploy.example")


class Dns:
    """A resolver the activity is built with: fixed answers, and what it was asked."""

    def __init__(self, **answers: list[str]) -> None:
        self.answers = {host.replace("_", "."): addrs for host, addrs in answers.items()}
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append((host, port))
        if host not in self.answers:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return [ipaddress.ip_address(a) for a in self.answers[host]]


def public_dns() -> Dns:
    return Dns(deploy_example=[PUBLIC])


def request(
    hook: HookKind = HookKind.DEPLOY, url: str = "https://deploy.example/hook"
) -> HookRequest:
    return HookRequest(
        workflow_id=use_case_workflow_id("kyc"),
        use_case_key="kyc",
        hook=hook,
        url=url,
        idempotency_key="usecase-kyc/42",
        payload={"live_version": 2},
    )


def answering(status: int, seen: list[httpx.Request]) -> httpx.AsyncClient:
    def handle(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(status)

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


def activities(
    http: httpx.AsyncClient,
    secret: str | None = SECRET,
    allowed: HookAllowList = ALLOWED,
    dns: Dns | None = None,
) -> HookActivities:
    return HookActivities(http, secret, allowed, dns or public_dns())


async def failure_of(acts: HookActivities, req: HookRequest) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(acts.call, req)
    err = caught.value
    assert err.type is not None
    # the class's fixed text: nothing about the host, port or the network error
    assert err.message == FAILURE_TEXT[HookFailure(err.type)]
    assert err.__cause__ is None
    return err


async def test_call_posts_a_signed_body() -> None:
    seen: list[httpx.Request] = []
    async with answering(204, seen) as http:
        result = await ActivityEnvironment().run(activities(http).call, request())
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
        await ActivityEnvironment().run(activities(http, None).call, request())
    assert SIGNATURE_HEADER not in seen[0].headers


async def test_a_4xx_is_final_and_recorded_as_an_http_error() -> None:
    async with answering(403, []) as http:
        err = await failure_of(activities(http), request(HookKind.ROLLBACK))
    assert err.type == HookFailure.HTTP_ERROR
    assert err.non_retryable
    assert list(err.details) == [403]


async def test_a_server_error_is_retried() -> None:
    async with answering(502, []) as http:
        err = await failure_of(activities(http), request(HookKind.ROLLBACK))
    assert err.type == HookFailure.HTTP_ERROR
    assert not err.non_retryable  # Temporal's retry policy applies


async def test_a_redirect_is_not_followed() -> None:
    seen: list[httpx.Request] = []

    def handle(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as http:
        err = await failure_of(activities(http), request())
    assert err.type == HookFailure.HTTP_ERROR
    assert err.non_retryable
    assert len(seen) == 1


# --------------------------------------------------------------------------- network failures


def failing(exc: Exception) -> httpx.AsyncClient:
    def handle(req: httpx.Request) -> httpx.Response:
        raise exc

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused to 10.1.2.3:8443"), "unreachable"),
        (httpx.ReadError("connection reset by deploy.example"), "unreachable"),
        (httpx.ConnectTimeout("timed out connecting to deploy.example:443"), "timeout"),
        (httpx.ReadTimeout("read timed out"), "timeout"),
    ],
)
async def test_network_errors_are_recorded_as_their_class_only(error: Exception, kind: str) -> None:
    async with failing(error) as http:
        err = await failure_of(activities(http), request())
    assert err.type == f"hook_{kind}"
    assert not err.non_retryable
    assert "Errno" not in str(err)
    assert "deploy.example" not in str(err)


async def test_a_name_that_does_not_resolve_is_unreachable() -> None:
    seen: list[httpx.Request] = []
    async with answering(204, seen) as http:
        err = await failure_of(activities(http, dns=Dns()), request())
    assert err.type == HookFailure.UNREACHABLE
    assert not err.non_retryable
    assert not seen


# --------------------------------------------------------------------------- the allow-list


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1/deploy",  # loopback
        "http://[::1]:8080/deploy",
        "http://169.254.169.254/latest/meta-data/",  # link-local: the cloud metadata service
        "http://[fe80::1]/deploy",
        "http://10.0.0.5/deploy",  # private
        "http://172.16.3.4/deploy",
        "http://192.168.1.1/deploy",
        "http://[fc00::5]/deploy",
        "http://0.0.0.0:8000/deploy",  # unspecified
        "http://[::ffff:169.254.169.254]/",  # IPv4-mapped
        "https://other.example/deploy",  # a public host nobody listed
        "https://deploy.example:8443/deploy",  # listed with another port
        "ftp://deploy.example/deploy",
        "https://user:pass@deploy.example/deploy",
    ],
)
async def test_a_url_the_allow_list_does_not_cover_is_refused_without_a_call(url: str) -> None:
    seen: list[httpx.Request] = []
    dns = public_dns()
    allowed = HookAllowList.parse("deploy.example:443")
    async with answering(204, seen) as http:
        err = await failure_of(activities(http, allowed=allowed, dns=dns), request(url=url))
    assert err.type == HookFailure.REFUSED
    assert err.non_retryable
    assert not seen
    assert not dns.asked  # refused before any DNS lookup


@pytest.mark.parametrize(
    "answers",
    [
        ["127.0.0.1"],  # DNS rebinding: a listed name pointed at loopback
        ["169.254.169.254"],
        [PUBLIC, "10.0.0.7"],  # any refused address among the answers is enough
        ["::1"],
        ["64:ff9b::a9fe:a9fe"],  # NAT64 for 169.254.169.254
    ],
)
async def test_a_listed_name_that_resolves_to_a_refused_address_is_refused(
    answers: list[str],
) -> None:
    seen: list[httpx.Request] = []
    dns = Dns(deploy_example=answers)
    async with answering(204, seen) as http:
        err = await failure_of(activities(http, dns=dns), request())
    assert err.type == HookFailure.REFUSED
    assert dns.asked == [("deploy.example", 443)]
    assert not seen


async def test_a_private_address_the_operator_listed_is_allowed() -> None:
    seen: list[httpx.Request] = []
    allowed = HookAllowList.parse("deploy.internal, 10.0.0.7")
    dns = Dns(deploy_internal=["10.0.0.7"])
    async with answering(204, seen) as http:
        result = await ActivityEnvironment().run(
            activities(http, allowed=allowed, dns=dns).call,
            request(url="http://deploy.internal:9000/hook"),
        )
    assert result.ok
    assert seen[0].url.host == "10.0.0.7"


async def test_the_call_goes_to_the_address_that_was_checked() -> None:
    seen: list[httpx.Request] = []
    async with answering(204, seen) as http:
        await ActivityEnvironment().run(
            activities(http).call, request(url="https://deploy.example/hook?x=1")
        )
    (sent,) = seen
    assert str(sent.url) == f"https://{PUBLIC}/hook?x=1"
    assert sent.headers["Host"] == "deploy.example"
    # TLS names the URL's host: SNI and the certificate check are for deploy.example
    assert sent.extensions["sni_hostname"] == "deploy.example"


async def test_a_listed_loopback_receiver_is_called_directly() -> None:
    seen: list[httpx.Request] = []
    dns = public_dns()
    allowed = HookAllowList.parse("127.0.0.1")
    async with answering(204, seen) as http:
        await ActivityEnvironment().run(
            activities(http, allowed=allowed, dns=dns).call,
            request(url="http://127.0.0.1:8123/deploy"),
        )
    assert str(seen[0].url) == "http://127.0.0.1:8123/deploy"
    assert not dns.asked


async def test_no_hook_is_allowed_by_default() -> None:
    seen: list[httpx.Request] = []
    async with answering(204, seen) as http:
        err = await failure_of(activities(http, allowed=HookAllowList()), request())
    assert err.type == HookFailure.REFUSED
    assert not seen
