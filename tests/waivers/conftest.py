"""The API in-process against the real dev server, worker and SQLite store (tests/api's), and
the API served by uvicorn for the ``releasegate`` CLI (tests/cli's)."""

from tests.api.conftest import api, api_settings
from tests.cli.conftest import api_url, cli

__all__ = ["api", "api_settings", "api_url", "cli"]
