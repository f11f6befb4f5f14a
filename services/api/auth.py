"""Bearer tokens → a person in the directory.

A token that looks like a JWT is an OIDC token and is verified by ``services.api.oidc`` (when
OIDC is configured); anything else is a development token from the directory file, refused in
production. A valid OIDC token whose user claim names nobody in the directory is a 403: the
caller is authenticated, but is not a ReleaseGate person.
"""

from __future__ import annotations

from fastapi import Request

from services.api.oidc import (
    IdentityProviderUnavailable,
    OidcVerifier,
    TokenRejected,
    looks_like_jwt,
)
from services.api.problems import Problem
from workflows.policy import Directory, Person


def authenticate(request: Request, directory: Directory, *, production: bool) -> Person:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Problem(401, "a bearer token is required", code="unauthenticated")
    verifier: OidcVerifier | None = getattr(request.app.state, "oidc", None)
    if looks_like_jwt(token):
        if verifier is None:
            raise Problem(401, "OIDC tokens are not accepted here", code="unauthenticated")
        return _oidc_person(verifier, directory, token)
    if production:
        # Development tokens from the directory file are never accepted in production.
        raise Problem(
            401, "development tokens are not accepted in production", code="unauthenticated"
        )
    person = directory.by_token(token)
    if person is None:
        raise Problem(401, "unknown or expired token", code="unauthenticated")
    return person


def _oidc_person(verifier: OidcVerifier, directory: Directory, token: str) -> Person:
    try:
        identity = verifier.verify(token)
    except TokenRejected as exc:
        raise Problem(401, str(exc), code="unauthenticated") from None
    except IdentityProviderUnavailable as exc:
        raise Problem(503, str(exc), code="idp-unavailable") from None
    by_email = verifier.user_claim == "email" or "@" in identity.user
    if by_email and not identity.email_verified:
        # An unverified address proves nothing: anyone can claim rita@ at some providers.
        raise Problem(
            403, "the token's email is not verified by the identity provider", code="unknown-person"
        )
    person = directory.get(identity.user) or (
        directory.by_email(identity.user) if identity.email_verified else None
    )
    if person is None:
        raise Problem(403, "the token names no person in the directory", code="unknown-person")
    # Eligibility comes from the directory's groups, never from the token's.
    return person
