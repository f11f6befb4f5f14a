"""side_approvals: the inbox beside the open gate

Who a side decision waits on — a break-glass override's retrospective review, or a pending
exception (waiver) — one row per (person, run, decision), rewritten by every applied registry
upsert like ``pending_approvals``. Empty at upgrade: each run's next registry sync fills it.

Revision ID: 3c9d51e0a7b2
Revises: 7a4b8bc6f71e
Create Date: 2026-12-04 09:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3c9d51e0a7b2"
down_revision: str | Sequence[str] | None = "7a4b8bc6f71e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "side_approvals",
        sa.Column("person_id", sa.String(length=200), nullable=False),
        sa.Column("workflow_id", sa.String(length=255), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("quorum", sa.Integer(), nullable=True),
        sa.Column("approvals", sa.JSON(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["use_cases.workflow_id"],
            name=op.f("fk_side_approvals_workflow_id_use_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("person_id", "workflow_id", "ref", name=op.f("pk_side_approvals")),
    )
    op.create_index(op.f("ix_side_approvals_workflow_id"), "side_approvals", ["workflow_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_side_approvals_workflow_id"), table_name="side_approvals")
    op.drop_table("side_approvals")
