"""The use-case registry: the read model behind ``GET /v1/use-cases`` and the approvals inbox.

Rows are snapshots pushed by the ``registry.sync`` activity. ``event_id`` versions them, so
the newest snapshot wins no matter in which order retried attempts arrive. ``event_id`` is the
last fact the ledger holds (``verify`` holds the chain to it), so it is only ever set from
the workflow's snapshots.

Read-your-writes: the API also writes the row straight from a command's answer (``reflect``:
the run's state right after the command, ``services.commands.read_model``), before the
workflow's snapshot arrives. Such a row changes what the run shows (stage, gate, who it waits
on) but never ``event_id``; ``updated_at`` (the time of the run's latest fact) orders the
content: an answer older than the stored content is dropped, and a snapshot whose content is
older than what an answer already showed advances ``event_id`` only.

Reads are need-to-know (``workflows.policy.may_read``): listing takes ``visible_to``, the
caller's id, and keeps the runs whose pinned roster names them; ``None`` (a member of the
policy's reader groups) keeps every run.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, delete, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.store.errors import sqlstate
from services.store.models import (
    LedgerEntry,
    PendingApproval,
    RosterEntry,
    SideApproval,
    UseCase,
    UseCasePerson,
)
from workflows.activities import RegistryRow
from workflows.events import DeputiesChanged, RunStarted, extras_as, parse_payload
from workflows.model import EventKind

GROUP_PREFIX = "group:"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


# The write path's tables and statements, built once: building the upsert (a CASE per column)
# and cache-keying it per call cost more CPU than running it (bench/store_persist.py). Values
# go in as parameters; Core statements, so no ORM bookkeeping either.
_USE_CASES = cast(Table, UseCase.__table__)
_PEOPLE = cast(Table, UseCasePerson.__table__)
_ROSTER = cast(Table, RosterEntry.__table__)
_PENDING = cast(Table, PendingApproval.__table__)
_SIDE = cast(Table, SideApproval.__table__)
# the row's columns, in the order of RegistryRow's fields
_ROW_COLUMNS = [n for n in RegistryRow.model_fields if n != "side_decisions"]
_CONTENT = [n for n in _ROW_COLUMNS if n not in ("workflow_id", "event_id")]
_UPSERTS: dict[tuple[str, bool], Any] = {}


def _delete_of(table: Table) -> Any:
    return delete(table).where(table.c.workflow_id == bindparam("workflow_id"))


_REWRITES = {
    table.name: (_delete_of(table), insert(table)) for table in (_PEOPLE, _ROSTER, _PENDING, _SIDE)
}
# the side tables' rows of several runs at once
_DELETES_OF_RUNS = {
    table.name: delete(table).where(
        table.c.workflow_id.in_(bindparam("workflow_ids", expanding=True))
    )
    for table in (_PENDING, _SIDE)
}
_UPSERTS_OF_RUNS: dict[str, Any] = {}


def _upsert_statement(dialect: str, *, reflected: bool) -> Any:
    """INSERT … ON CONFLICT DO UPDATE … WHERE of a row, RETURNING the stored ``updated_at``."""
    statement = _UPSERTS.get((dialect, reflected))
    if statement is not None:
        return statement
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    proposed = dialect_insert(_USE_CASES)
    stored = _USE_CASES.c
    if reflected:
        # a command's answer: newer content only, and never the ledger's count
        statement = proposed.on_conflict_do_update(
            index_elements=[stored.workflow_id],
            set_={name: proposed.excluded[name] for name in _CONTENT},
            where=stored.updated_at < proposed.excluded.updated_at,
        ).returning(stored.updated_at)
    else:
        # a newer snapshot always advances event_id; its content replaces the stored one
        # unless a command's answer already showed newer (the SET sees the old row)
        fresher = stored.updated_at <= proposed.excluded.updated_at
        changes: dict[str, Any] = {
            name: case((fresher, proposed.excluded[name]), else_=stored[name]) for name in _CONTENT
        }
        changes["event_id"] = proposed.excluded.event_id
        statement = proposed.on_conflict_do_update(
            index_elements=[stored.workflow_id],
            set_=changes,
            where=stored.event_id < proposed.excluded.event_id,
        ).returning(stored.updated_at)
    _UPSERTS[(dialect, reflected)] = statement
    return statement


def _upsert_of_runs(dialect: str) -> Any:
    """The snapshot upsert for several rows (one executemany: a multi-row INSERT), RETURNING
    the ``workflow_id`` and stored ``updated_at`` of each row it applied."""
    statement = _UPSERTS_OF_RUNS.get(dialect)
    if statement is None:
        statement = _upsert_statement(dialect, reflected=False).returning(_USE_CASES.c.workflow_id)
        _UPSERTS_OF_RUNS[dialect] = statement
    return statement


# Bounds the retry after a lost insert race (see ``upsert``); one retry settles a real race.
_MAX_RACE_ATTEMPTS = 5
_RACE_LOST = {"40P01", "40001"}  # deadlock detected, serialization failure


class RegistryKeyConflict(ValueError):
    """The row's key is already held by another workflow id: no retry can store it."""


