"""Throwaway databases for tests and benchmarks (never used by the running service).

PostgreSQL: a uniquely named database created next to the one ``admin_url`` names and dropped
(connections forced off) afterwards, so runs neither see nor disturb each other's data.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from services.store.db import normalize_url


def admin_engine(admin_url: str | URL) -> AsyncEngine:
    # CREATE/DROP DATABASE cannot run inside a transaction block
    return create_async_engine(
        normalize_url(admin_url), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )


@asynccontextmanager
async def temporary_postgres_database(
    admin_url: str | URL, *, prefix: str = "releasegate_tmp"
) -> AsyncIterator[str]:
    """Yield the URL of a new empty database; drop it on exit."""
    base = normalize_url(admin_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    engine = admin_engine(base)
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            async with engine.connect() as connection:
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await engine.dispose()


@asynccontextmanager
async def temporary_sqlite_database(*, prefix: str = "releasegate-") -> AsyncIterator[str]:
    """Yield the URL of a new SQLite file in a temporary directory removed on exit."""
    with tempfile.TemporaryDirectory(prefix=prefix) as directory:
        yield f"sqlite+aiosqlite:///{Path(directory) / 'store.db'}"
