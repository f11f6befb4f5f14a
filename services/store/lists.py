"""Pages of the lists that grow with a run's life: its history, incidents, evidence, changes.

A run's state carries only the latest few of each (``workflows.presentation.VIEW_*``) beside
their counts, so what a command answers, and what enters the run's Temporal history, stays the
same size however long the run lives. The whole lists are read here, from the ledger the run
writes every fact to: complete across continue-as-new, and long after Temporal forgot the run.

Pages are keyset-paginated in the order the facts happened (the ledger's ``seq``; evidence by
the entry that introduced it). A cursor is opaque to clients: the position after the page's
last item, as this module wrote it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.store.blocked import BlockedRepository
from services.store.models import EvidenceItem, LedgerEntry, UseCase
from workflows import ids
from workflows.events import (
    CHANGE_CLOSED_KIND,
    ChangeClosed,
    ChangeRaised,
    IncidentReported,
    extras_as,
    parse_payload,
)
from workflows.model import (
    ChangeStatus,
    ChangeSummary,
    Channel,
    EventKind,
    EvidenceRecord,
    HistoryEvent,
    Incident,
    Materiality,
    Severity,
)

Item = TypeVar("Item")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# the status a change has after each of its closing facts (awaiting_resume is not final)
CLOSING_STATUS: dict[EventKind, ChangeStatus] = {
    **{kind: status for status, kind in CHANGE_CLOSED_KIND.items()},
    EventKind.CHANGE_AWAITING_RESUME: ChangeStatus.AWAITING_RESUME,
}
# a sev1 that suspends records the suspension within the same command, a few facts later
SUSPENSION_WITHIN = 8


class InvalidCursor(ValueError):
    """A ``cursor`` this module did not hand out for this list (or one that was altered)."""


class UnknownRun(LookupError):
    """Neither the ledger nor the registry knows the run."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(workflow_id)
        self.workflow_id = workflow_id


@dataclass(frozen=True)
class Page(Generic[Item]):
    items: list[Item]
    next_cursor: str | None


def encode_cursor(kind: str, *position: int) -> str:
    raw = json.dumps([kind, *position], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, kind: str, size: int) -> tuple[int, ...] | None:
    """The position a cursor of list ``kind`` names (``size`` integers); None for no cursor."""
    if cursor is None:
        return None
    try:
        doc = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor("cursor is not valid") from exc
    if (
        not isinstance(doc, list)
        or len(doc) != size + 1
        or doc[0] != kind
        or not all(type(v) is int and v >= 0 for v in doc[1:])
    ):
        raise InvalidCursor("cursor is not valid for this list")
    return tuple(doc[1:])


async def ensure_known(session: AsyncSession, workflow_id: str) -> None:
    """``UnknownRun`` unless the ledger or the registry knows the run; ``LedgerBlocked`` when
    the store refused part of its ledger for good (a page would stop short silently)."""
    known = await session.scalar(
        select(
            or_(
                exists().where(LedgerEntry.workflow_id == workflow_id),
                exists().where(UseCase.workflow_id == workflow_id),
            )
        )
    )
    if not known:
        raise UnknownRun(workflow_id)
    await BlockedRepository(session).ensure_open(workflow_id)


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be 1…{MAX_LIMIT}")
    return limit


async def _entries(
    session: AsyncSession,
    workflow_id: str,
    *,
    list_name: str,
    cursor: str | None,
    limit: int,
    kinds: Sequence[EventKind] = (),
) -> tuple[Sequence[LedgerEntry], str | None]:
    """One page of the run's ledger entries (of ``kinds``, if named) in seq order."""
    after = decode_cursor(cursor, list_name, 1)
    query = select(LedgerEntry).where(LedgerEntry.workflow_id == workflow_id)
    if kinds:
        query = query.where(LedgerEntry.kind.in_([k.value for k in kinds]))
    if after is not None:
        query = query.where(LedgerEntry.seq > after[0])
    rows = (await session.scalars(query.order_by(LedgerEntry.seq).limit(limit + 1))).all()
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(list_name, rows[-1].seq)


