"""What an alert's status sends (``services/api/routes/signals.py``), without a stack."""

from __future__ import annotations

from datetime import UTC, datetime

from services.api.routes.signals import _command_of, _update_id
from workflows.model import CommandName

STARTED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_a_firing_alert_reports_and_a_resolved_one_resolves() -> None:
    assert _command_of("firing") is CommandName.REPORT_INCIDENT
    assert _command_of("resolved") is CommandName.RESOLVE_INCIDENT


def test_an_alert_episode_s_update_id_is_spelled_as_before() -> None:
    """A delivery repeated across an upgrade is still the same Update (Temporal dedupes it)."""
    assert (
        _update_id(_command_of("firing"), "alertmanager", "fp1", STARTED)
        == "report_incident:signal:alertmanager:fp1:2026-12-01T09:00:00+00:00"
    )
    assert _update_id(_command_of("resolved"), "am", "fp1", STARTED).startswith(
        "resolve_incident:signal:am:fp1:"
    )
