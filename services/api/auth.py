"""Bearer tokens → a person in the directory."""

from __future__ import annotations

from fastapi import Request

from services.api.problems import Problem
from workflows.policy import Directory, Person


def authenticate(request: Request, directory: Directory, *, production: bool) -> Person:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "a bearer token is required", code="unauthenticated")
    if production:
        # Development tokens from the directory file are never accepted in production.
        raise Problem(
            401, "development tokens are not accepted in production", code="unauthenticated"
        )
    person = directory.by_token(token.strip())
    if person is None:
        raise Problem(401, "unknown or expired token", code="unauthenticated")
    return person