async def _known_entries(
    session: AsyncSession,
    workflow_id: str,
    list_name: str,
    cursor: str | None,
    limit: int,
    *kinds: EventKind,
) -> tuple[Sequence[LedgerEntry], str | None]:
    """``_entries`` of a run the store knows (``ensure_known``), the limit checked."""
    await ensure_known(session, workflow_id)
    return await _entries(
        session, workflow_id, list_name=list_name, cursor=cursor, limit=_limit(limit), kinds=kinds
    )


def _channel(value: str) -> Channel:
    try:
        return Channel(value)
    except ValueError:
        return Channel.SYSTEM


# --------------------------------------------------------------------------- history


def history_event(row: LedgerEntry) -> HistoryEvent | None:
    """A ledger entry as the history shows it; None for a kind this version does not know."""
    try:
        kind = EventKind(row.kind)
    except ValueError:
        return None
    body, _ = parse_payload(kind, row.payload)
    return HistoryEvent(
        at=row.at,
        stage=body.stage,
        kind=kind,
        actor=row.actor,
        channel=_channel(row.channel),
        decision=body.decision,
        gate=body.gate,
        comment=body.comment,
        evidence=list(body.evidence),
        round=body.round,
    )


async def history_page(
    session: AsyncSession, workflow_id: str, *, limit: int = DEFAULT_LIMIT, cursor: str | None
) -> Page[HistoryEvent]:
    """The run's stage and decision events, in order, from the ledger."""
    rows, next_cursor = await _known_entries(session, workflow_id, "history", cursor, limit)
    return Page([e for e in map(history_event, rows) if e is not None], next_cursor)


async def history_until(
    session: AsyncSession, workflow_id: str, before_seq: int
) -> list[HistoryEvent]:
    """The run's history events older than ``before_seq`` (what a run that continued as new
    no longer holds itself), from the ledger."""
    rows = await session.scalars(
        select(LedgerEntry)
        .where(LedgerEntry.workflow_id == workflow_id, LedgerEntry.seq < before_seq)
        .order_by(LedgerEntry.seq)
    )
    return [e for e in map(history_event, rows) if e is not None]


# --------------------------------------------------------------------------- incidents


async def incidents_page(
    session: AsyncSession, workflow_id: str, *, limit: int = DEFAULT_LIMIT, cursor: str | None
) -> Page[Incident]:
    """The run's incidents, in the order they were reported."""
    rows, next_cursor = await _known_entries(
        session, workflow_id, "incidents", cursor, limit, EventKind.INCIDENT_REPORTED
    )
    suspensions = await _suspensions(session, workflow_id, rows)
    items = []
    for row in rows:
        body, extras = parse_payload(row.kind, row.payload)
        own = extras_as(IncidentReported, extras)
        incident_id = own.incident or f"inc-seq-{row.seq}"
        items.append(
            Incident(
                id=incident_id,
                severity=own.severity or Severity.SEV4,
                summary=body.comment,
                reported_by=row.actor,
                at=row.at,
                suspended=any(
                    row.seq < seq <= row.seq + SUSPENSION_WITHIN
                    and comment.startswith(f"{incident_id} (")
                    for seq, comment in suspensions
                ),
            )
        )
    return Page(items, next_cursor)


async def _suspensions(
    session: AsyncSession, workflow_id: str, incidents: Sequence[LedgerEntry]
) -> list[tuple[int, str]]:
    """(seq, reason) of the suspensions the run recorded right after sev1 incidents of the
    page (the reason of a suspension by policy names the incident)."""
    sev1 = [
        r.seq
        for r in incidents
        if extras_as(IncidentReported, parse_payload(r.kind, r.payload)[1]).severity
        == Severity.SEV1
    ]
    if not sev1:
        return []
    rows = await session.scalars(
        select(LedgerEntry).where(
            LedgerEntry.workflow_id == workflow_id,
            LedgerEntry.kind == EventKind.SUSPENDED.value,
            or_(
                *(
                    and_(LedgerEntry.seq > seq, LedgerEntry.seq <= seq + SUSPENSION_WITHIN)
                    for seq in sev1
                )
            ),
        )
    )
    return [(r.seq, parse_payload(r.kind, r.payload)[0].comment) for r in rows]


# --------------------------------------------------------------------------- evidence


