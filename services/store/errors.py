"""Which store errors a retry can heal, and which it never will, on both drivers.

The worker's activities are retried by Temporal until they succeed, so an error that cannot
heal must be recognised, or the run's ledger stops for good while its activity retries in
silence. The same payload is refused every time when the *value* is the problem: too long for
its column, not representable, against a constraint the data cannot change. Everything else —
a connection lost or refused, a lock or busy timeout, a serialization failure or deadlock, a
full disk, a schema not migrated yet — depends on the database's condition, which an operator
or time can fix, so it is retried.

PostgreSQL (asyncpg) errors are told apart by SQLSTATE: SQLAlchemy's asyncpg adapter raises
``DBAPIError`` (not ``DataError``) for most of them, so the exception class alone says nothing.
SQLite errors carry their result code name (``SQLITE_CONSTRAINT_UNIQUE``, ``SQLITE_BUSY`` …).
"""

from __future__ import annotations

import sqlite3
from enum import StrEnum

from sqlalchemy.exc import DBAPIError, StatementError


class Permanent(StrEnum):
    """Why no retry can store a payload (``ledger_blocked.reason``, metric label)."""

    VALUE_TOO_LONG = "value_too_long"
    INVALID_VALUE = "invalid_value"
    CONSTRAINT = "constraint"
    # the batch itself cannot be written as given (e.g. one event id with two contents)
    UNWRITABLE_BATCH = "unwritable_batch"


# SQLSTATE classes (first two characters) whose errors the payload causes
_PG_VALUE_TOO_LONG = "22001"  # string_data_right_truncation
_PG_DATA_EXCEPTION = "22"
_PG_INTEGRITY = "23"

_SQLITE_PERMANENT = {
    "SQLITE_CONSTRAINT": Permanent.CONSTRAINT,  # and every SQLITE_CONSTRAINT_* extended code
    "SQLITE_TOOBIG": Permanent.VALUE_TOO_LONG,
    "SQLITE_MISMATCH": Permanent.INVALID_VALUE,
}


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a PostgreSQL error, whichever driver raised it."""
    for candidate in (getattr(exc, "orig", None), exc):
        while candidate is not None:
            code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
            if isinstance(code, str) and code:
                return code
            candidate = candidate.__cause__
    return None


def _sqlite(orig: BaseException) -> Permanent | None:
    name = getattr(orig, "sqlite_errorname", None)
    if isinstance(name, str):
        for prefix, kind in _SQLITE_PERMANENT.items():
            if name == prefix or name.startswith(prefix + "_"):
                return kind
        return None
    # no result code: the sqlite3 module refused the value before SQLite saw it
    if isinstance(orig, sqlite3.IntegrityError):
        return Permanent.CONSTRAINT
    if isinstance(orig, sqlite3.DataError | sqlite3.InterfaceError):
        return Permanent.INVALID_VALUE
    return None


def classify(exc: BaseException) -> Permanent | None:
    """The reason no retry can help, or None when the error may heal (retry it)."""
    if not isinstance(exc, StatementError):
        return None  # OSError, timeouts, cancellations: the database's condition, not the data
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return None
        code = sqlstate(exc)
        if code is not None:
            if code == _PG_VALUE_TOO_LONG:
                return Permanent.VALUE_TOO_LONG
            if code.startswith(_PG_DATA_EXCEPTION):
                return Permanent.INVALID_VALUE
            if code.startswith(_PG_INTEGRITY):
                return Permanent.CONSTRAINT
            return None
        if isinstance(exc.orig, sqlite3.Error):
            return _sqlite(exc.orig)
        return None
    # a StatementError that is no DBAPIError: SQLAlchemy could not even bind the value
    if isinstance(exc.orig, TypeError | ValueError):
        return Permanent.INVALID_VALUE
    return None


def describe(exc: BaseException) -> str:
    """One line for logs and ``ledger_blocked.detail``: the driver's own words, no SQL."""
    orig = getattr(exc, "orig", None) or exc
    code = sqlstate(exc) or getattr(orig, "sqlite_errorname", None)
    text = " ".join(str(orig).split())
    return f"{type(orig).__name__}{f' [{code}]' if code else ''}: {text}"[:2000]


__all__ = ["Permanent", "classify", "describe", "sqlstate"]
