"""transparency_log: the ledger as an RFC 6962 Merkle tree, with signed checkpoints

``ledger_leaves`` gives every ledger entry a leaf index in append order, ``ledger_run_heads``
each run's newest leaf, ``ledger_log`` the tree's size, frontier and last checkpoint (its row
is the lock appends take their indexes under), ``ledger_checkpoints`` a copy of what was
signed. Existing entries are backfilled in the order they were appended (``ledger_entries.id``);
the first checkpoint is signed by the worker after the upgrade.

Revision ID: 7a4b8bc6f71e
Revises: e4c38e8e21fd
Create Date: 2026-12-03 09:00:00+00:00
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7a4b8bc6f71e"
down_revision: str | Sequence[str] | None = "e4c38e8e21fd"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL_CHUNK = 5000


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _backfill(leaves: sa.Table, heads: sa.Table, log: sa.Table) -> None:
    """Leaves for the entries written before this revision (frozen copies of the recipes in
    services.tlog: leaf = SHA-256(0x00 || entry hash), frontier of perfect subtrees)."""
    connection = op.get_bind()
    rows = connection.execute(
        sa.text("SELECT workflow_id, seq, hash FROM ledger_entries ORDER BY id")
    )
    frontier: list[bytes] = []
    size = 0
    newest: dict[str, dict[str, object]] = {}
    chunk: list[dict[str, object]] = []
    for workflow_id, seq, entry_hash in rows:
        leaf = hashlib.sha256(b"\x00" + bytes.fromhex(entry_hash)).digest()
        chunk.append(
            {"leaf_index": size, "workflow_id": workflow_id, "seq": seq, "leaf_hash": leaf}
        )
        newest[workflow_id] = {
            "workflow_id": workflow_id,
            "seq": seq,
            "leaf_index": size,
            "leaf_hash": leaf,
        }
        node, carry = leaf, size
        while carry & 1:
            node = _node(frontier.pop(), node)
            carry >>= 1
        frontier.append(node)
        size += 1
        if len(chunk) >= BACKFILL_CHUNK:
            op.bulk_insert(leaves, chunk)
            chunk = []
    if chunk:
        op.bulk_insert(leaves, chunk)
    if newest:
        op.bulk_insert(heads, list(newest.values()))
    op.bulk_insert(log, [{"id": 1, "size": size, "frontier": [n.hex() for n in frontier]}])


def upgrade() -> None:
    leaves = op.create_table(
        "ledger_leaves",
        sa.Column("leaf_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("workflow_id", sa.String(length=255), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("leaf_index", name=op.f("pk_ledger_leaves")),
        sa.UniqueConstraint("workflow_id", "seq", name=op.f("uq_ledger_leaves_workflow_id_seq")),
    )
    heads = op.create_table(
        "ledger_run_heads",
        sa.Column("workflow_id", sa.String(length=255), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("leaf_index", sa.BigInteger(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("workflow_id", name=op.f("pk_ledger_run_heads")),
    )
    log = op.create_table(
        "ledger_log",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("frontier", sa.JSON(), nullable=False),
        sa.Column("checkpoint_size", sa.BigInteger(), nullable=True),
        sa.Column("checkpoint_root", sa.String(length=64), nullable=True),
        sa.Column("checkpoint_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_log")),
    )
    op.create_table(
        "ledger_checkpoints",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.String(length=64), nullable=False),
        sa.Column("old_size", sa.BigInteger(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_checkpoints")),
        sa.UniqueConstraint("size", "root", name=op.f("uq_ledger_checkpoints_size_root")),
    )
    _backfill(leaves, heads, log)


def downgrade() -> None:
    op.drop_table("ledger_checkpoints")
    op.drop_table("ledger_log")
    op.drop_table("ledger_run_heads")
    op.drop_table("ledger_leaves")
