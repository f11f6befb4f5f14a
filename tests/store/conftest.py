"""Store tests run once on SQLite and once on PostgreSQL.

PostgreSQL comes from ``RELEASEGATE_TEST_POSTGRES_URL`` (default: the CI machine's
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``, trust auth); every session works in
databases of its own, created here and dropped afterwards. Under ``CI=true`` an unreachable
PostgreSQL fails the run instead of skipping it: CI must prove both backends.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.store.db import make_engine, make_sessionmaker
from services.store.migrate import upgrade_head
from services.store.models import Base
from services.store.tempdb import (
    admin_engine,
    temporary_postgres_database,
    temporary_sqlite_database,
)

POSTGRES_ADMIN_URL = os.environ.get(
    "RELEASEGATE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")

BACKENDS = ("sqlite", "postgresql")


_postgres_problem: list[str] = []  # probed once per session: a dead server fails fast


async def _probe_postgres() -> str | None:
    engine = admin_engine(POSTGRES_ADMIN_URL)
    try:
        async with asyncio.timeout(10):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    except Exception as exc:
        return f"PostgreSQL at {POSTGRES_ADMIN_URL} is unreachable: {exc!r}"
    finally:
        await engine.dispose()
    return None


async def _require_postgres() -> None:
    if not _postgres_problem:
        _postgres_problem.append(await _probe_postgres() or "")
    if message := _postgres_problem[0]:
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@asynccontextmanager
async def fresh_database(backend: str) -> AsyncIterator[str]:
    """An empty database of ``backend`` (no schema), removed afterwards."""
    if backend == "sqlite":
        async with temporary_sqlite_database(prefix="releasegate-test-") as url:
            yield url
        return
    await _require_postgres()
    async with temporary_postgres_database(POSTGRES_ADMIN_URL, prefix="releasegate_test") as url:
        yield url


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
async def db_url(backend: str) -> AsyncIterator[str]:
    """A database migrated to head, shared by the session's tests of one backend."""
    async with fresh_database(backend) as url:
        await upgrade_head(url)
        yield url


@pytest.fixture(scope="session")
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(db_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A sessionmaker on emptied tables: list and inbox assertions see only their own rows."""
    async with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(table.delete())
    return make_sessionmaker(engine)


@pytest.fixture
async def empty_db_url(backend: str) -> AsyncIterator[str]:
    """A database of the current backend with no schema at all (for migration tests)."""
    async with fresh_database(backend) as url:
        yield url
