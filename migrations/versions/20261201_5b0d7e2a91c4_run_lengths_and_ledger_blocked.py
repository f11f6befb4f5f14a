"""run lengths from workflows.limits; ledger_blocked

A change request's run records the key ``<key>/change-<n>`` (up to 77 characters) and the title
``<title> — change-<n>: <summary…>`` (up to 298), which the key (64) and title (200) columns
could not hold: PostgreSQL refused every ledger entry and read-model row of such a run. The
columns now take what ``workflows.limits`` says a run can carry. Widening a varchar is a
catalogue change on PostgreSQL (no table rewrite); SQLite rebuilds the tables in batch mode.

``ledger_blocked`` records runs whose ledger the store refused for good, so the API can say so.

Downgrade narrows the columns again: it fails on PostgreSQL while a longer value is stored,
which is the point (it would otherwise cut the ledger's data).

Revision ID: 5b0d7e2a91c4
Revises: ce57d6bb9b68
Create Date: 2026-12-01 15:10:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b0d7e2a91c4"
down_revision: str | Sequence[str] | None = "ce57d6bb9b68"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# frozen copies of workflows.limits at this revision (revisions never import application code)
RUN_KEY_MAX = 77
RUN_TITLE_MAX = 298
OLD_KEY = 64
OLD_TITLE = 200

# (table, column, old length, new length)
_WIDENED = (
    ("use_cases", "key", OLD_KEY, RUN_KEY_MAX),
    ("use_cases", "title", OLD_TITLE, RUN_TITLE_MAX),
    ("ledger_entries", "use_case_key", OLD_KEY, RUN_KEY_MAX),
    ("evidence", "use_case_key", OLD_KEY, RUN_KEY_MAX),
)


def _resize(to_new: bool) -> None:
    for table in dict.fromkeys(t for t, *_ in _WIDENED):
        with op.batch_alter_table(table) as batch:
            for name, column, old, new in _WIDENED:
                if name != table:
                    continue
                batch.alter_column(
                    column,
                    existing_type=sa.String(length=old if to_new else new),
                    type_=sa.String(length=new if to_new else old),
                    existing_nullable=False,
                )


def upgrade() -> None:
    _resize(to_new=True)
    op.create_table(
        "ledger_blocked",
        sa.Column("workflow_id", sa.String(length=255), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("workflow_id", name=op.f("pk_ledger_blocked")),
    )


def downgrade() -> None:
    op.drop_table("ledger_blocked")
    _resize(to_new=False)
