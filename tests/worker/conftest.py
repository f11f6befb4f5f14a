"""The worker's store activities run on the same two backends as the store's own tests.

The database fixtures are the store suite's (one definition; pytest finds fixtures only in
conftest modules on a test's path, hence the import).
"""

from __future__ import annotations

from tests.store.conftest import backend, db_url, engine, sessionmaker

__all__ = ["backend", "db_url", "engine", "sessionmaker"]
