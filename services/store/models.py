"""Tables of the ReleaseGate store (SQLAlchemy 2 declarative, ``Mapped[]`` columns).

The same models serve SQLite (embedded mode) and PostgreSQL (production); everything here is
chosen to behave identically on both: portable JSON, UTC-aware timestamps, plain b-tree
indexes, and side tables instead of JSON-containment queries for "who is involved".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from workflows import limits

# Explicit names let Alembic drop/alter constraints (and SQLite batch mode recreate tables)
# without guessing the names each backend would invent.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

HASH_HEX_LENGTH = limits.SHA256_HEX_LENGTH


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz``; SQLite has no timezone support, so values are stored
    as naive UTC text (SQLAlchemy's fixed-width format, which also sorts correctly as text)
    and UTC is re-attached on the way out. Naive inputs are taken to be UTC, the convention
    of the whole project.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
    }


# --------------------------------------------------------------------------- registry


class UseCase(Base):
    """Read model of one run, kept in step with the workflow by the ``registry.sync`` activity.

    ``event_id`` is the workflow's event counter at the time of the snapshot and acts as the
    row version: an upsert only applies when it is newer, so retried or reordered activity
    attempts can never roll the row back.
    """

    __tablename__ = "use_cases"

    workflow_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    # a change request's run records ``<key>/change-<n>`` and a longer title (workflows.limits)
    key: Mapped[str] = mapped_column(String(limits.RUN_KEY_MAX), unique=True)
    title: Mapped[str] = mapped_column(String(limits.RUN_TITLE_MAX))
    risk_tier: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(String(32))
    closed: Mapped[bool] = mapped_column(Boolean)
    business_owner: Mapped[str] = mapped_column(String(limits.ACTOR_MAX))
    owners: Mapped[dict[str, Any]]
    pending_approvers: Mapped[list[str]]
    gate: Mapped[str | None] = mapped_column(String(32))
    quorum: Mapped[int | None] = mapped_column(Integer)
    approvals: Mapped[list[str]]
    due_at: Mapped[datetime | None]
    round: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]
    event_id: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        # Listing is keyset-paginated on (updated_at DESC, workflow_id DESC); a plain ascending
        # index serves it by a backward scan on both backends. One index per equality filter
        # keeps "stage = X ORDER BY updated_at" an index range walk plus LIMIT.
        Index(None, "updated_at", "workflow_id"),
        Index(None, "stage", "updated_at", "workflow_id"),
        Index(None, "risk_tier", "updated_at", "workflow_id"),
    )


class UseCasePerson(Base):
    """Everyone named in a run's owners, one row per (person, role), for the ``owner=`` filter.

    Rewritten with every applied registry upsert. Entries of list roles may be group
    references (``group:risk-committee``) exactly as the owners block holds them.
    """

    __tablename__ = "use_case_people"

    person_id: Mapped[str] = mapped_column(String(limits.ACTOR_MAX), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("use_cases.workflow_id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(32), primary_key=True)

    # the rewrite deletes by workflow_id, which the (person_id, ...) primary key cannot serve
    __table_args__ = (Index(None, "workflow_id"),)


class RosterEntry(Base):
    """The people a run pinned at start, one row per (person, role), groups resolved: with the
    policy's reader groups, exactly who may read the run (``workflows.policy.may_read``).

    Copied from the run's ``run_started`` ledger entry by every applied registry upsert, so
    listing filters by visibility in SQL instead of resolving groups per request.
    """

    __tablename__ = "use_case_roster"

    person_id: Mapped[str] = mapped_column(String(limits.ACTOR_MAX), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("use_cases.workflow_id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(32), primary_key=True)

    __table_args__ = (Index(None, "workflow_id"),)


class PendingApproval(Base):
    """The approvals inbox: who an open gate is waiting on, rewritten with every applied upsert."""

    __tablename__ = "pending_approvals"

    person_id: Mapped[str] = mapped_column(String(limits.ACTOR_MAX), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("use_cases.workflow_id", ondelete="CASCADE"), primary_key=True
    )

    __table_args__ = (Index(None, "workflow_id"),)


class SideApproval(Base):
    """The inbox beside the open gate: who a side decision waits on — a break-glass override's
    retrospective review or a pending exception — rewritten with every applied upsert."""

    __tablename__ = "side_approvals"

    person_id: Mapped[str] = mapped_column(String(limits.ACTOR_MAX), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("use_cases.workflow_id", ondelete="CASCADE"), primary_key=True
    )
    # "override_review", or the id of a pending exception
    ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    quorum: Mapped[int | None] = mapped_column(Integer)
    approvals: Mapped[list[str]]
    due_at: Mapped[datetime | None]
    round: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index(None, "workflow_id"),)


# --------------------------------------------------------------------------- ledger


class LedgerEntry(Base):
    """One link of a run's hash chain. Append-only; ``seq`` equals the workflow's event_id."""

    __tablename__ = "ledger_entries"

    # BigInteger on PostgreSQL, but SQLite only autoincrements an INTEGER PRIMARY KEY
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    workflow_id: Mapped[str] = mapped_column(String(255))
    use_case_key: Mapped[str] = mapped_column(String(limits.RUN_KEY_MAX))
    event_id: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(limits.ACTOR_MAX))
    channel: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]]
    policy_version: Mapped[str] = mapped_column(String(limits.POLICY_VERSION_MAX))
    prev_hash: Mapped[str] = mapped_column(String(HASH_HEX_LENGTH))
    hash: Mapped[str] = mapped_column(String(HASH_HEX_LENGTH))

    __table_args__ = (
        # the idempotency key of the ledger.append activity
        UniqueConstraint("workflow_id", "event_id"),
        # one link per position; also the index verify() and entries() walk
        UniqueConstraint("workflow_id", "seq"),
    )


class EvidenceItem(Base):
    """An evidence item as submitted, tied to the ledger entry that introduced it."""

    __tablename__ = "evidence"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    workflow_id: Mapped[str] = mapped_column(String(255))
    use_case_key: Mapped[str] = mapped_column(String(limits.RUN_KEY_MAX))
    scope: Mapped[str] = mapped_column(String(64))
    round: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(limits.EVIDENCE_KIND_MAX))
    name: Mapped[str] = mapped_column(String(limits.EVIDENCE_NAME_MAX))
    uri: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(HASH_HEX_LENGTH))
    submitted_by: Mapped[str] = mapped_column(String(limits.ACTOR_MAX))
    at: Mapped[datetime]
    event_id: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint(f"length(sha256) = {HASH_HEX_LENGTH}", name="sha256_length"),
        # leading workflow_id also serves "evidence of this run" lookups
        UniqueConstraint("workflow_id", "event_id", "sha256", "name"),
    )


class LedgerLeaf(Base):
    """A ledger entry's leaf in the transparency log (services/tlog): the RFC 6962 Merkle tree
    over every entry of every run, in append order. ``leaf_index`` is assigned in the entry's
    own transaction under the ``ledger_log`` lock, so indexes are contiguous and in commit
    order. Kept apart from ``ledger_entries`` on purpose: a deleted entry leaves its leaf
    behind, and the evidence pack names the seq the log holds but the chain lost."""

    __tablename__ = "ledger_leaves"

    leaf_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    workflow_id: Mapped[str] = mapped_column(String(255))
    seq: Mapped[int] = mapped_column(BigInteger)
    # SHA-256(0x00 || entry hash bytes)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)

    # one leaf per entry; also the index a run's leaves are read by
    __table_args__ = (UniqueConstraint("workflow_id", "seq"),)


class LedgerRunHead(Base):
    """Each run's newest leaf, kept with every append: what a checkpoint's run-heads tree
    commits to, so an auditor can tell a run's chain is complete."""

    __tablename__ = "ledger_run_heads"

    workflow_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    leaf_index: Mapped[int] = mapped_column(BigInteger)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)


