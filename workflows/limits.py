"""Field lengths: the one definition the API's models, the workflow and the SQL columns share.

A value the API accepts must fit every column it ends up in, including the values the workflow
derives from it (a change request's run is keyed ``<key>/change-<n>`` and titled
``<title> — change-<n>: <summary…>``). So the columns are sized from these constants, never
from literals of their own, and ``tests/store/test_limits.py`` checks every accepted field
against the tables. Plain constants only: the workflow sandbox imports this module.
"""

from __future__ import annotations

from typing import Final

from workflows.ids import (
    CHANGE_INFIX,
    USE_CASE_KEY_MAX,
    USE_CASE_KEY_MIN,
    USE_CASE_KEY_PATTERN,
    USE_CASE_PREFIX,
)

# ------------------------------------------------------------------ what the API accepts

# A key's length and slug pattern (USE_CASE_KEY_MIN, USE_CASE_KEY_MAX, USE_CASE_KEY_PATTERN) are
# defined with the ids it becomes part of (``workflows.ids``, which also refuses the forms that
# would alias another run's id) and exported from here with the other fields' limits.
TITLE_MAX: Final = 200
# summaries, comments, reasons: free text a person writes
TEXT_MAX: Final = 4000
PERSON_ID_MAX: Final = 64  # a directory person id (also what every command's actor is)
GROUP_NAME_MAX: Final = 64  # a directory group name
GROUP_REF_PREFIX: Final = "group:"
# an owner or deputy entry: a person id or ``group:NAME``
PERSON_REF_MAX: Final = max(PERSON_ID_MAX, len(GROUP_REF_PREFIX) + GROUP_NAME_MAX)
EVIDENCE_KIND_MAX: Final = 64
EVIDENCE_NAME_MAX: Final = 200
URI_MAX: Final = 2000
SHA256_HEX_LENGTH: Final = 64
SLACK_CHANNEL_MAX: Final = 80
POLICY_VERSION_MAX: Final = 64

# ------------------------------------------------------------------ what the workflow derives

CHANGE_NUMBER_DIGITS: Final = 6  # ``workflows.ids.CHANGE_ID``: change-1 … change-999999
CHANGE_ID_MAX: Final = len("change-") + CHANGE_NUMBER_DIGITS
CHANGE_KEY_SEPARATOR: Final = "/"  # a change's run is keyed ``<key>/change-<n>``
# how much of a change's summary its run's title repeats
CHANGE_SUMMARY_IN_TITLE: Final = 80
CHANGE_TITLE_SEPARATOR: Final = " — "

# the key a run records: a use case's key, or ``<key>/change-<n>`` for a change's run
RUN_KEY_MAX: Final = USE_CASE_KEY_MAX + len(CHANGE_KEY_SEPARATOR) + CHANGE_ID_MAX
# ``usecase-<key>`` or ``usecase-<key>-change-<n>``
WORKFLOW_ID_MAX: Final = (
    len(USE_CASE_PREFIX) + USE_CASE_KEY_MAX + len(CHANGE_INFIX) + CHANGE_NUMBER_DIGITS
)
# ``<title> — change-<n>: <first CHANGE_SUMMARY_IN_TITLE characters of the summary>``
RUN_TITLE_MAX: Final = (
    TITLE_MAX + len(CHANGE_TITLE_SEPARATOR) + CHANGE_ID_MAX + len(": ") + CHANGE_SUMMARY_IN_TITLE
)
# the actor a recorded fact names: a person id, ``system``, or the unverified actor a refused
# Signal claimed (which the workflow must cut to this length before recording it)
ACTOR_MAX: Final = 200


def change_run_key(key: str, change_id: str) -> str:
    """The key a change request's run records (``kyc/change-2``)."""
    return f"{key}{CHANGE_KEY_SEPARATOR}{change_id}"


def change_run_title(title: str, change_id: str, summary: str) -> str:
    """The title a change request's run carries: its use case's, the change and its gist."""
    gist = summary[:CHANGE_SUMMARY_IN_TITLE]
    return f"{title}{CHANGE_TITLE_SEPARATOR}{change_id}: {gist}"


__all__ = [
    "ACTOR_MAX",
    "CHANGE_ID_MAX",
    "CHANGE_KEY_SEPARATOR",
    "CHANGE_NUMBER_DIGITS",
    "CHANGE_SUMMARY_IN_TITLE",
    "CHANGE_TITLE_SEPARATOR",
    "EVIDENCE_KIND_MAX",
    "EVIDENCE_NAME_MAX",
    "GROUP_NAME_MAX",
    "GROUP_REF_PREFIX",
    "PERSON_ID_MAX",
    "PERSON_REF_MAX",
    "POLICY_VERSION_MAX",
    "RUN_KEY_MAX",
    "RUN_TITLE_MAX",
    "SHA256_HEX_LENGTH",
    "SLACK_CHANNEL_MAX",
    "TEXT_MAX",
    "TITLE_MAX",
    "URI_MAX",
    "USE_CASE_KEY_MAX",
    "USE_CASE_KEY_MIN",
    "USE_CASE_KEY_PATTERN",
    "WORKFLOW_ID_MAX",
    "change_run_key",
    "change_run_title",
]
