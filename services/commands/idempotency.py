"""Idempotency keys bound to requests: what makes two requests "the same", and where that is kept.

``Idempotency-Key`` is scoped to (command, caller, key) — ``Sender.update_id`` — and bound to
the digest of the first request sent with it: the route it reached, the path's parameters (the
run named as its id, whichever spelling was used), the body as received, and ``If-Match``
(which says what an approval binds to). The same request again is sent again and Temporal
answers its Update id with the first outcome; another request with the key is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.commands.errors import Outage, Unavailable
from services.store.db import session_scope
from services.store.idempotency import IdempotencyRepository


class IdempotencyKeys(Protocol):
    """Where keys are bound to request digests (one binding per scope, first wins)."""

    async def bind(self, scope: str, request_sha256: str) -> str:
        """Bind ``scope`` unless bound; returns the digest it is bound to."""
        ...

    async def bound(self, scope: str) -> str | None:
        """The digest ``scope`` is bound to, if any."""
        ...


def request_sha256(
    route: str, params: Mapping[str, str], body: Any, *, if_match: str | None = None
) -> str:
    """The digest of a command request: sha256 of the canonical JSON (sorted keys, no
    whitespace) of its route, path parameters, body and ``If-Match``."""
    doc = {"route": route, "params": dict(params), "body": body, "if_match": if_match}
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def body_document(raw: bytes) -> Any:
    """A request body as the JSON it holds (``None`` when empty). A body that is not JSON
    never reaches a route; should one, its bytes stand for it."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return {"sha256": hashlib.sha256(raw).hexdigest()}


class StoredIdempotencyKeys:
    """``IdempotencyKeys`` in the store (``idempotency_keys``): each call one short transaction
    of its own, so a binding is visible to every other request as soon as it is made. A store
    that cannot be reached is ``Unavailable`` (``db-unavailable``): nothing was sent."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    async def bind(self, scope: str, request_sha256: str) -> str:
        try:
            async with session_scope(self.sessionmaker) as session:
                return await IdempotencyRepository(session).bind(scope, request_sha256)
        except (SQLAlchemyError, OSError) as exc:
            raise _unavailable(exc) from None

    async def bound(self, scope: str) -> str | None:
        try:
            async with session_scope(self.sessionmaker) as session:
                return await IdempotencyRepository(session).bound(scope)
        except (SQLAlchemyError, OSError) as exc:
            raise _unavailable(exc) from None


def _unavailable(exc: BaseException) -> Unavailable:
    return Unavailable(
        Outage.DB_UNAVAILABLE,
        f"the database is unreachable ({exc.__class__.__name__}): the Idempotency-Key could "
        "not be checked, and the command was not sent",
    )


__all__ = ["IdempotencyKeys", "StoredIdempotencyKeys", "body_document", "request_sha256"]
