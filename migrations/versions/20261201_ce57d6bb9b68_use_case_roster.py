"""use-case roster: each run's pinned people (groups resolved), for need-to-know reads

Backfills every registered run from its ``run_started`` ledger entry (the roster the run
pinned at start); a run whose ledger holds no start gets the people its owners block names
directly, as the registry sync does.

Revision ID: ce57d6bb9b68
Revises: 78c7ff537265
Create Date: 2026-12-01 14:03:01+00:00
"""

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "ce57d6bb9b68"
down_revision: str | Sequence[str] | None = "78c7ff537265"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GROUP_PREFIX = "group:"
CHUNK = 5_000

_use_cases = sa.table(
    "use_cases", sa.column("workflow_id", sa.String), sa.column("owners", sa.JSON)
)
_ledger = sa.table(
    "ledger_entries",
    sa.column("workflow_id", sa.String),
    sa.column("seq", sa.BigInteger),
    sa.column("kind", sa.String),
    sa.column("payload", sa.JSON),
)
_roster = sa.table(
    "use_case_roster",
    sa.column("person_id", sa.String),
    sa.column("workflow_id", sa.String),
    sa.column("role", sa.String),
)


def _pairs(pinned: Any, owners: Any) -> set[tuple[str, str]]:
    """(person, role): the pinned roster when the ledger recorded one, else the owners block's
    directly named people (the same rule as ``services.store.registry.roster_of``)."""
    if isinstance(pinned, dict) and pinned:
        return {
            (p, str(role))
            for role, people in pinned.items()
            if isinstance(people, list)
            for p in people
            if isinstance(p, str) and p
        }
    pairs: set[tuple[str, str]] = set()
    for role, value in (owners if isinstance(owners, dict) else {}).items():
        for p in value if isinstance(value, list) else [value]:
            if isinstance(p, str) and p and not p.startswith(GROUP_PREFIX):
                pairs.add((p, str(role)))
    return pairs


def _backfill(connection: sa.Connection) -> Iterator[dict[str, str]]:
    started: dict[str, Any] = {}
    for workflow_id, payload in connection.execute(
        sa.select(_ledger.c.workflow_id, _ledger.c.payload)
        .where(_ledger.c.kind == "run_started")
        .order_by(_ledger.c.workflow_id, _ledger.c.seq.desc())
    ):
        # descending seq: the first entry of a run is the one left standing
        started[workflow_id] = payload.get("roster") if isinstance(payload, dict) else None
    registered = connection.execute(
        sa.select(_use_cases.c.workflow_id, _use_cases.c.owners)
    ).all()  # read whole before inserting on the same connection
    for workflow_id, owners in registered:
        for person, role in sorted(_pairs(started.get(workflow_id), owners)):
            yield {"person_id": person, "workflow_id": workflow_id, "role": role}


def upgrade() -> None:
    op.create_table(
        "use_case_roster",
        sa.Column("person_id", sa.String(length=200), nullable=False),
        sa.Column("workflow_id", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["use_cases.workflow_id"],
            name=op.f("fk_use_case_roster_workflow_id_use_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "person_id", "workflow_id", "role", name=op.f("pk_use_case_roster")
        ),
    )
    op.create_index(op.f("ix_use_case_roster_workflow_id"), "use_case_roster", ["workflow_id"])

    connection = op.get_bind()
    batch: list[dict[str, str]] = []
    for row in _backfill(connection):
        batch.append(row)
        if len(batch) >= CHUNK:
            connection.execute(sa.insert(_roster), batch)
            batch = []
    if batch:
        connection.execute(sa.insert(_roster), batch)


def downgrade() -> None:
    op.drop_index(op.f("ix_use_case_roster_workflow_id"), table_name="use_case_roster")
    op.drop_table("use_case_roster")
