"""OIDC bearer tokens against a JWKS served on loopback, with locally generated RSA and EC keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from services.api.app import create_app
from services.api.oidc import IdentityProviderUnavailable, OidcVerifier, TokenRejected
from services.settings import DEMO_DIRECTORY, Settings
from tests.api.conftest import auth

PROBLEM = "application/problem+json"
ISSUER = "https://idp.example.test/"
AUDIENCE = "releasegate-api"


class JwksServer:
    """A real HTTP server on 127.0.0.1 publishing a JWKS we can change, counting fetches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                server.fetches += 1
                body = json.dumps({"keys": server.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Signer:
    def __init__(self, kid: str, alg: str, private_key: Any) -> None:
        self.kid, self.alg, self.private_key = kid, alg, private_key

    def jwk(self) -> dict[str, Any]:
        algorithm = RSAAlgorithm if self.alg == "RS256" else ECAlgorithm
        data: dict[str, Any] = algorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**data, "kid": self.kid, "use": "sig", "alg": self.alg}

    def token(self, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "00u-rita",
            "email": "rita@example.com",
            "email_verified": True,
            "groups": ["risk-committee", "idp-only-group"],
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            **claims,
        }
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(
            payload,
            self.private_key,
            algorithm=self.alg,
            headers={"kid": self.kid, **(headers or {})},
        )


@pytest.fixture(scope="module")
def rsa_signer() -> Signer:
    return Signer("rsa-1", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def ec_signer() -> Signer:
    return Signer("ec-1", "ES256", ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="module")
def jwks(rsa_signer: Signer, ec_signer: Signer) -> Iterator[JwksServer]:
    server = JwksServer()
    server.keys = [rsa_signer.jwk(), ec_signer.jwk()]
    yield server
    server.close()


def oidc_settings(api_settings: Settings, jwks_url: str, **extra: str) -> Settings:
    return Settings(
        TEMPORAL_ADDRESS=api_settings.temporal_address,
        RELEASEGATE_TASK_QUEUE=api_settings.task_queue,
        RELEASEGATE_DATABASE_URL=api_settings.database_url,
        RELEASEGATE_OIDC_ISSUER=ISSUER,
        RELEASEGATE_OIDC_AUDIENCE=AUDIENCE,
        RELEASEGATE_OIDC_JWKS_URL=jwks_url,
        **extra,
    )


@pytest.fixture(scope="module")
async def app_factory(
    api_settings: Settings,
) -> AsyncIterator[Callable[..., Any]]:
    """Builds API clients with OIDC settings; all are closed at the end of the module."""
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:

        async def make(jwks_url: str, **extra: str) -> httpx.AsyncClient:
            app = create_app(oidc_settings(api_settings, jwks_url, **extra))
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
            return await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://api")
            )

        yield make


@pytest.fixture(scope="module")
async def oidc_api(app_factory: Callable[..., Any], jwks: JwksServer) -> httpx.AsyncClient:
    client: httpx.AsyncClient = await app_factory(jwks.url)
    return client


@pytest.fixture(scope="module")
def production_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example directory without its development tokens (production refuses to start on
    a directory that has any)."""
    doc = yaml.safe_load(DEMO_DIRECTORY.read_text())
    for person in doc["people"]:
        person.pop("token", None)
    path = tmp_path_factory.mktemp("directory") / "directory.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
async def prod_api(
    app_factory: Callable[..., Any], jwks: JwksServer, production_directory: Path
) -> httpx.AsyncClient:
    client: httpx.AsyncClient = await app_factory(
        jwks.url, RELEASEGATE_ENV="production", RELEASEGATE_DIRECTORY=str(production_directory)
    )
    return client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    def seg(data: dict[str, Any]) -> str:
        raw = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=")
        return raw.decode()

    return f"{seg(header)}.{seg(claims)}."


# --------------------------------------------------------------------------- accepted


@pytest.mark.parametrize("signer_name", ["rsa_signer", "ec_signer"])
async def test_valid_token_reaches_the_api(
    oidc_api: httpx.AsyncClient, signer_name: str, request: pytest.FixtureRequest
) -> None:
    signer: Signer = request.getfixturevalue(signer_name)
    r = await oidc_api.get("/v1/approvals/pending", headers=bearer(signer.token()))
    assert r.status_code == 200, r.text


async def test_valid_token_acts_as_the_directory_person(
    oidc_api: httpx.AsyncClient, rsa_signer: Signer
) -> None:
    """The email claim maps to rita: she becomes the delivery lead of what she starts."""
    body = {
        "key": f"uc-{uuid.uuid4().hex[:10]}",
        "title": "OIDC started",
        "risk_tier": "low",
        "owners": {
            "business_owner": "bo",
            "technical_owner": "tom",
            "operations_owner": "olga",
            "risk_approvers": ["raj"],
            "escalation_owner": "eve",
        },
    }
    r = await oidc_api.post(
        "/v1/use-cases", json=body, headers=bearer(rsa_signer.token(email="RITA@example.com"))
    )
    assert r.status_code == 201, r.text
    assert r.json()["owners"]["delivery_lead"] == "rita"


async def test_user_claim_can_name_the_person_id(
    app_factory: Callable[..., Any], jwks: JwksServer, rsa_signer: Signer
) -> None:
    api = await app_factory(jwks.url, RELEASEGATE_OIDC_USER_CLAIM="sub")
    r = await api.get("/v1/approvals/pending", headers=bearer(rsa_signer.token(sub="raj")))
    assert r.status_code == 200, r.text


async def test_dev_tokens_still_work_in_development(oidc_api: httpx.AsyncClient) -> None:
    r = await oidc_api.get("/v1/approvals/pending", headers=auth("rita"))
    assert r.status_code == 200


async def test_production_refuses_dev_tokens_but_takes_oidc(
    prod_api: httpx.AsyncClient, rsa_signer: Signer
) -> None:
    r = await prod_api.get("/v1/approvals/pending", headers=auth("rita"))
    assert r.status_code == 401
    assert r.headers["content-type"] == PROBLEM
    assert "production" in r.json()["detail"]
    r = await prod_api.get("/v1/approvals/pending", headers=bearer(rsa_signer.token()))
    assert r.status_code == 200, r.text


# --------------------------------------------------------------------------- refused


def _hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """HS256 signed by hand: PyJWT rightly refuses to use a public key as an HMAC secret."""
    signing_input = unsigned(header, claims).rstrip(".")
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["email"] = "bo@example.com"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _claims() -> dict[str, Any]:
    return {"iss": ISSUER, "aud": AUDIENCE, "email": "rita@example.com", "exp": time.time() + 300}


def _public_pem(signer: Signer) -> bytes:
    return signer.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _now() -> int:
    return int(time.time())


# case: (token maker, what the 401's detail says)
REFUSED: dict[str, tuple[Callable[[Signer, Signer], str], str]] = {
    "expired": (
        lambda r, _: r.token(iat=_now() - 900, nbf=_now() - 900, exp=_now() - 600),
        "expired",
    ),
    "not yet valid": (lambda r, _: r.token(nbf=_now() + 600, exp=_now() + 900), "not yet valid"),
    "wrong audience": (lambda r, _: r.token(aud="someone-else"), "audience"),
    "wrong issuer": (lambda r, _: r.token(iss="https://evil.example.test/"), "issuer"),
    "unknown kid": (lambda r, _: r.token(headers={"kid": "never-published"}), "unknown key"),
    "bad signature": (
        lambda r, _: Signer(
            "rsa-1", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ).token(),
        "signature",
    ),
    "alg none": (
        lambda r, _: unsigned({"alg": "none", "kid": "rsa-1", "typ": "JWT"}, _claims()),
        "algorithm not accepted",
    ),
    "hs256 keyed with the public key": (
        lambda r, _: _hs256({"alg": "HS256", "kid": "rsa-1"}, _claims(), _public_pem(r)),
        "algorithm not accepted",
    ),
    "ES256 header on an RSA key": (
        lambda r, e: Signer("rsa-1", "ES256", e.private_key).token(),
        "does not match its key",
    ),
    "no kid": (
        lambda r, _: jwt.encode(_claims(), r.private_key, algorithm="RS256"),
        "no key id",
    ),
    "no exp": (lambda r, _: r.token(exp=None), "MissingRequiredClaimError"),
    "tampered claims": (lambda _, e: _tamper(e.token()), "signature"),
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_bad_tokens_are_401_problems(
    oidc_api: httpx.AsyncClient, rsa_signer: Signer, ec_signer: Signer, case: str
) -> None:
    make, reason = REFUSED[case]
    token = make(rsa_signer, ec_signer)
    r = await oidc_api.get("/v1/approvals/pending", headers=bearer(token))
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == PROBLEM
    assert r.headers["www-authenticate"] == "Bearer"
    problem = r.json()
    assert problem["status"] == 401
    assert reason in problem["detail"]
    assert token not in r.text


async def test_unknown_person_in_a_valid_token_is_403(
    oidc_api: httpx.AsyncClient, rsa_signer: Signer
) -> None:
    """Authenticated, but not a ReleaseGate person: 403, and nothing about the directory."""
    r = await oidc_api.get(
        "/v1/approvals/pending", headers=bearer(rsa_signer.token(email="mallory@example.com"))
    )
    assert r.status_code == 403
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["detail"] == "the token names no person in the directory"


@pytest.mark.parametrize("verified", [False, None, "true"])
async def test_an_unverified_email_maps_to_nobody(
    oidc_api: httpx.AsyncClient, rsa_signer: Signer, verified: Any
) -> None:
    """Anyone can register rita's address at an identity provider that does not verify it:
    only ``email_verified: true`` (the boolean) lets an email claim name a person."""
    r = await oidc_api.get(
        "/v1/approvals/pending",
        headers=bearer(rsa_signer.token(email="rita@example.com", email_verified=verified)),
    )
    assert r.status_code == 403
    assert r.headers["content-type"] == PROBLEM
    assert "not verified" in r.json()["detail"]


async def test_missing_user_claim_is_401(oidc_api: httpx.AsyncClient, rsa_signer: Signer) -> None:
    r = await oidc_api.get("/v1/approvals/pending", headers=bearer(rsa_signer.token(email=None)))
    assert r.status_code == 401


async def test_jwt_without_oidc_configured_is_401(
    api: httpx.AsyncClient, rsa_signer: Signer
) -> None:
    r = await api.get("/v1/approvals/pending", headers=bearer(rsa_signer.token()))
    assert r.status_code == 401
    assert r.headers["content-type"] == PROBLEM


async def test_unreachable_identity_provider_is_503(
    app_factory: Callable[..., Any], rsa_signer: Signer
) -> None:
    closed = JwksServer()
    url = closed.url
    closed.close()
    api = await app_factory(url)
    r = await api.get("/v1/approvals/pending", headers=bearer(rsa_signer.token()))
    assert r.status_code == 503
    assert r.headers["content-type"] == PROBLEM


# --------------------------------------------------------------------------- key cache


def verifier(url: str, clock: Callable[[], float], refetch_interval: float = 30.0) -> OidcVerifier:
    return OidcVerifier(
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks_url=url,
        refetch_interval=refetch_interval,
        clock=clock,
    )


def test_keys_are_cached_and_an_unknown_kid_refetches_once_rate_limited(
    rsa_signer: Signer, ec_signer: Signer
) -> None:
    server = JwksServer()
    server.keys = [rsa_signer.jwk()]
    now = [1000.0]
    v = verifier(server.url, lambda: now[0])
    try:
        for _ in range(3):
            assert v.verify(rsa_signer.token()).user == "rita@example.com"
        assert server.fetches == 1

        # The IdP rotates in the EC key: the first token with its kid refetches once.
        server.keys = [rsa_signer.jwk(), ec_signer.jwk()]
        now[0] += 31
        identity = v.verify(ec_signer.token())
        assert identity.groups == ("risk-committee", "idp-only-group")
        assert server.fetches == 2

        # Made-up key ids cannot hammer the IdP: one refetch per interval at most.
        bogus = rsa_signer.token(headers={"kid": "bogus"})
        for _ in range(5):
            with pytest.raises(TokenRejected, match="unknown key"):
                v.verify(bogus)
        assert server.fetches == 2
        now[0] += 31
        with pytest.raises(TokenRejected, match="unknown key"):
            v.verify(bogus)
        assert server.fetches == 3
        with pytest.raises(TokenRejected, match="unknown key"):
            v.verify(bogus)
        assert server.fetches == 3
    finally:
        server.close()


def test_cached_keys_outlive_an_idp_outage(rsa_signer: Signer) -> None:
    server = JwksServer()
    server.keys = [rsa_signer.jwk()]
    now = [1000.0]
    v = verifier(server.url, lambda: now[0])
    v.verify(rsa_signer.token())
    server.close()
    now[0] += 4000  # keys are stale, the refresh fails, the cached keys keep working
    assert v.verify(rsa_signer.token()).user == "rita@example.com"


def test_no_keys_at_all_is_unavailable(rsa_signer: Signer) -> None:
    server = JwksServer()
    url = server.url
    server.close()
    v = verifier(url, time.monotonic)
    with pytest.raises(IdentityProviderUnavailable):
        v.verify(rsa_signer.token())
