"""Console sessions: a signed cookie naming the signed-in person, and a CSRF token per session.

The cookie is Starlette's signed session (itsdangerous), HttpOnly, ``SameSite=Lax`` (the OIDC
provider's redirect back is a top-level GET that must carry it), limited to ``/ui`` and Secure
whenever the console is served over https or in production. Its key is
``RELEASEGATE_SESSION_SECRET``, else one derived from the API's command-signing key, so every
API replica accepts every other's sessions with no extra secret to distribute.

Every form carries the session's CSRF token; a POST without the session's token is refused
before anything is read or sent (synchronizer token), and so is one from another origin.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request

from services.settings import Settings
from workflows.credentials import Signer
from workflows.policy import Directory, Person

COOKIE = "releasegate_console"
COOKIE_PATH = "/ui"
MAX_AGE_S = 8 * 3600
CSRF_FIELD = "csrf"
# how the session was made: a development sign-in never counts in production
DEV = "dev"
OIDC = "oidc"


def session_secret(settings: Settings, signer: Signer) -> str:
    """The session cookie's key: configured, else HMAC-derived from the signing key (a key of
    its own for this one purpose, never the signing key itself)."""
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value()
    return hmac.new(signer.seed, b"releasegate console session v1", hashlib.sha256).hexdigest()


def secure_cookies(settings: Settings) -> bool:
    return settings.is_production or settings.public_url.lower().startswith("https://")


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use: an anonymous session has one too, so the
    sign-in form is protected as well)."""
    token = request.session.get(CSRF_FIELD)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[CSRF_FIELD] = token
    return token


def csrf_ok(request: Request, submitted: str | None) -> bool:
    expected = request.session.get(CSRF_FIELD)
    if not isinstance(expected, str) or not expected or not submitted:
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode()) and same_origin(request)


def same_origin(request: Request) -> bool:
    """A browser names the page a form came from (``Origin``); it must be this console. An
    absent Origin (old browsers, some privacy settings) leaves it to the token alone."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    host = request.headers.get("host", "")
    return parts.netloc == host


def sign_in(request: Request, person: Person, how: str, **extra: Any) -> None:
    """A fresh session for ``person``: whatever the anonymous one held is dropped (no session
    fixation), with a new CSRF token."""
    request.session.clear()
    request.session.update(
        {
            "person": person.id,
            "how": how,
            "since": datetime.now(UTC).isoformat(),
            CSRF_FIELD: secrets.token_urlsafe(32),
            **extra,
        }
    )


def sign_out(request: Request) -> None:
    request.session.clear()


def signed_in(request: Request, directory: Directory, settings: Settings) -> Person | None:
    """The session's person, if it names one still in the directory (and, in production, was
    signed in through OIDC)."""
    person_id = request.session.get("person")
    if not isinstance(person_id, str):
        return None
    if settings.is_production and request.session.get("how") != OIDC:
        return None
    return directory.get(person_id)


__all__ = [
    "COOKIE",
    "COOKIE_PATH",
    "CSRF_FIELD",
    "DEV",
    "MAX_AGE_S",
    "OIDC",
    "csrf_ok",
    "csrf_token",
    "secure_cookies",
    "session_secret",
    "sign_in",
    "sign_out",
    "signed_in",
]