async def evidence_page(
    session: AsyncSession, workflow_id: str, *, limit: int = DEFAULT_LIMIT, cursor: str | None
) -> Page[EvidenceRecord]:
    """Every evidence item of the run, in the order submitted."""
    await ensure_known(session, workflow_id)
    limit = _limit(limit)
    after = decode_cursor(cursor, "evidence", 2)
    query = select(EvidenceItem).where(EvidenceItem.workflow_id == workflow_id)
    if after is not None:
        event_id, item_id = after
        query = query.where(
            or_(
                EvidenceItem.event_id > event_id,
                and_(EvidenceItem.event_id == event_id, EvidenceItem.id > item_id),
            )
        )
    query = query.order_by(EvidenceItem.event_id, EvidenceItem.id).limit(limit + 1)
    rows = (await session.scalars(query)).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor("evidence", rows[-1].event_id, rows[-1].id)
    items = [
        EvidenceRecord(
            kind=r.kind,
            name=r.name,
            uri=r.uri,
            sha256=r.sha256,
            scope=r.scope,
            round=r.round,
            submitted_by=r.submitted_by,
            at=r.at,
        )
        for r in rows
    ]
    return Page(items, next_cursor)


# --------------------------------------------------------------------------- changes


async def changes_page(
    session: AsyncSession, workflow_id: str, *, limit: int = DEFAULT_LIMIT, cursor: str | None
) -> Page[ChangeSummary]:
    """The use case's change requests in the order raised, each with its status now."""
    rows, next_cursor = await _known_entries(
        session, workflow_id, "changes", cursor, limit, EventKind.CHANGE_RAISED
    )
    changes: dict[str, ChangeSummary] = {}
    for row in rows:
        body, extras = parse_payload(row.kind, row.payload)
        change_id = extras_as(ChangeRaised, extras).change
        if not ids.is_change_id(change_id):
            continue
        changes[change_id] = ChangeSummary(
            change_id=change_id,
            workflow_id=ids.change_workflow_id(workflow_id, change_id),
            number=int(change_id.rpartition("-")[2]),
            summary=body.comment,
            materiality=extras_as(ChangeRaised, extras).materiality or Materiality.MINOR,
            raised_by=row.actor,
            status=ChangeStatus.OPEN,
            opened_at=row.at,
        )
    if changes:
        await _apply_closings(session, workflow_id, rows[0].seq, changes)
    return Page(list(changes.values()), next_cursor)


async def change_status(
    session: AsyncSession, use_case_id: str, change_id: str
) -> ChangeStatus | None:
    """How the use case holds one of its changes now (None: no closing fact yet)."""
    status: ChangeStatus | None = None
    for _, change, closing in await _closings(session, use_case_id):
        if change == change_id:
            status = closing
    return status


async def _closings(
    session: AsyncSession, workflow_id: str, since_seq: int | None = None
) -> list[tuple[LedgerEntry, str | None, ChangeStatus]]:
    """(entry, change id, status it leaves) of the facts that closed the use case's changes
    (after ``since_seq``, if named), in order."""
    query = select(LedgerEntry).where(
        LedgerEntry.workflow_id == workflow_id,
        LedgerEntry.kind.in_([k.value for k in CLOSING_STATUS]),
    )
    if since_seq is not None:
        query = query.where(LedgerEntry.seq > since_seq)
    out = []
    for row in await session.scalars(query.order_by(LedgerEntry.seq)):
        own: Any = extras_as(ChangeClosed, parse_payload(row.kind, row.payload)[1])
        out.append((row, own.change, CLOSING_STATUS[EventKind(row.kind)]))
    return out


async def _apply_closings(
    session: AsyncSession, workflow_id: str, since_seq: int, changes: dict[str, ChangeSummary]
) -> None:
    """Each change's status after the facts that closed it (all recorded after it was raised)."""
    for row, change_id, status in await _closings(session, workflow_id, since_seq):
        change = changes.get(change_id) if change_id is not None else None
        if change is None:
            continue
        change.status = status
        if status != ChangeStatus.AWAITING_RESUME or change.closed_at is None:
            change.closed_at = row.at


__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "InvalidCursor",
    "Page",
    "UnknownRun",
    "change_status",
    "changes_page",
    "decode_cursor",
    "encode_cursor",
    "ensure_known",
    "evidence_page",
    "history_event",
    "history_page",
    "history_until",
    "incidents_page",
]
