"""Console sign-in with OIDC: Authorization Code with PKCE (S256), built with Authlib's
OAuth 2.0 protocol functions (RFC 6749 grant and token requests, RFC 7636 challenge) over the
project's own httpx client.

``begin`` stores state, nonce and the PKCE verifier in the (signed, HttpOnly) session and
answers the provider's authorization URL; ``finish`` checks the state, exchanges the code with
the verifier at the token endpoint and verifies the ID token exactly as bearer tokens are
verified (``services.api.oidc``: our algorithms, the issuer, the JWKS, ``exp``), with the
client id as its audience and the nonce it was sent with. The person is found in the directory
by the same rule as for bearer tokens (an email names a person only when verified).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from services.api.auth import _oidc_person
from services.api.oidc import OidcVerifier
from services.api.problems import Problem
from services.settings import Settings
from workflows.policy import Directory, Person

PENDING = "oidc_pending"
SCOPE = "openid email profile"
HTTP_TIMEOUT_S = 10.0


class SignInFailed(Exception):  # noqa: N818 - reads as "sign-in failed"
    """The provider's answer cannot sign anyone in; the message is safe to show."""


@dataclass
class Endpoints:
    authorization: str
    token: str


class OidcLogin:
    """One per process, made from the settings when a client id is configured."""

    def __init__(self, settings: Settings) -> None:
        assert settings.oidc_client_id
        assert settings.oidc_issuer
        assert settings.oidc_jwks_url
        self.settings = settings
        self.client_id = settings.oidc_client_id
        self.issuer = settings.oidc_issuer
        secret = settings.oidc_client_secret
        self.client_secret = secret.get_secret_value() if secret else None
        self.redirect_uri = f"{settings.public_url.rstrip('/')}/ui/auth/callback"
        # the ID token's audience is this client, not the API's bearer-token audience
        self.verifier = OidcVerifier(
            issuer=settings.oidc_issuer,
            audience=self.client_id,
            jwks_url=settings.oidc_jwks_url,
            user_claim=settings.oidc_user_claim,
            groups_claim=settings.oidc_groups_claim,
        )
        self._endpoints: Endpoints | None = None
        if settings.oidc_authorization_url and settings.oidc_token_url:
            self._endpoints = Endpoints(settings.oidc_authorization_url, settings.oidc_token_url)

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcLogin | None:
        if not (settings.oidc_enabled and settings.oidc_client_id):
            return None
        return cls(settings)

    async def endpoints(self) -> Endpoints:
        """Configured, or from the issuer's discovery document (fetched once)."""
        if self._endpoints is None:
            url = f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"
            try:
                async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as http:
                    response = await http.get(url)
                    response.raise_for_status()
                    doc = response.json()
                self._endpoints = Endpoints(
                    str(doc["authorization_endpoint"]), str(doc["token_endpoint"])
                )
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                raise Problem(
                    503, "the identity provider cannot be reached", code="idp-unavailable"
                ) from None
        return self._endpoints

    async def begin(self, request: Request) -> str:
        """The URL to send the browser to; what the callback checks is kept in the session."""
        endpoints = await self.endpoints()
        state = secrets.token_urlsafe(24)
        nonce = secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)  # 64 characters, within RFC 7636's 43-128
        url = prepare_grant_uri(
            endpoints.authorization,
            client_id=self.client_id,
            response_type="code",
            redirect_uri=self.redirect_uri,
            scope=SCOPE,
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
        )
        request.session[PENDING] = {"state": state, "nonce": nonce, "verifier": verifier}
        return str(url)

    async def finish(
        self, request: Request, directory: Directory, code: str | None, state: str | None
    ) -> Person:
        pending: dict[str, Any] | None = request.session.pop(PENDING, None)
        if not pending or not state or not secrets.compare_digest(pending["state"], state):
            raise SignInFailed("this sign-in was not started here, or has already been used")
        if not code:
            raise SignInFailed("the identity provider returned no authorization code")
        endpoints = await self.endpoints()
        token = await self._exchange(endpoints.token, code, pending["verifier"])
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise SignInFailed("the identity provider returned no ID token")
        return await run_in_threadpool(self._person, directory, id_token, pending["nonce"])

    async def _exchange(self, url: str, code: str, verifier: str) -> dict[str, Any]:
        """The token request (RFC 6749 4.1.3 with the PKCE verifier); the client authenticates
        with its secret in the body when it has one, else by PKCE alone (a public client)."""
        extra = {"client_secret": self.client_secret} if self.client_secret else {}
        body = prepare_token_request(
            "authorization_code",
            code=code,
            redirect_uri=self.redirect_uri,
            client_id=self.client_id,
            code_verifier=verifier,
            **extra,
        )
        try:
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as http:
                response = await http.post(
                    url,
                    content=body,
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "Accept": "application/json",
                    },
                )
            token = response.json()
        except (httpx.HTTPError, ValueError):
            raise SignInFailed("the identity provider cannot be reached") from None
        if response.status_code != 200 or not isinstance(token, dict):
            error = token.get("error") if isinstance(token, dict) else None
            raise SignInFailed(f"the identity provider refused the code ({error or 'error'})")
        return token

    def _person(self, directory: Directory, id_token: str, nonce: str) -> Person:
        person = _oidc_person(self.verifier, directory, id_token)  # Problem 401/403/503
        # the signature was verified just above; only the nonce is read here
        claims = jwt.decode(id_token, options={"verify_signature": False})
        if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise SignInFailed("the ID token was not issued for this sign-in (nonce)")
        return person


__all__ = ["OidcLogin", "SignInFailed"]
