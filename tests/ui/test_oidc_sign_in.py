"""Console sign-in in production: OIDC Authorization Code with PKCE against a local identity
provider, a Secure HttpOnly SameSite cookie, and no development sign-in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from playwright.async_api import Browser, Page
from temporalio.testing import WorkflowEnvironment

from services.settings import DEMO_DIRECTORY
from tests.api.test_oidc import Signer
from tests.harness import ReleaseHarness
from tests.ui.conftest import LAPTOP, LiveServer, console_settings, loopback_socket
from tests.ui.idp import CLIENT_ID, IdentityProvider


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    signer = Signer(
        "idp-1", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    provider = IdentityProvider(signer)
    yield provider
    provider.close()


@pytest.fixture(scope="module")
async def production(
    temporal_env: WorkflowEnvironment,
    release: ReleaseHarness,
    store_url: str,
    idp: IdentityProvider,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[LiveServer]:
    """The console as production runs it: the demo people without development tokens."""
    doc = yaml.safe_load(DEMO_DIRECTORY.read_text())
    for person in doc["people"]:
        person.pop("token", None)
    directory: Path = tmp_path_factory.mktemp("people") / "people.yaml"
    directory.write_text(yaml.safe_dump(doc))
    sock, url = loopback_socket()
    settings = console_settings(
        temporal_env,
        release,
        store_url,
        url,
        RELEASEGATE_ENV="production",
        RELEASEGATE_DIRECTORY=str(directory),
        RELEASEGATE_OIDC_ISSUER=idp.issuer,
        RELEASEGATE_OIDC_AUDIENCE="releasegate-api",
        RELEASEGATE_OIDC_JWKS_URL=idp.jwks_url,
        RELEASEGATE_OIDC_CLIENT_ID=CLIENT_ID,
    )
    async with LiveServer(settings, sock) as server:
        yield server


@pytest.fixture
async def fresh(browser: Browser) -> AsyncIterator[Page]:
    ctx = await browser.new_context(viewport=LAPTOP)
    try:
        yield await ctx.new_page()
    finally:
        await ctx.close()


async def test_oidc_sign_in_with_pkce(
    production: LiveServer, idp: IdentityProvider, fresh: Page
) -> None:
    idp.next_user = {"email": "rita@example.com", "email_verified": True}
    await fresh.goto(f"{production.url}/ui/inbox")
    assert fresh.url.startswith(f"{production.url}/ui/login?next=")
    assert await fresh.locator("button[name=person]").count() == 0  # no development sign-in
    await fresh.get_by_role("link", name="Sign in with your organisation's account").click()
    await fresh.wait_for_url(f"{production.url}/ui/inbox")
    assert await fresh.get_by_test_id("me").inner_text() == "Rita Menon"

    (asked,) = idp.authorize_requests[-1:]
    assert asked["code_challenge_method"] == "S256"
    assert asked["redirect_uri"] == f"{production.url}/ui/auth/callback"
    assert asked["state"]
    assert asked["nonce"]
    (exchanged,) = idp.token_requests[-1:]
    assert 43 <= len(exchanged["code_verifier"]) <= 128
    assert "client_secret" not in exchanged  # a public client: PKCE is its proof

    (cookie,) = [c for c in await fresh.context.cookies() if c["name"] == "releasegate_console"]
    assert (cookie["secure"], cookie["httpOnly"], cookie["sameSite"]) == (True, True, "Lax")

    # the callback URL again (its code and state used up) signs nobody in
    replay = f"{production.url}/ui/auth/callback?code=used&state={asked['state']}"
    again = await fresh.goto(replay)
    assert again is not None
    assert again.status == 401


async def test_a_token_that_names_nobody_signs_nobody_in(
    production: LiveServer, idp: IdentityProvider, fresh: Page
) -> None:
    for who, status in (
        ({"email": "rita@example.com", "email_verified": False}, 403),  # unverified email
        ({"email": "stranger@example.com", "email_verified": True}, 403),  # not in the directory
    ):
        idp.next_user = who
        await fresh.goto(f"{production.url}/ui/login")
        async with fresh.expect_response("**/ui/auth/callback**") as answer:
            await fresh.get_by_role("link", name="Sign in with your organisation's account").click()
        assert (await answer.value).status == status
        assert await fresh.get_by_test_id("me").count() == 0
        assert [c for c in await fresh.context.cookies() if "person" in c["value"]] == []


async def test_no_development_sign_in_in_production(production: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=production.url) as client:
        page = await client.get("/ui/login")
        assert page.status_code == 200
        assert 'name="person"' not in page.text
        r = await client.post("/ui/login", data={"csrf": "any", "person": "rita"})
        assert r.status_code == 404
        assert (await client.get("/ui/inbox")).status_code == 303
