"""Bad input and security: CORS closed by default, body limit → 413, security headers on every
response, and no secret in the logs of a full run through a real uvicorn server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml

from services.api.app import create_app
from services.settings import DEMO_DIRECTORY, PROJECT_ROOT, ConfigError, Settings, load_settings
from tests.api.conftest import auth
from tests.api.test_use_cases import new_body, walk
from tests.harness import HOOK_SECRET, UvicornServer, loopback_socket
from tests.workflows.test_live import HookReceiver
from workflows.policy import load_directory

PROBLEM = "application/problem+json"
UI_ORIGIN = "https://ui.example.test"
SIGNING_SECRET = "slack-signing-secret-4b1d3c9e7f"
BOT_TOKEN = "xoxb-bot-token-9a8b7c6d5e"


def derived(api_settings: Settings, **extra: Any) -> Settings:
    return Settings(
        TEMPORAL_ADDRESS=api_settings.temporal_address,
        RELEASEGATE_TASK_QUEUE=api_settings.task_queue,
        RELEASEGATE_DATABASE_URL=api_settings.database_url,
        **extra,
    )


@pytest.fixture(scope="module")
async def make_api(api_settings: Settings) -> AsyncIterator[Callable[..., Any]]:
    async with AsyncExitStack() as stack:

        async def make(base_url: str = "http://api", **extra: Any) -> httpx.AsyncClient:
            app = create_app(derived(api_settings, **extra))

            @app.get("/v1/boom", include_in_schema=False)
            async def boom() -> None:
                raise RuntimeError("boom")

            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            return await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url=base_url)
            )

        yield make


@pytest.fixture(scope="module")
async def small_api(make_api: Callable[..., Any]) -> httpx.AsyncClient:
    client: httpx.AsyncClient = await make_api(RELEASEGATE_MAX_BODY_BYTES=2048)
    return client


# --------------------------------------------------------------------------- headers

BASE_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def assert_hardened(r: httpx.Response) -> None:
    for name, value in BASE_HEADERS.items():
        assert r.headers.get(name) == value, (r.request.url, name, r.headers)
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/healthz", {}, 200),
        ("GET", "/openapi.json", {}, 200),
        ("GET", "/v1/approvals/pending", {"who": "rita"}, 200),
        ("GET", "/v1/use-cases", {}, 401),
        ("GET", "/v1/use-cases/usecase-no-such-thing", {"who": "rita"}, 404),
        ("GET", "/no/such/route", {}, 404),
        ("DELETE", "/v1/use-cases", {"who": "rita"}, 405),
        ("POST", "/v1/use-cases", {"who": "dana"}, 422),
        ("GET", "/v1/boom", {}, 500),
    ],
)
async def test_security_headers_on_every_response(
    small_api: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    h = auth(headers["who"]) if "who" in headers else {}
    r = await small_api.request(method, path, headers=h, json={} if method == "POST" else None)
    assert r.status_code == status, r.text
    assert_hardened(r)
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    assert "strict-transport-security" not in r.headers  # plain http
    if path.startswith("/v1/"):
        assert r.headers["cache-control"] == "no-store"
    if status >= 400:
        assert r.headers["content-type"] == PROBLEM


async def test_docs_get_a_csp_their_cdn_assets_fit(small_api: httpx.AsyncClient) -> None:
    r = await small_api.get("/docs")
    assert r.status_code == 200
    assert_hardened(r)
    csp = r.headers["content-security-policy"]
    assert "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net" in csp
    assert "cache-control" not in r.headers
    # every external asset the page loads is allowed by the policy
    for url in ("https://cdn.jsdelivr.net", "https://fastapi.tiangolo.com"):
        if url in r.text:
            assert url in csp


async def test_hsts_only_behind_https(
    small_api: httpx.AsyncClient, make_api: Callable[..., Any]
) -> None:
    r = await small_api.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert r.headers["strict-transport-security"].startswith("max-age=")
    https_api = await make_api(base_url="https://api")
    r = await https_api.get("/healthz")
    assert "max-age=" in r.headers["strict-transport-security"]


# --------------------------------------------------------------------------- CORS


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_cors_is_closed_by_default(small_api: httpx.AsyncClient) -> None:
    r = await small_api.options("/v1/use-cases", headers=preflight(UI_ORIGIN))
    assert "access-control-allow-origin" not in r.headers
    assert r.status_code >= 400
    assert_hardened(r)
    r = await small_api.get("/v1/approvals/pending", headers={**auth("rita"), "Origin": UI_ORIGIN})
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers


async def test_cors_opens_only_to_configured_origins(make_api: Callable[..., Any]) -> None:
    api = await make_api(RELEASEGATE_CORS_ORIGINS=f"{UI_ORIGIN}, http://localhost:3000")
    r = await api.options("/v1/use-cases", headers=preflight(UI_ORIGIN))
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == UI_ORIGIN
    assert "authorization" in r.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in r.headers
    assert_hardened(r)

    r = await api.get("/v1/approvals/pending", headers={**auth("rita"), "Origin": UI_ORIGIN})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == UI_ORIGIN

    evil = "https://evil.example.test"
    r = await api.options("/v1/use-cases", headers=preflight(evil))
    assert r.status_code == 400
    assert "access-control-allow-origin" not in r.headers
    r = await api.get("/v1/approvals/pending", headers={**auth("rita"), "Origin": evil})
    assert "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize("value", ["*", "https://ui.example.test/app", "ui.example.test"])
def test_cors_origins_must_be_origins(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("RELEASEGATE_CORS_ORIGINS", value)
    with pytest.raises(ConfigError, match="RELEASEGATE_CORS_ORIGINS"):
        load_settings()


# --------------------------------------------------------------------------- body size


def padded_body(size: int) -> bytes:
    body = new_body()
    body["summary"] = ""
    raw = httpx.Request("POST", "/", json=body).content
    body["summary"] = "x" * (size - len(raw))
    content = httpx.Request("POST", "/", json=body).content
    assert len(content) == size
    return content


async def test_body_over_the_limit_by_content_length_is_413(small_api: httpx.AsyncClient) -> None:
    r = await small_api.post(
        "/v1/use-cases",
        content=padded_body(2049),
        headers={**auth("dana"), "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["status"] == 413
    assert_hardened(r)


async def test_streamed_body_over_the_limit_is_413(small_api: httpx.AsyncClient) -> None:
    """No Content-Length (chunked): the limit counts bytes as they arrive."""
    chunks_sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        for _ in range(64):
            chunks_sent += 1
            yield b" " * 512

    r = await small_api.post(
        "/v1/use-cases",
        content=chunks(),
        headers={**auth("dana"), "Content-Type": "application/json"},
    )
    assert "content-length" not in r.request.headers
    assert r.status_code == 413
    assert r.headers["content-type"] == PROBLEM
    assert_hardened(r)


async def test_body_at_the_limit_is_accepted(small_api: httpx.AsyncClient) -> None:
    r = await small_api.post(
        "/v1/use-cases",
        content=padded_body(2048),
        headers={**auth("dana"), "Content-Type": "application/json"},
    )
    assert r.status_code == 201, r.text


async def test_default_limit_is_one_mib(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/v1/use-cases",
        content=b"{" + b" " * (1024 * 1024) + b"}",
        headers={**auth("dana"), "Content-Type": "application/json"},
    )
    assert r.status_code == 413


# --------------------------------------------------------------------------- production


def production(directory: Path | None = None) -> Settings:
    if directory is None:
        return Settings(RELEASEGATE_ENV="production")
    return Settings(RELEASEGATE_ENV="production", RELEASEGATE_DIRECTORY=str(directory))


def write_directory(path: Path, *, tokens: bool) -> Path:
    doc = yaml.safe_load(DEMO_DIRECTORY.read_text())
    for person in doc["people"]:
        person.pop("token", None)
    if tokens:
        doc["people"][1]["token"] = "not-so-secret"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_production_refuses_to_start_on_the_demo_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="RELEASEGATE_ENV=production refuses the demo directory"):
        create_app(production())  # the default RELEASEGATE_DIRECTORY
    copy = tmp_path / "people.yaml"  # a copy elsewhere: known by its content
    copy.write_bytes(DEMO_DIRECTORY.read_bytes())
    with pytest.raises(ConfigError, match="demo directory"):
        create_app(production(copy))


def test_production_refuses_to_start_on_a_directory_with_tokens(tmp_path: Path) -> None:
    with_token = write_directory(tmp_path / "with-token.yaml", tokens=True)
    with pytest.raises(ConfigError, match="refuses development tokens") as caught:
        create_app(production(with_token))
    assert "not-so-secret" not in str(caught.value)
    # the same file without its token starts; development takes tokens as before
    assert create_app(production(write_directory(tmp_path / "clean.yaml", tokens=False)))
    assert create_app(Settings(RELEASEGATE_DIRECTORY=str(with_token)))


# --------------------------------------------------------------------------- hook URLs


@pytest.fixture(scope="module")
async def hook_api(make_api: Callable[..., Any]) -> httpx.AsyncClient:
    client: httpx.AsyncClient = await make_api(RELEASEGATE_HOOK_ALLOWED_HOSTS="deploy.example")
    return client


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("deploy_url", "http://127.0.0.1:1/deploy"),  # loopback
        ("deploy_url", "http://[::1]:8080/deploy"),
        ("rollback_url", "http://169.254.169.254/latest/meta-data/"),  # link-local (metadata)
        ("deploy_url", "http://10.1.2.3/deploy"),  # private
        ("deploy_url", "http://192.168.0.10:8443/deploy"),
        ("deploy_url", "https://unlisted.example/deploy"),  # public, but nobody listed it
    ],
)
async def test_a_hook_url_that_is_not_allowed_is_422_and_starts_nothing(
    hook_api: httpx.AsyncClient, field: str, url: str
) -> None:
    body = new_body("low", hooks={field: url})
    r = await hook_api.post("/v1/use-cases", json=body, headers=auth("dana"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == PROBLEM
    problem = r.json()
    assert problem["status"] == 422
    assert problem["detail"].startswith(f"hooks.{field}: ")
    assert "RELEASEGATE_HOOK_ALLOWED_HOSTS" in problem["detail"]
    r = await hook_api.get(f"/v1/use-cases/usecase-{body['key']}", headers=auth("dana"))
    assert r.status_code == 404


async def test_a_hook_url_on_an_allowed_host_starts_the_run(hook_api: httpx.AsyncClient) -> None:
    hooks = {"deploy_url": "https://deploy.example/go", "rollback_url": "https://deploy.example/no"}
    r = await hook_api.post(
        "/v1/use-cases", json=new_body("low", hooks=hooks), headers=auth("dana")
    )
    assert r.status_code == 201, r.text


# --------------------------------------------------------------------------- secrets


class RealServer(UvicornServer):
    """The API under a real uvicorn on loopback, logging at DEBUG into the test's capture."""

    def __init__(self, settings: Settings) -> None:
        config = uvicorn.Config(
            create_app(settings),
            log_level="debug",
            log_config=None,  # our capture handler, not uvicorn's own
            access_log=True,
            lifespan="on",
        )
        super().__init__(config, *loopback_socket())


