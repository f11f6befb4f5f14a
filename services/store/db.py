"""Engine and session plumbing. Callers make one engine per process (API lifespan, worker main).

SQLite notes: the driver's default (deferred) transactions are kept. A transaction only takes
the write lock at its first write statement, so ``busy_timeout`` makes concurrent writers wait
instead of failing; reads that precede the first write are not isolated from other writers,
which is why every write path in the repositories rests on unique constraints and conditional
upserts rather than on read-then-write snapshots.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import StaticPool

DEFAULT_SQLITE_BUSY_TIMEOUT_MS = 5000

# Async drivers for URLs given without one (``postgresql://``, ``sqlite:///``).
_ASYNC_DRIVERS = {"postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}


def normalize_url(url: str | URL) -> URL:
    """Parse ``url`` and pick the async driver when the URL names only the backend."""
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_in_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or "mode=memory" in str(url)


def ensure_sqlite_parent_dir(url: str | URL) -> None:
    """Create the directory of a file-backed SQLite URL; SQLite will not create it itself."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or _sqlite_in_memory(parsed):
        return
    assert parsed.database is not None
    Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def make_engine(
    url: str | URL,
    *,
    sqlite_busy_timeout_ms: int = DEFAULT_SQLITE_BUSY_TIMEOUT_MS,
    **engine_kwargs: Any,
) -> AsyncEngine:
    """Create the process's async engine for SQLite (aiosqlite) or PostgreSQL (asyncpg)."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "sqlite":
        # pre-ping: a pooled connection that died with a database restart is replaced
        # transparently instead of failing the first activity or request after it
        engine_kwargs.setdefault("pool_pre_ping", True)
        return create_async_engine(parsed, **engine_kwargs)

    if _sqlite_in_memory(parsed):
        # every new connection would see its own empty database otherwise
        engine_kwargs.setdefault("poolclass", StaticPool)
    else:
        ensure_sqlite_parent_dir(parsed)
    engine = create_async_engine(parsed, **engine_kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # WAL lets the API read while the worker writes; FULL keeps every committed ledger
            # entry on disk across power loss (the audit record matters more than write speed)
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA busy_timeout={int(sqlite_busy_timeout_ms)}")
            # SQLite ignores foreign keys unless asked, per connection
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: repositories hand ORM rows back after the commit of the
    # session_scope they were loaded in; expiring them would force lazy reloads in async code
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def session_scope(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit when the block succeeds, roll back when it raises."""
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
