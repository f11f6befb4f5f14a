"""OIDC bearer tokens: JWTs verified against the issuer, the audience and the issuer's JWKS.

Only asymmetric algorithms are accepted (RS256, ES256): the algorithm comes from our list, never
from the token alone, so ``alg: none`` and HS256-with-the-public-key tricks fail. Keys are cached;
a token signed with a key id we do not know triggers one JWKS refetch (key rotation), and such
refetches are rate-limited so a stream of made-up key ids cannot hammer the identity provider.

Tokens are never logged: log lines name the key id, the algorithm or the reason only.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from jwt import PyJWK

from services.settings import Settings

log = logging.getLogger("releasegate.api.oidc")

ALGORITHMS: dict[str, tuple[str, str | None]] = {
    # alg: (JWK kty, JWK crv)
    "RS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
}
CLOCK_SKEW_SECONDS = 30
JWKS_TIMEOUT_SECONDS = 5.0
JWKS_MAX_AGE_SECONDS = 3600.0
UNKNOWN_KID_REFETCH_INTERVAL_SECONDS = 30.0
NO_KEYS_RETRY_SECONDS = 2.0


class TokenRejected(Exception):  # noqa: N818 - reads as "the token was rejected"
    """The token is not acceptable; the message is safe to show the caller."""


class IdentityProviderUnavailable(Exception):  # noqa: N818
    """No keys to verify with: the JWKS could not be fetched and nothing is cached."""


def looks_like_jwt(token: str) -> bool:
    """Three base64url segments whose first decodes to a JSON object (a JOSE header)."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0]:
        return False
    try:
        header = json.loads(_b64url_decode(parts[0]))
    except (ValueError, binascii.Error):
        return False
    return isinstance(header, dict)


def _b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@dataclass(frozen=True)
class Identity:
    subject: str
    user: str
    groups: tuple[str, ...]
    # the provider vouches for the email claim (``email_verified`` is the JSON boolean true)
    email_verified: bool = False


@dataclass(frozen=True)
class _Key:
    jwk: PyJWK
    kty: str
    crv: str | None
    alg: str | None


@dataclass
class _KeyCache:
    keys: dict[str, _Key] = field(default_factory=dict)
    fetched_at: float | None = None  # monotonic time of the last successful fetch
    attempted_at: float | None = None  # ... and of the last attempt


class OidcVerifier:
    """Verifies bearer JWTs. Thread-safe: FastAPI runs the sync auth dependency in a pool."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str,
        user_claim: str = "email",
        groups_claim: str = "groups",
        refetch_interval: float = UNKNOWN_KID_REFETCH_INTERVAL_SECONDS,
        max_age: float = JWKS_MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.jwks_url = jwks_url
        self.user_claim = user_claim
        self.groups_claim = groups_claim
        self.refetch_interval = refetch_interval
        self.max_age = max_age
        self._clock = clock
        self._cache = _KeyCache()
        self._lock = threading.Lock()
        self.fetches = 0  # JWKS requests made (observability and tests)

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcVerifier | None:
        issuer, audience, jwks_url = (
            settings.oidc_issuer,
            settings.oidc_audience,
            settings.oidc_jwks_url,
        )
        if not (issuer and audience and jwks_url):
            return None
        return cls(
            issuer=issuer,
            audience=audience,
            jwks_url=jwks_url,
            user_claim=settings.oidc_user_claim,
            groups_claim=settings.oidc_groups_claim,
        )

    # ------------------------------------------------------------------ verification

    def verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise TokenRejected("malformed token") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            # 'none', HS256 and anything else we do not verify
            raise TokenRejected("token algorithm not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("token has no key id")
        key = self._key(kid, alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("token expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenRejected("token not yet valid") from None
        except jwt.InvalidAudienceError:
            raise TokenRejected("token audience not accepted") from None
        except jwt.InvalidIssuerError:
            raise TokenRejected("token issuer not accepted") from None
        except jwt.InvalidSignatureError:
            raise TokenRejected("token signature invalid") from None
        except jwt.InvalidTokenError as exc:
            raise TokenRejected(f"token invalid: {exc.__class__.__name__}") from None
        return self._identity(claims)

    def _identity(self, claims: Mapping[str, Any]) -> Identity:
        user = claims.get(self.user_claim)
        if not isinstance(user, str) or not user:
            raise TokenRejected(f"token has no {self.user_claim!r} claim")
        raw_groups = claims.get(self.groups_claim, [])
        if isinstance(raw_groups, str):
            raw_groups = [raw_groups]
        groups = tuple(g for g in raw_groups if isinstance(g, str)) if raw_groups else ()
        return Identity(
            subject=str(claims.get("sub", "")),
            user=user,
            groups=groups,
            email_verified=claims.get("email_verified") is True,
        )

    # ------------------------------------------------------------------ keys

    def _key(self, kid: str, alg: str) -> PyJWK:
        with self._lock:
            self._maybe_refresh(kid)
            key = self._cache.keys.get(kid)
        if key is None:
            raise TokenRejected("token signed with an unknown key")
        kty, crv = ALGORITHMS[alg]
        if key.kty != kty or key.crv != crv or key.alg not in (None, alg):
            raise TokenRejected("token algorithm does not match its key")
        return key.jwk

    def _maybe_refresh(self, kid: str) -> None:
        """Refresh when the keys are old, or once for an unknown key id; never more often than
        ``refetch_interval`` (every few seconds while nothing could be fetched yet)."""
        now = self._clock()
        cache = self._cache
        since_attempt = math.inf if cache.attempted_at is None else now - cache.attempted_at
        if cache.fetched_at is None:
            if since_attempt < min(NO_KEYS_RETRY_SECONDS, self.refetch_interval):
                raise IdentityProviderUnavailable("the identity provider's keys are unavailable")
            self._refresh(now)
            return
        if since_attempt < self.refetch_interval:
            if kid not in cache.keys:
                log.info("unknown key id %.64r: JWKS refetch is rate-limited", kid)
            return
        if now - cache.fetched_at >= self.max_age:
            self._refresh(now)
        elif kid not in cache.keys:
            log.info("unknown key id %.64r: refetching the JWKS", kid)
            self._refresh(now)

    def _refresh(self, now: float) -> None:
        """Fetch the JWKS; keep what we had if the fetch fails (and say so)."""
        self._cache.attempted_at = now
        self.fetches += 1
        try:
            response = httpx.get(self.jwks_url, timeout=JWKS_TIMEOUT_SECONDS)
            response.raise_for_status()
            keys = self._parse(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("JWKS fetch from %s failed: %s", self.jwks_url, exc.__class__.__name__)
            if self._cache.fetched_at is None:
                raise IdentityProviderUnavailable(
                    "the identity provider's keys cannot be fetched"
                ) from None
            return
        self._cache.keys = keys
        self._cache.fetched_at = now
        log.info("JWKS from %s: %d usable keys", self.jwks_url, len(keys))

    @staticmethod
    def _parse(document: Any) -> dict[str, _Key]:
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("not a JWKS document")
        keys: dict[str, _Key] = {}
        for data in document["keys"]:
            if not isinstance(data, dict) or not isinstance(data.get("kid"), str):
                continue
            if data.get("use", "sig") != "sig" or data.get("kty") not in ("RSA", "EC"):
                continue
            try:
                jwk = PyJWK(data)
            except jwt.PyJWTError:
                log.warning("JWKS key %r is not usable; skipped", data["kid"])
                continue
            keys[data["kid"]] = _Key(jwk, data["kty"], data.get("crv"), data.get("alg"))
        return keys
