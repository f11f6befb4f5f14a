"""The in-process API over the real dev server, worker and store (``tests/api``'s fixtures),
and the store on SQLite and PostgreSQL (``tests/store``'s) for the offline-audit attacks."""

from __future__ import annotations

from tests.api.conftest import api, api_settings
from tests.store.conftest import backend, db_url, engine, sessionmaker

__all__ = ["api", "api_settings", "backend", "db_url", "engine", "sessionmaker"]