class LedgerLog(Base):
    """The transparency log's one state row (``id`` 1): its size and frontier, and the last
    checkpoint signed. Appends lock it (UPDATE … RETURNING) to take their leaf indexes: the
    single serialization point of leaf assignment on PostgreSQL and SQLite alike."""

    __tablename__ = "ledger_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)
    # the perfect subtrees' roots, largest first (hex): the root in O(log n)
    frontier: Mapped[list[str]]
    checkpoint_size: Mapped[int | None] = mapped_column(BigInteger)
    checkpoint_root: Mapped[str | None] = mapped_column(String(HASH_HEX_LENGTH))
    checkpoint_at: Mapped[datetime | None]


class LedgerCheckpoint(Base):
    """A signed checkpoint, as the worker signed it (a copy: the authoritative ones are in
    the checkpoint directory and with the witness, out of this database's reach)."""

    __tablename__ = "ledger_checkpoints"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    size: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[str] = mapped_column(String(HASH_HEX_LENGTH))
    # the checkpoint this one extends (its consistency proof starts there)
    old_size: Mapped[int | None] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("size", "root"),)


class LedgerBlock(Base):
    """A run whose ledger the store refused for good: a value no retry can store (too long,
    invalid, against a constraint). Written by the worker when it gives up on a batch, read
    by the API (its ledger routes answer 503 ``ledger-blocked`` instead of a chain that
    silently stops), removed by the next append that succeeds for the run."""

    __tablename__ = "ledger_blocked"

    workflow_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    # the first event of the batch that could not be written: the ledger ends before it
    event_id: Mapped[int] = mapped_column(BigInteger)
    # ``services.store.errors.Permanent`` value: why no retry can help
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    blocked_at: Mapped[datetime]


# --------------------------------------------------------------------------- idempotency

# An ``Idempotency-Key`` header (services/api/deps.py validates it)
IDEMPOTENCY_KEY_MAX = 200
# ``<command>:<person id>:<Idempotency-Key>`` (``services.commands.service.Sender.update_id``):
# a command name (32 at most), a directory person id and the key
IDEMPOTENCY_SCOPE_MAX = 32 + 1 + limits.PERSON_ID_MAX + 1 + IDEMPOTENCY_KEY_MAX


class IdempotencyKey(Base):
    """The request an Idempotency-Key was first sent with, per (command, caller, key).

    Written once, before the command is sent: the same scope with another request digest is
    refused, the same digest is sent again (Temporal answers it with the first outcome). Rows
    matter only while a client may still retry; ``created_at`` lets old ones be pruned
    (``services.store.idempotency``).
    """

    __tablename__ = "idempotency_keys"

    scope: Mapped[str] = mapped_column(String(IDEMPOTENCY_SCOPE_MAX), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(HASH_HEX_LENGTH))
    created_at: Mapped[datetime]

    # pruning deletes by age
    __table_args__ = (Index(None, "created_at"),)
