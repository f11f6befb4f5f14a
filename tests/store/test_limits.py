"""Every value the API accepts fits every column it ends up in (``workflows.limits``).

PostgreSQL refuses a value longer than its varchar column and no retry changes that, so a
field the API accepts longer than its column blocks the run's ledger. Each row below names an
accepted field, what the workflow adds to it on its way to the store (a change request's run
is keyed ``<key>/change-<n>`` and titled ``<title> — change-<n>: <summary…>``), and the
columns it lands in. The accepted length is measured on the models the API validates with,
not read from the constants, so a model that drifts from ``workflows.limits`` fails here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import String

from services.store.models import Base
from workflows import limits
from workflows.ids import (
    CHANGE_INFIX,
    USE_CASE_PREFIX,
    change_workflow_id,
    is_change_id,
    use_case_workflow_id,
)
from workflows.model import (
    Channel,
    EventKind,
    Evidence,
    Gate,
    GateDecision,
    OwnersIn,
    RiskTier,
    Role,
    Stage,
    UseCaseCreate,
)
from workflows.policy import Person, PolicyDocument

LONGEST_CHANGE_ID = "change-" + "9" * limits.CHANGE_NUMBER_DIGITS
CHANGE_KEY_SUFFIX = len(limits.change_run_key("", LONGEST_CHANGE_ID))
CHANGE_TITLE_EXTRA = len(limits.change_run_title("", LONGEST_CHANGE_ID, "s" * 10_000))
RUN_ID_EXTRA = len(USE_CASE_PREFIX) + len(CHANGE_INFIX) + limits.CHANGE_NUMBER_DIGITS

WORKFLOW_ID_COLUMNS = (
    "use_cases.workflow_id",
    "use_case_people.workflow_id",
    "pending_approvals.workflow_id",
    "ledger_entries.workflow_id",
    "evidence.workflow_id",
    "ledger_blocked.workflow_id",
)
ACTOR_COLUMNS = ("ledger_entries.actor", "evidence.submitted_by", "pending_approvals.person_id")
PEOPLE_COLUMNS = ("use_case_people.person_id",)


@dataclass(frozen=True)
class Field:
    model: type[BaseModel]
    name: str
    limit: int  # what workflows.limits says the API accepts
    columns: tuple[str, ...]
    extra: int = 0  # what the workflow adds before storing it
    is_list: bool = False

    @property
    def id(self) -> str:
        return f"{self.model.__name__}.{self.name}"


FIELDS = [
    Field(
        UseCaseCreate,
        "key",
        limits.USE_CASE_KEY_MAX,
        ("use_cases.key", "ledger_entries.use_case_key", "evidence.use_case_key"),
        extra=CHANGE_KEY_SUFFIX,
    ),
    Field(UseCaseCreate, "key", limits.USE_CASE_KEY_MAX, WORKFLOW_ID_COLUMNS, extra=RUN_ID_EXTRA),
    Field(UseCaseCreate, "title", limits.TITLE_MAX, ("use_cases.title",), CHANGE_TITLE_EXTRA),
    *(
        Field(OwnersIn, role, limits.PERSON_ID_MAX, PEOPLE_COLUMNS + ACTOR_COLUMNS)
        for role in ("technical_owner", "operations_owner", "escalation_owner")
    ),
    Field(
        OwnersIn,
        "business_owner",
        limits.PERSON_ID_MAX,
        ("use_cases.business_owner", *PEOPLE_COLUMNS, *ACTOR_COLUMNS),
    ),
    Field(OwnersIn, "stop_authority", limits.PERSON_ID_MAX, PEOPLE_COLUMNS, is_list=True),
    # every command's actor is a directory person (API, Slack, console)
    Field(Person, "id", limits.PERSON_ID_MAX, PEOPLE_COLUMNS + ACTOR_COLUMNS),
    Field(Evidence, "kind", limits.EVIDENCE_KIND_MAX, ("evidence.kind",)),
    Field(Evidence, "name", limits.EVIDENCE_NAME_MAX, ("evidence.name",)),
    Field(Evidence, "uri", limits.URI_MAX, ("evidence.uri",)),
    Field(PolicyDocument, "version", limits.POLICY_VERSION_MAX, ("ledger_entries.policy_version",)),
]

# Accepted today without any bound (workflows/model.py and workflows/policy.py are the lead's):
# each stores into a column that a long enough value overflows. Strict: bounding one makes its
# case pass, and then its entry belongs in FIELDS above.
UNBOUNDED = [
    Field(OwnersIn, "risk_approvers", limits.PERSON_REF_MAX, PEOPLE_COLUMNS, is_list=True),
    # the actor a Signal sent around the API claims is recorded as a refused attempt
    Field(GateDecision, "actor", limits.ACTOR_MAX, ("ledger_entries.actor",)),
    Field(Person, "groups", limits.GROUP_NAME_MAX, PEOPLE_COLUMNS, is_list=True),
]

ENUMS: list[tuple[type[StrEnum], tuple[str, ...]]] = [
    (EventKind, ("ledger_entries.kind",)),
    (Channel, ("ledger_entries.channel",)),
    (Stage, ("use_cases.stage", "evidence.scope")),
    (Gate, ("use_cases.gate", "evidence.scope")),
    (RiskTier, ("use_cases.risk_tier",)),
    (Role, ("use_case_people.role",)),
]


def column_length(qualified: str) -> int | None:
    """The column's varchar length; None for an unbounded type (TEXT, JSON)."""
    table, column = qualified.split(".")
    kind = Base.metadata.tables[table].c[column].type
    return kind.length if isinstance(kind, String) else None


