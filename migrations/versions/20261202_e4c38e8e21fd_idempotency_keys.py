"""idempotency_keys: each Idempotency-Key scope bound to the request it was first sent with

The command layer refuses a key reused with another request (422 ``idempotency-key-reused``)
instead of answering it with the first request's outcome. Nothing to backfill: keys used
before this revision are simply new. Rows older than 30 days may be pruned
(``services.store.idempotency``).

Revision ID: e4c38e8e21fd
Revises: 5b0d7e2a91c4
Create Date: 2026-12-02 09:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e4c38e8e21fd"
down_revision: str | Sequence[str] | None = "5b0d7e2a91c4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# frozen copy of services.store.models.IDEMPOTENCY_SCOPE_MAX at this revision
SCOPE_MAX = 298


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(length=SCOPE_MAX), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(
        op.f("ix_idempotency_keys_created_at"), "idempotency_keys", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_idempotency_keys_created_at"), table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
