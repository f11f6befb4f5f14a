"""initial schema: use-case registry (with people and inbox side tables), ledger, evidence

Revision ID: 78c7ff537265
Revises:
Create Date: 2026-11-28 15:47:43.168784+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "78c7ff537265"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only autoincrements an INTEGER PRIMARY KEY
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "use_cases",
        sa.Column("workflow_id", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("risk_tier", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("business_owner", sa.String(length=200), nullable=False),
        sa.Column("owners", sa.JSON(), nullable=False),
        sa.Column("pending_approvers", sa.JSON(), nullable=False),
        sa.Column("gate", sa.String(length=32), nullable=True),
        sa.Column("quorum", sa.Integer(), nullable=True),
        sa.Column("approvals", sa.JSON(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workflow_id", name=op.f("pk_use_cases")),
        sa.UniqueConstraint("key", name=op.f("uq_use_cases_key")),
    )
    op.create_index(
        op.f("ix_use_cases_updated_at_workflow_id"), "use_cases", ["updated_at", "workflow_id"]
    )
    op.create_index(
        op.f("ix_use_cases_stage_updated_at_workflow_id"),
        "use_cases",
        ["stage", "updated_at", "workflow_id"],
    )
    op.create_index(
        op.f("ix_use_cases_risk_tier_updated_at_workflow_id"),
        "use_cases",
        ["risk_tier", "updated_at", "workflow_id"],
    )

    op.create_table(
        "use_case_people",
        sa.Column("person_id", sa.String(length=200), nullable=False),
        sa.Column("workflow_id", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["use_cases.workflow_id"],
            name=op.f("fk_use_case_people_workflow_id_use_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "person_id", "workflow_id", "role", name=op.f("pk_use_case_people")
        ),
    )
    op.create_index(op.f("ix_use_case_people_workflow_id"), "use_case_people", ["workflow_id"])

    op.create_table(
        "pending_approvals",
        sa.Column("person_id", sa.String(length=200), nullable=False),
        sa.Column("workflow_id", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["use_cases.workflow_id"],
            name=op.f("fk_pending_approvals_workflow_id_use_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("person_id", "workflow_id", name=op.f("pk_pending_approvals")),
    )
    op.create_index(
        op.f("ix_pending_approvals_workflow_id"), "pending_approvals", ["workflow_id"]
    )

    op.create_table(
        "ledger_entries",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("workflow_id", sa.String(length=255), nullable=False),
        sa.Column("use_case_key", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("policy_version", sa.String(length=64), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint(
            "workflow_id", "event_id", name=op.f("uq_ledger_entries_workflow_id_event_id")
        ),
        sa.UniqueConstraint("workflow_id", "seq", name=op.f("uq_ledger_entries_workflow_id_seq")),
    )

    op.create_table(
        "evidence",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("workflow_id", sa.String(length=255), nullable=False),
        sa.Column("use_case_key", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("submitted_by", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("length(sha256) = 64", name=op.f("ck_evidence_sha256_length")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evidence")),
        sa.UniqueConstraint(
            "workflow_id",
            "event_id",
            "sha256",
            "name",
            name=op.f("uq_evidence_workflow_id_event_id_sha256_name"),
        ),
    )


def downgrade() -> None:
    op.drop_table("evidence")
    op.drop_table("ledger_entries")
    op.drop_index(op.f("ix_pending_approvals_workflow_id"), table_name="pending_approvals")
    op.drop_table("pending_approvals")
    op.drop_index(op.f("ix_use_case_people_workflow_id"), table_name="use_case_people")
    op.drop_table("use_case_people")
    op.drop_index(op.f("ix_use_cases_risk_tier_updated_at_workflow_id"), table_name="use_cases")
    op.drop_index(op.f("ix_use_cases_stage_updated_at_workflow_id"), table_name="use_cases")
    op.drop_index(op.f("ix_use_cases_updated_at_workflow_id"), table_name="use_cases")
    op.drop_table("use_cases")
