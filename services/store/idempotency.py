"""Idempotency keys bound to the request they were first sent with (``idempotency_keys``).

The command layer binds a key's scope (command, caller, key) to the digest of the request
before it sends the command: a later request with the same scope and another digest is
refused instead of being answered with the first one's outcome.

Binding is one ``INSERT … ON CONFLICT DO NOTHING`` and a read of what the scope holds, in a
transaction of its own: of two concurrent requests with one scope, PostgreSQL makes the second
insert wait for the first one's commit (then it reads the winner's digest); SQLite serialises
the writers. Either way exactly one digest is bound, and both requests see it.

Retention: a key matters only while its client may still retry. Rows older than ``RETENTION``
can be deleted with ``IdempotencyRepository.prune`` (no job does it yet; a periodic
``DELETE FROM idempotency_keys WHERE created_at < now() - interval '30 days'`` is the same).
A pruned key is simply new again: the command is sent, and Temporal still answers an Update id
it remembers with its first outcome.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.store.models import IdempotencyKey

RETENTION = timedelta(days=30)


class IdempotencyRepository:
    """``idempotency_keys`` on one ``AsyncSession`` (the caller owns the commit)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def bind(self, scope: str, request_sha256: str, *, at: datetime | None = None) -> str:
        """Bind ``scope`` to ``request_sha256`` unless it is bound already; returns the digest
        the scope is bound to (the first request's)."""
        connection = await self.session.connection()
        dialect_insert = (
            postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
        )
        await self.session.execute(
            dialect_insert(IdempotencyKey)
            .values(scope=scope, request_sha256=request_sha256, created_at=at or datetime.now(UTC))
            .on_conflict_do_nothing(index_elements=[IdempotencyKey.scope])
        )
        bound = await self.bound(scope)
        if bound is None:  # pragma: no cover - the row was inserted or already there
            raise AssertionError(f"idempotency scope {scope!r} is not bound after binding it")
        return bound

    async def bound(self, scope: str) -> str | None:
        """The request digest ``scope`` is bound to, if any."""
        return await self.session.scalar(
            select(IdempotencyKey.request_sha256).where(IdempotencyKey.scope == scope)
        )

    async def prune(self, *, older_than: timedelta = RETENTION, now: datetime | None = None) -> int:
        """Delete keys bound longer ago than ``older_than``; returns how many."""
        cutoff = (now or datetime.now(UTC)) - older_than
        result = await self.session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff)
        )
        return int(getattr(result, "rowcount", 0) or 0)


__all__ = ["RETENTION", "IdempotencyRepository"]
