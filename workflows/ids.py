"""Workflow ids: how a use case's run and its change requests' runs are named, in one place.

A use case keyed ``kyc`` runs as ``usecase-kyc``; its n-th change request as
``usecase-kyc-change-n`` (change id ``change-n``). Everything that builds or reads such an id —
the API, the Slack bot, the CLI, the store, metrics — goes through these functions.
"""

from __future__ import annotations

import re

USE_CASE_PREFIX = "usecase-"
CHANGE_INFIX = "-change-"
CHANGE_ID = re.compile(r"^change-[1-9][0-9]{0,5}$")
_RUN_ID = re.compile(r"^usecase-(?P<key>[a-z0-9][a-z0-9-]*?)(?:-(?P<change>change-[1-9][0-9]*))?$")


def use_case_workflow_id(id_or_key: str) -> str:
    """``usecase-<key>`` for a key; an id already in that form is returned as it is."""
    return id_or_key if id_or_key.startswith(USE_CASE_PREFIX) else USE_CASE_PREFIX + id_or_key


def change_id(number: int) -> str:
    return f"change-{number}"


def change_workflow_id(parent_workflow_id: str, change: str) -> str:
    """The run of change ``change`` (``change-n``) of the use case run ``parent_workflow_id``."""
    return f"{parent_workflow_id}-{change}"


def is_change_id(value: str) -> bool:
    return CHANGE_ID.match(value) is not None


def key_of(workflow_id: str) -> str:
    """The use case key a run id names (a change request's run names its use case's key)."""
    match = _RUN_ID.match(workflow_id)
    if match is None:
        return workflow_id.removeprefix(USE_CASE_PREFIX)
    return match.group("key")


def run_key(workflow_id: str) -> str | None:
    """Like ``key_of``, but None when ``workflow_id`` is no run id at all (log context)."""
    match = _RUN_ID.match(workflow_id)
    return match.group("key") if match else None


__all__ = [
    "CHANGE_ID",
    "USE_CASE_PREFIX",
    "change_id",
    "change_workflow_id",
    "is_change_id",
    "key_of",
    "run_key",
    "use_case_workflow_id",
]