@pytest.fixture
def receiver() -> Iterator[HookReceiver]:
    r = HookReceiver()
    yield r
    r.server.shutdown()


async def test_no_secret_is_ever_logged(
    api_settings: Settings,
    receiver: HookReceiver,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    loggers = ["", "uvicorn", "uvicorn.error", "uvicorn.access", "temporalio", "releasegate"]
    for name in loggers:
        caplog.set_level(logging.DEBUG, logger=name)
    # the policy's deploy hook makes the worker sign a call with the hook secret at go-live
    policy = yaml.safe_load((PROJECT_ROOT / "config" / "policy.yaml").read_text())
    policy["live"]["hooks"] = {"deploy_url": f"{receiver.url}/deploy"}
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(yaml.safe_dump(policy))
    settings = derived(
        api_settings,
        RELEASEGATE_POLICY=str(policy_path),
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        RELEASEGATE_HOOK_SECRET=HOOK_SECRET,
    )
    directory = load_directory(settings.directory_path)
    async with RealServer(settings) as server, httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post("/v1/use-cases", json=new_body("low"), headers=auth("dana"))
        assert r.status_code == 201, r.text
        state = await walk(http, r.json(), "live")
        assert state["stage"] == "live"
        # refusals and bad tokens are logged too; none of them may echo a token
        r = await http.post(f"/v1/use-cases/{state['id']}/retire", json={}, headers=auth("olga"))
        assert r.status_code == 403
        r = await http.get("/v1/use-cases", headers={"Authorization": "Bearer dev-nobody-x"})
        assert r.status_code == 401
        calls = await receiver.wait_for("/deploy")
        assert calls[0]["signed"]  # the hook secret was in use

    records = caplog.records
    assert any(r.name.startswith("uvicorn") for r in records)
    assert any(r.name.startswith("temporalio") for r in records)
    text = caplog.text + "\n".join(f"{r.getMessage()} {r.args!r} {vars(r)!r}" for r in records)
    secrets = {
        **{f"dev token of {p.id}": p.token for p in directory.people.values() if p.token},
        "dev-nobody-x": "dev-nobody-x",
        "Slack signing secret": SIGNING_SECRET,
        "Slack bot token": BOT_TOKEN,
        "hook secret": HOOK_SECRET,
    }
    leaked = [name for name, secret in secrets.items() if secret and secret in text]
    assert not leaked, f"secrets in the logs: {leaked}"