def accepts(field: Field, length: int) -> bool:
    info = field.model.model_fields[field.name]
    annotated: Any = (
        Annotated.__class_getitem__((info.annotation, *info.metadata))  # type: ignore[attr-defined]
        if info.metadata
        else info.annotation
    )
    # letters only: valid for every pattern here (slugs, person ids, evidence kinds); a URI
    # needs its scheme
    text = ("s3://" + "a" * length)[:length] if field.name == "uri" else "a" * length
    try:
        TypeAdapter(annotated).validate_python([text] if field.is_list else text)
    except ValidationError:
        return False
    return True


def check(field: Field) -> None:
    assert accepts(field, field.limit), f"{field.id} refuses {field.limit} characters"
    assert not accepts(field, field.limit + 1), (
        f"{field.id} accepts more than workflows.limits says ({field.limit})"
    )
    for column in field.columns:
        room = column_length(column)
        stored = field.limit + field.extra
        assert room is None or stored <= room, (
            f"{field.id}: up to {stored} characters reach {column}, which holds {room}"
        )


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f"{f.id}->{f.columns[0]}")
def test_every_accepted_field_fits_its_columns(field: Field) -> None:
    check(field)


@pytest.mark.parametrize("field", UNBOUNDED, ids=lambda f: f.id)
@pytest.mark.xfail(strict=True, reason="unbounded in workflows/ (see the lead's to-do list)")
def test_fields_the_workflow_package_must_still_bound(field: Field) -> None:
    check(field)


@pytest.mark.parametrize(("enum", "columns"), ENUMS, ids=lambda v: getattr(v, "__name__", ""))
def test_every_enum_value_fits_its_columns(enum: type[StrEnum], columns: tuple[str, ...]) -> None:
    longest = max(len(member.value) for member in enum)
    for column in columns:
        room = column_length(column)
        assert room is None or longest <= room, f"{enum.__name__} ({longest}) > {column}"


def test_the_derived_limits_are_what_the_ids_module_builds() -> None:
    key = "k" * limits.USE_CASE_KEY_MAX
    run = change_workflow_id(use_case_workflow_id(key), LONGEST_CHANGE_ID)
    assert len(run) == limits.WORKFLOW_ID_MAX
    assert is_change_id(LONGEST_CHANGE_ID)
    assert not is_change_id(LONGEST_CHANGE_ID + "9")
    assert len(limits.change_run_key(key, LONGEST_CHANGE_ID)) == limits.RUN_KEY_MAX
    title = limits.change_run_title("t" * limits.TITLE_MAX, LONGEST_CHANGE_ID, "s" * 10_000)
    assert len(title) == limits.RUN_TITLE_MAX
    assert re.fullmatch(limits.USE_CASE_KEY_PATTERN, key)
    assert not re.fullmatch(limits.USE_CASE_KEY_PATTERN, key + "k")
    assert not re.fullmatch(limits.USE_CASE_KEY_PATTERN, "k" * (limits.USE_CASE_KEY_MIN - 1))
