"""Store errors as the drivers really raise them, told apart into "retry" and "never".

PostgreSQL errors are produced by the server itself (``RAISE … USING ERRCODE`` in a ``DO``
block gives any SQLSTATE, raised through asyncpg exactly as a real one); SQLite ones by SQLite.
"""

from __future__ import annotations

import sqlite3
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.store.db import make_engine
from services.store.errors import Permanent, classify, describe, sqlstate


async def _raised(engine: AsyncEngine, *statements: str) -> BaseException:
    async with engine.connect() as connection:
        try:
            for statement in statements:
                await connection.execute(text(statement))
        except StatementError as exc:
            await connection.rollback()
            return exc
    raise AssertionError(f"no error from {statements}")


def _table() -> tuple[str, str]:
    """A scratch table of its own (temporary tables live as long as a pooled connection)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    return name, f"CREATE TEMPORARY TABLE {name} (x VARCHAR(2) NOT NULL CHECK (x <> 'no') UNIQUE)"


@pytest.mark.parametrize(
    ("sqlstate_code", "expected"),
    [
        ("40001", None),  # serialization_failure
        ("40P01", None),  # deadlock_detected
        ("55P03", None),  # lock_not_available
        ("57P01", None),  # admin_shutdown
        ("53300", None),  # too_many_connections
        ("08006", None),  # connection_failure
        ("42P01", None),  # undefined_table: a schema not migrated yet
        ("22001", Permanent.VALUE_TOO_LONG),
        ("22P02", Permanent.INVALID_VALUE),
        ("22021", Permanent.INVALID_VALUE),  # character_not_in_repertoire (a NUL byte)
        ("23505", Permanent.CONSTRAINT),
        ("23514", Permanent.CONSTRAINT),
    ],
)
async def test_postgresql_errors_by_sqlstate(
    engine: AsyncEngine, backend: str, sqlstate_code: str, expected: Permanent | None
) -> None:
    if backend != "postgresql":
        pytest.skip("SQLSTATE is PostgreSQL's")
    exc = await _raised(
        engine, f"DO $$ BEGIN RAISE EXCEPTION 'raised' USING ERRCODE = '{sqlstate_code}'; END $$"
    )
    assert sqlstate(exc) == sqlstate_code
    assert classify(exc) == expected


async def test_a_value_too_long_for_postgresql_is_no_data_error_class(
    engine: AsyncEngine, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite does not enforce varchar lengths")
    name, table = _table()
    exc = await _raised(engine, table, f"INSERT INTO {name} VALUES ('abc')")
    # why the exception class is no guide: asyncpg's truncation arrives as a plain DBAPIError
    assert isinstance(exc, DBAPIError)
    assert not isinstance(exc, DataError)
    assert classify(exc) is Permanent.VALUE_TOO_LONG
    assert "[22001]" in describe(exc)
    assert "INSERT" not in describe(exc)  # the driver's words, not the statement


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("INSERT INTO {t} VALUES (NULL)", Permanent.CONSTRAINT),
        ("INSERT INTO {t} VALUES ('no')", Permanent.CONSTRAINT),
        ("INSERT INTO {t} VALUES ('ok'), ('ok')", Permanent.CONSTRAINT),
        ("SELECT * FROM no_such_table", None),
    ],
    ids=["not-null", "check", "unique", "schema-not-migrated"],
)
async def test_constraint_and_schema_errors_on_both_backends(
    engine: AsyncEngine, statement: str, expected: Permanent | None
) -> None:
    name, table = _table()
    exc = await _raised(engine, table, statement.format(t=name))
    assert classify(exc) == expected


@pytest.fixture
def sqlite_file(db_url: str, backend: str) -> str:
    if backend != "sqlite":
        pytest.skip("SQLite's lock")
    database = make_url(db_url).database
    assert database is not None
    return database


async def test_a_busy_sqlite_database_is_retryable(sqlite_file: str, db_url: str) -> None:
    blocker = sqlite3.connect(sqlite_file, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    engine = make_engine(db_url, sqlite_busy_timeout_ms=50)
    try:
        exc = await _raised(engine, "INSERT INTO ledger_blocked VALUES ('w', 1, 'r', 'd', '2026')")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        await engine.dispose()
    assert getattr(getattr(exc, "orig", None), "sqlite_errorname", None) == "SQLITE_BUSY"
    assert classify(exc) is None


def test_errors_outside_the_database_are_retryable() -> None:
    assert classify(OSError("connection refused")) is None
    assert classify(TimeoutError()) is None
