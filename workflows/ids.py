"""Workflow ids: how a use case's run and its change requests' runs are named, in one place.

A use case keyed ``kyc`` runs as ``usecase-kyc``; its n-th change request as
``usecase-kyc-change-n`` (change id ``change-n``). Everything that builds or reads such an id —
the API, the Slack bot, the CLI, the store, metrics — goes through these functions.

The two kinds of id live in disjoint spaces, because a key may take neither form that would make
its run id another run's: a key ending in ``-change-<digits>`` (``victim-change-1`` would run as
``usecase-victim-change-1``, the id of ``victim``'s first change) or one starting with
``usecase-`` (``usecase-x`` would run as ``usecase-usecase-x``, while a path naming
``usecase-x`` means the use case keyed ``x``). So every id parses one way only: one that ends in
``-change-<n>`` is a change request's run and everything before that is its use case's run.
"""

from __future__ import annotations

import re
from typing import Final

USE_CASE_PREFIX: Final = "usecase-"
CHANGE_INFIX: Final = "-change-"
USE_CASE_KEY_MIN: Final = 3
USE_CASE_KEY_MAX: Final = 63
# a slug: lower-case letters, digits and dashes, starting with a letter or digit (the reserved
# forms below are refused by ``key_refusal``: a JSON-schema pattern has no look-around)
USE_CASE_KEY_PATTERN: Final = (
    rf"^[a-z0-9][a-z0-9-]{{{USE_CASE_KEY_MIN - 1},{USE_CASE_KEY_MAX - 1}}}$"
)
CHANGE_ID = re.compile(r"^change-[1-9][0-9]{0,5}$")
_KEY = re.compile(USE_CASE_KEY_PATTERN)
# any number, not only a valid change's: ``x-change-0`` is no change id today, but reserving the
# whole form keeps the rule one sentence long
_CHANGE_SUFFIX = re.compile(r"-change-[0-9]+$")
_CHANGE_RUN = re.compile(r"^(?P<parent>usecase-.+)-(?P<change>change-[1-9][0-9]{0,5})$")
_RUN_ID = re.compile(r"^usecase-(?P<key>[a-z0-9][a-z0-9-]*?)(?:-(?P<change>change-[1-9][0-9]*))?$")


def key_refusal(key: str) -> str | None:
    """Why ``key`` cannot be a use case's key, or None when it can."""
    if not _KEY.match(key):
        return (
            f"must be {USE_CASE_KEY_MIN}-{USE_CASE_KEY_MAX} lower-case letters, digits and "
            "dashes, starting with a letter or digit"
        )
    if key.startswith(USE_CASE_PREFIX):
        return (
            f"must not start with '{USE_CASE_PREFIX}': '{USE_CASE_PREFIX}<key>' is the id of "
            "the use case keyed '<key>'"
        )
    if _CHANGE_SUFFIX.search(key):
        return (
            "must not end with '-change-<number>': '<key>-change-<n>' is the run of a change "
            "request of the use case keyed '<key>'"
        )
    return None


def check_use_case_key(key: str) -> str:
    """``key`` when it may be a use case's key, else ValueError saying why (a pydantic
    ``AfterValidator``)."""
    reason = key_refusal(key)
    if reason is not None:
        raise ValueError(reason)
    return key


def use_case_workflow_id(id_or_key: str) -> str:
    """``usecase-<key>`` for a key; an id already in that form is returned as it is."""
    return id_or_key if id_or_key.startswith(USE_CASE_PREFIX) else USE_CASE_PREFIX + id_or_key


def use_case_run_id(id_or_key: str) -> str | None:
    """The run of the use case a path names by id (``usecase-<key>``) or by key, or None when
    it names no use case: a change request's run, or something no key can be."""
    key = id_or_key.removeprefix(USE_CASE_PREFIX)
    return USE_CASE_PREFIX + key if key_refusal(key) is None else None


def change_id(number: int) -> str:
    return f"change-{number}"


def change_workflow_id(parent_workflow_id: str, change: str) -> str:
    """The run of change ``change`` (``change-n``) of the use case run ``parent_workflow_id``."""
    return f"{parent_workflow_id}-{change}"


def parent_workflow_id(workflow_id: str) -> str | None:
    """The use case run whose change request ``workflow_id`` is; None for any other id (a use
    case's own run has no parent)."""
    match = _CHANGE_RUN.match(workflow_id)
    return match.group("parent") if match else None


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
    "CHANGE_INFIX",
    "USE_CASE_KEY_MAX",
    "USE_CASE_KEY_MIN",
    "USE_CASE_KEY_PATTERN",
    "USE_CASE_PREFIX",
    "change_id",
    "change_workflow_id",
    "check_use_case_key",
    "is_change_id",
    "key_of",
    "key_refusal",
    "parent_workflow_id",
    "run_key",
    "use_case_run_id",
    "use_case_workflow_id",
]