class InvalidCursor(ValueError):
    """A ``cursor`` that this service did not hand out (or that was altered)."""


def encode_cursor(updated_at: datetime, workflow_id: str) -> str:
    raw = json.dumps([updated_at.isoformat(), workflow_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, workflow_id = json.loads(raw)
        position = datetime.fromisoformat(stamp)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidCursor("cursor is not valid") from exc
    if not isinstance(workflow_id, str) or position.tzinfo is None:
        raise InvalidCursor("cursor is not valid")
    return position, workflow_id


def people_of(row: RegistryRow) -> set[tuple[str, str]]:
    """(person, role) pairs for ``use_case_people``: the business owner and everyone in the
    owners block (list roles contribute each member)."""
    pairs = {(row.business_owner, "business_owner")}
    for role, value in row.owners.items():
        members = value if isinstance(value, list) else [value]
        pairs.update((m, role) for m in members if isinstance(m, str) and m)
    return pairs


def roster_of(row: RegistryRow, pinned: dict[str, list[str]] | None) -> set[tuple[str, str]]:
    """(person, role) pairs for ``use_case_roster``: the roster the run pinned at start (groups
    resolved), else, for a run whose ledger holds no start yet, the people its owners block
    names directly (group references cannot be resolved here, so they are left out)."""
    if pinned:
        return {(p, role) for role, people in pinned.items() for p in people if p}
    return {(p, role) for p, role in people_of(row) if not p.startswith(GROUP_PREFIX)}


def pending_of(row: RegistryRow) -> list[str]:
    """People for ``pending_approvals``; a closed run waits on nobody, whatever it lists."""
    return [] if row.closed else sorted(set(row.pending_approvers))


class RegistryRepository:
    """Registry persistence on one ``AsyncSession`` (the caller owns the commit)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert(self, row: RegistryRow) -> bool:
        """Store ``row`` unless a snapshot with the same or a newer event_id is already there.

        Returns whether it was applied. The version check happens inside the single
        INSERT … ON CONFLICT DO UPDATE … WHERE statement, so concurrent attempts cannot both
        pass it; on PostgreSQL the conflicting row stays locked until commit, which also
        serialises the side-table rewrite.

        PostgreSQL arbitrates ON CONFLICT on ``workflow_id`` only, so two first inserts of one
        run racing each other can still collide on the unique ``key``. That collision rolls
        the session back and the upsert is retried (it then takes the conflict path), so
        ``upsert`` must be the only write in its unit of work. A key held by a *different*
        workflow id raises ``RegistryKeyConflict``.
        """
        return await self._retrying(row, reflected=False)

    async def reflect(self, row: RegistryRow) -> bool:
        """Show ``row`` — built from a command's answer — unless the stored content is as new
        or newer (by ``updated_at``); ``event_id`` stays what the workflow's snapshots made it
        (a run not stored yet starts at ``row.event_id``, 0). Returns whether it was applied.
        Like ``upsert``, the only write in its unit of work."""
        return await self._retrying(row, reflected=True)

    async def shows_as_of(self, workflow_id: str) -> datetime | None:
        """The time of the run's latest fact the stored row shows (None: no row yet). A
        command's answer as old or older is there already: the run's store step wrote it
        before the command answered, unless that step fell back to its retrying activities."""
        stored: datetime | None = await self.session.scalar(
            select(UseCase.updated_at).where(UseCase.workflow_id == workflow_id)
        )
        return stored

    async def _retrying(self, row: RegistryRow, *, reflected: bool) -> bool:
        for attempt in range(1, _MAX_RACE_ATTEMPTS + 1):
            try:
                return await self._upsert(row, reflected=reflected)
            except IntegrityError as exc:
                await self.session.rollback()
                holder = await self.session.scalar(
                    select(UseCase.workflow_id).where(UseCase.key == row.key)
                )
                if holder is not None and holder != row.workflow_id:
                    raise RegistryKeyConflict(
                        f"key {row.key!r} belongs to {holder}, not {row.workflow_id}"
                    ) from exc
                if attempt == _MAX_RACE_ATTEMPTS:
                    raise
            except DBAPIError as exc:
                # PostgreSQL may pick one of two racing rewrites of a run's side tables as a
                # deadlock victim: the other one wins; this one re-runs its version check
                if sqlstate(exc) not in _RACE_LOST or attempt == _MAX_RACE_ATTEMPTS:
                    raise
                await self.session.rollback()
        raise AssertionError("unreachable")

    async def upsert_in_unit(self, row: RegistryRow, *, people_changed: bool = True) -> bool:
        """``upsert`` as one write among others in the caller's unit of work (the ledger batch
        of the same workflow task): one attempt and no rollback of its own, so a lost race
        raises and the caller retries the whole unit instead of losing its other writes."""
        return await self._upsert(row, people_changed=people_changed)

    async def upsert_runs_in_unit(self, rows: Sequence[tuple[RegistryRow, bool]]) -> list[bool]:
        """``upsert_in_unit`` of several runs' rows at once, each with its ``people_changed``:
        the same version checks and side-table rewrites per row, in a few statements for all
        of them. The workflow ids must be distinct. Returns whether each row was applied."""
        if len(rows) == 1:
            row, people_changed = rows[0]
            return [await self._upsert(row, people_changed=people_changed)]
        if len({row.workflow_id for row, _ in rows}) != len(rows):
            raise ValueError("upsert_runs_in_unit takes one row per run")
        # in workflow id order: two writers lock the rows they share in the same order
        ordered = sorted(rows, key=lambda pair: pair[0].workflow_id)
        connection = await self.session.connection()
        result = await connection.execute(
            _upsert_of_runs(connection.dialect.name),
            [row.model_dump(exclude={"side_decisions"}) for row, _ in ordered],
        )
        stored = {r.workflow_id: r.updated_at for r in result}
        # not applied, or only event_id advanced under newer content: the side tables stay
        applied = [
            (row, people)
            for row, people in ordered
            if stored.get(row.workflow_id) == row.updated_at
        ]
        for row, people_changed in applied:
            if people_changed:
                await self._rewrite_people(row)
        if applied:
            workflow_ids = {"workflow_ids": [row.workflow_id for row, _ in applied]}
            pending = [
                {"workflow_id": row.workflow_id, "person_id": p}
                for row, _ in applied
                for p in pending_of(row)
            ]
            side = [item for row, _ in applied for item in side_approvals_of(row)]
            for table, new_rows in ((_PENDING, pending), (_SIDE, side)):
                await connection.execute(_DELETES_OF_RUNS[table.name], workflow_ids)
                if new_rows:
                    await connection.execute(_REWRITES[table.name][1], new_rows)
        done = {row.workflow_id for row, _ in applied}
        return [row.workflow_id in done for row, _ in rows]

    async def _upsert(
        self, row: RegistryRow, *, reflected: bool = False, people_changed: bool = True
    ) -> bool:
        """``people_changed=False``: the caller knows the run's people and pinned roster are
        as stored (its facts hold no start and no change of deputies), so their tables are left
        as they are instead of rewritten (and the roster's two ledger reads are saved)."""
        values = row.model_dump(exclude={"side_decisions"})
        connection = await self.session.connection()
        statement = _upsert_statement(connection.dialect.name, reflected=reflected)
        stored = (await connection.execute(statement, values)).scalar_one_or_none()
        if stored is None or stored != row.updated_at:
            return False  # not applied, or only event_id advanced under newer content

        workflow_id = row.workflow_id
        if people_changed:
            await self._rewrite_people(row)
        pending = [{"workflow_id": workflow_id, "person_id": p} for p in pending_of(row)]
        await self._rewrite(_PENDING, workflow_id, pending)
        await self._rewrite(_SIDE, workflow_id, side_approvals_of(row))
        return True

    async def _rewrite_people(self, row: RegistryRow) -> None:
        """The run's people and pinned roster, as ``row`` and the run's ledger give them."""
        workflow_id = row.workflow_id
        people = [
            {"workflow_id": workflow_id, "person_id": person, "role": role}
            for person, role in sorted(people_of(row))
        ]
        await self._rewrite(_PEOPLE, workflow_id, people)
        roster = roster_of(row, await self._pinned_roster(workflow_id))
        pinned = [
            {"workflow_id": workflow_id, "person_id": person, "role": role}
            for person, role in sorted(roster)
        ]
        await self._rewrite(_ROSTER, workflow_id, pinned)

    async def _rewrite(self, table: Table, workflow_id: str, rows: list[dict[str, Any]]) -> None:
        """Replace the run's rows of a side table with ``rows``."""
        remove, add = _REWRITES[table.name]
        connection = await self.session.connection()
        await connection.execute(remove, {"workflow_id": workflow_id})
        if rows:
            await connection.execute(add, rows)

    async def _pinned_roster(self, workflow_id: str) -> dict[str, list[str]] | None:
        """The roster the run's ``run_started`` ledger entry recorded (the one pinned at start,
        like the workflow's memo), with the deputies in force after its latest
        ``deputies_changed``; None while the ledger holds no start for the run. The workflow
        appends its ledger entries before it syncs the registry."""
        started = await self._first_payload(workflow_id, EventKind.RUN_STARTED, first=True)
        if started is None:
            return None
        _, extras = parse_payload(EventKind.RUN_STARTED, started)
        facts = extras_as(RunStarted, extras)
        roster = dict(facts.roster)
        deputies = facts.deputies or {}
        changed = await self._first_payload(workflow_id, EventKind.DEPUTIES_CHANGED, first=False)
        if changed is not None:
            _, later = parse_payload(EventKind.DEPUTIES_CHANGED, changed)
            deputies = extras_as(DeputiesChanged, later).deputies
        for role, entries in deputies.items():
            people = {str(d.get("person")) for d in entries if isinstance(d, dict)}
            roster[f"deputy_{role}"] = sorted(people)
        return roster or None

    async def _first_payload(
        self, workflow_id: str, kind: EventKind, *, first: bool
    ) -> dict[str, Any] | None:
        """The payload of the run's first (or latest) ledger entry of ``kind``."""
        order = LedgerEntry.seq if first else LedgerEntry.seq.desc()
        payload: dict[str, Any] | None = await self.session.scalar(
            select(LedgerEntry.payload)
            .where(LedgerEntry.workflow_id == workflow_id, LedgerEntry.kind == kind.value)
            .order_by(order)
            .limit(1)
        )
        return payload

    async def get(self, workflow_id: str) -> UseCase | None:
        return await self.session.get(UseCase, workflow_id)

    async def roster(self, workflow_id: str) -> dict[str, list[str]]:
        """Role -> people of the run as the registry holds them; empty for an unknown run."""
        rows = await self.session.execute(
            select(RosterEntry.role, RosterEntry.person_id)
            .where(RosterEntry.workflow_id == workflow_id)
            .order_by(RosterEntry.role, RosterEntry.person_id)
        )
        out: dict[str, list[str]] = {}
        for role, person in rows:
            out.setdefault(role, []).append(person)
        return out

    async def list(
        self,
        *,
        visible_to: str | None,
        stage: str | None = None,
        risk_tier: str | None = None,
        owner: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
        waiting_on: str | None = None,
    ) -> tuple[builtins.list[UseCase], str | None]:
        """One page, newest first, and the cursor of the next page (None on the last page).

        Order is (updated_at DESC, workflow_id DESC), a total order, so keyset pages never
        repeat or skip rows. ``owner`` matches anyone named in the owners block;
        ``waiting_on`` anyone an open gate waits on.
        ``visible_to`` keeps only the runs whose roster names that person (the caller who is
        no member of a reader group); None keeps every run.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        limit = min(limit, MAX_PAGE_SIZE)
        statement = select(UseCase)
        if visible_to is not None:
            # EXISTS, probed per row through the roster's primary key while the keyset index
            # walks in order: SQLite would materialise an IN (…) set of every run the person
            # is on before the first row (measured in bench/registry_queries.py)
            named = select(RosterEntry.workflow_id).where(
                RosterEntry.person_id == visible_to,
                RosterEntry.workflow_id == UseCase.workflow_id,
            )
            statement = statement.where(named.exists())
        if stage is not None:
            statement = statement.where(UseCase.stage == stage)
        if risk_tier is not None:
            statement = statement.where(UseCase.risk_tier == risk_tier)
        if owner is not None:
            involved = select(UseCasePerson.workflow_id).where(UseCasePerson.person_id == owner)
            statement = statement.where(UseCase.workflow_id.in_(involved))
        if waiting_on is not None:
            waits = select(PendingApproval.workflow_id).where(
                PendingApproval.person_id == waiting_on
            )
            statement = statement.where(UseCase.workflow_id.in_(waits))
        if cursor is not None:
            after_at, after_id = decode_cursor(cursor)
            # `updated_at <= x` first so both planners get an index range bound, not just a filter
            statement = statement.where(
                UseCase.updated_at <= after_at,
                or_(UseCase.updated_at < after_at, UseCase.workflow_id < after_id),
            )
        statement = statement.order_by(UseCase.updated_at.desc(), UseCase.workflow_id.desc())
        rows = list((await self.session.scalars(statement.limit(limit + 1))).all())
        if len(rows) <= limit:
            return rows, None
        page = rows[:limit]
        return page, encode_cursor(page[-1].updated_at, page[-1].workflow_id)

    async def side_pending_for(
        self, person_id: str, *, limit: int = 100
    ) -> Sequence[tuple[UseCase, SideApproval]]:
        """Side decisions waiting on ``person_id`` (override reviews, pending exceptions),
        soonest due first."""
        statement = (
            select(UseCase, SideApproval)
            .join(SideApproval, SideApproval.workflow_id == UseCase.workflow_id)
            .where(SideApproval.person_id == person_id, UseCase.closed.is_(False))
            .order_by(SideApproval.due_at.asc().nulls_last(), UseCase.workflow_id)
            .limit(limit)
        )
        return [(u, side) for u, side in (await self.session.execute(statement)).all()]

    async def pending_for(self, person_id: str, *, limit: int = 100) -> Sequence[UseCase]:
        """Open gates waiting on ``person_id``, soonest due first. Only the run's own people
        are ever waited on, so everything listed is a run the person may read."""
        statement = (
            select(UseCase)
            .join(PendingApproval, PendingApproval.workflow_id == UseCase.workflow_id)
            .where(PendingApproval.person_id == person_id, UseCase.closed.is_(False))
            .order_by(UseCase.due_at.asc().nulls_last(), UseCase.workflow_id)
            .limit(limit)
        )
        return (await self.session.scalars(statement)).all()


def side_approvals_of(row: RegistryRow) -> list[dict[str, Any]]:
    """One inbox row per person a side decision of an open run waits on."""
    if row.closed:
        return []
    return [
        {
            "workflow_id": row.workflow_id,
            "person_id": person,
            "ref": side.ref,
            "kind": side.kind,
            "quorum": side.quorum,
            "approvals": list(side.approvals),
            "due_at": side.due_at,
            "round": side.round,
        }
        for side in row.side_decisions
        for person in sorted(set(side.pending))
    ]


def to_registry_row(use_case: UseCase) -> RegistryRow:
    """The pydantic form of a stored row (what the API serialises)."""
    fields: dict[str, Any] = {
        name: getattr(use_case, name)
        for name in RegistryRow.model_fields
        if name != "side_decisions"  # kept in side_approvals, per person
    }
    return RegistryRow.model_validate(fields)
