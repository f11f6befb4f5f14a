"""The in-process API over the real dev server, worker and store (``tests/api``'s fixtures)."""

from __future__ import annotations

from tests.api.conftest import api, api_settings

__all__ = ["api", "api_settings"]
