"""Registry: versioned upserts, filtered keyset listing and the approvals inbox."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.store.db import session_scope
from services.store.ledger import LedgerRepository
from services.store.models import UseCase, UseCasePerson
from services.store.registry import (
    InvalidCursor,
    RegistryKeyConflict,
    RegistryRepository,
    encode_cursor,
    roster_of,
    to_registry_row,
)
from tests.store.factories import T0, new_workflow_id, record, registry_row
from workflows.activities import LedgerBatch, RegistryRow
from workflows.model import EventKind

Sessions = async_sessionmaker[AsyncSession]


async def upsert(sessionmaker: Sessions, row: RegistryRow) -> bool:
    async with session_scope(sessionmaker) as session:
        return await RegistryRepository(session).upsert(row)


async def get(sessionmaker: Sessions, workflow_id: str) -> UseCase | None:
    async with session_scope(sessionmaker) as session:
        return await RegistryRepository(session).get(workflow_id)


async def pending(sessionmaker: Sessions, person: str) -> list[str]:
    async with session_scope(sessionmaker) as session:
        rows = await RegistryRepository(session).pending_for(person)
    return [r.workflow_id for r in rows]


# --------------------------------------------------------------------------- upsert


async def test_upsert_round_trips_a_row(sessionmaker: Sessions) -> None:
    row = registry_row(
        stage="risk_signoff",
        gate="risk_signoff",
        quorum=2,
        approvals=["rita"],
        pending_approvers=["raj"],
        due_at=T0 + timedelta(days=3),
        event_id=9,
    )
    assert await upsert(sessionmaker, row)

    stored = await get(sessionmaker, row.workflow_id)
    assert stored is not None
    assert to_registry_row(stored) == row
    assert stored.updated_at.tzinfo is not None
    assert stored.due_at is not None
    assert stored.due_at.utcoffset() == timedelta(0)
    assert await get(sessionmaker, new_workflow_id()) is None


async def test_newer_event_wins_whatever_the_arrival_order(sessionmaker: Sessions) -> None:
    wf = new_workflow_id()
    assert await upsert(sessionmaker, registry_row(wf, stage="validation", event_id=5))
    # an older snapshot (a late retry) and a replay of the same one change nothing
    assert not await upsert(sessionmaker, registry_row(wf, stage="implementation", event_id=3))
    assert not await upsert(sessionmaker, registry_row(wf, stage="scoping", event_id=5))
    stored = await get(sessionmaker, wf)
    assert stored is not None
    assert (stored.stage, stored.event_id) == ("validation", 5)

    assert await upsert(
        sessionmaker,
        registry_row(
            wf, stage="risk_signoff", gate="risk_signoff", pending_approvers=["rita"], event_id=7
        ),
    )
    stored = await get(sessionmaker, wf)
    assert stored is not None
    assert (stored.stage, stored.event_id) == ("risk_signoff", 7)
    assert await pending(sessionmaker, "rita") == [wf]


async def test_concurrent_upserts_keep_the_newest(sessionmaker: Sessions) -> None:
    # the very first snapshots of a run race too: nothing stored yet, all attempt an INSERT
    for _ in range(3):
        await _race_upserts(sessionmaker)


async def _race_upserts(sessionmaker: Sessions) -> None:
    wf = new_workflow_id()
    rows = [
        registry_row(wf, stage=f"s{n}", pending_approvers=[f"{wf}-p{n}"], event_id=n)
        for n in range(1, 9)
    ]
    await asyncio.gather(*(upsert(sessionmaker, r) for r in reversed(rows)))

    stored = await get(sessionmaker, wf)
    assert stored is not None
    assert (stored.stage, stored.event_id) == ("s8", 8)
    # the side tables follow the row that won, not the last writer
    assert await pending(sessionmaker, f"{wf}-p8") == [wf]
    for n in range(1, 8):
        assert await pending(sessionmaker, f"{wf}-p{n}") == []


async def test_side_tables_are_rewritten(sessionmaker: Sessions) -> None:
    wf = new_workflow_id()
    await upsert(sessionmaker, registry_row(wf, event_id=1))
    owners = {"business_owner": "bea", "technical_owner": "tim", "risk_approvers": ["ria"]}
    await upsert(sessionmaker, registry_row(wf, business_owner="bea", owners=owners, event_id=2))

    async with session_scope(sessionmaker) as session:
        people = (
            await session.execute(
                select(UseCasePerson.person_id, UseCasePerson.role).where(
                    UseCasePerson.workflow_id == wf
                )
            )
        ).all()
    assert sorted(map(tuple, people)) == [
        ("bea", "business_owner"),
        ("ria", "risk_approvers"),
        ("tim", "technical_owner"),
    ]


async def test_same_key_under_another_workflow_id_is_refused(sessionmaker: Sessions) -> None:
    row = registry_row()
    await upsert(sessionmaker, row)
    with pytest.raises(RegistryKeyConflict, match=row.workflow_id):
        await upsert(sessionmaker, registry_row(new_workflow_id(), key=row.key))


# --------------------------------------------------------------------------- roster (need-to-know)

PINNED = {
    "delivery_lead": ["dana"],
    "business_owner": ["bo"],
    "technical_owner": ["tom"],
    "operations_owner": ["olga"],
    "risk_approver": ["raj", "rita"],
    "escalation_owner": ["eve"],
    "stop_authority": ["bo", "tom"],
}


async def roster(sessionmaker: Sessions, workflow_id: str) -> dict[str, list[str]]:
    async with session_scope(sessionmaker) as session:
        return await RegistryRepository(session).roster(workflow_id)


async def visible(sessionmaker: Sessions, person: str) -> set[str]:
    async with session_scope(sessionmaker) as session:
        page, _ = await RegistryRepository(session).list(visible_to=person, limit=500)
    return {r.workflow_id for r in page}


async def test_roster_is_the_one_the_run_pinned_in_its_ledger(sessionmaker: Sessions) -> None:
    wf = new_workflow_id()
    started = record(wf, 1, kind=EventKind.RUN_STARTED, payload={"roster": PINNED})
    async with session_scope(sessionmaker) as session:
        await LedgerRepository(session).append(LedgerBatch(records=[started]))
    await upsert(sessionmaker, registry_row(wf))

    # group:risk-committee resolved to raj and rita at start, as the workflow's memo holds it
    assert await roster(sessionmaker, wf) == PINNED
    assert wf in await visible(sessionmaker, "raj")
    assert wf in await visible(sessionmaker, "dana")
    assert wf not in await visible(sessionmaker, "priya")

    # every applied snapshot rewrites the roster from the ledger; a stale one changes nothing
    await upsert(sessionmaker, registry_row(wf, stage="validation", event_id=2))
    assert not await upsert(sessionmaker, registry_row(wf, stage="scoping", event_id=1))
    assert await roster(sessionmaker, wf) == PINNED


async def test_roster_without_a_ledger_start_is_the_people_named(sessionmaker: Sessions) -> None:
    wf = new_workflow_id()
    await upsert(sessionmaker, registry_row(wf))
    assert await roster(sessionmaker, wf) == {
        "business_owner": ["bo"],
        "delivery_lead": ["dana"],
        "escalation_owner": ["eve"],
        "operations_owner": ["olga"],
        "risk_approvers": ["rita"],  # the group reference cannot be resolved here
        "stop_authority": ["bo", "tom"],
        "technical_owner": ["tom"],
    }
    assert wf not in await visible(sessionmaker, "group:risk-committee")
    assert await roster(sessionmaker, new_workflow_id()) == {}


# --------------------------------------------------------------------------- listing


def _seed_rows() -> list[RegistryRow]:
    stages = ["scoping", "implementation", "risk_signoff", "live"]
    tiers = ["low", "medium", "high"]
    people = ["ann", "ben", "cat", "dan"]
    rows = []
    for n in range(37):
        business, technical = people[n % 4], people[(n + 1) % 4]
        rows.append(
            registry_row(
                f"usecase-list-{n:03d}",
                stage=stages[n % 4],
                risk_tier=tiers[n % 3],
                business_owner=business,
                owners={
                    "business_owner": business,
                    "technical_owner": technical,
                    "risk_approvers": ["group:risk", "eve"] if n % 5 == 0 else ["rita"],
                },
                # every third pair shares a timestamp, so the workflow_id tie-break matters
                updated_at=T0 + timedelta(minutes=n // 3),
                event_id=1,
            )
        )
    return rows


def _expected(rows: list[RegistryRow], **filters: str) -> list[str]:
    def keep(row: RegistryRow) -> bool:
        # no ledger behind these rows: a run's people are those its owners block names
        if "visible_to" in filters and filters["visible_to"] not in {
            p for p, _ in roster_of(row, None)
        }:
            return False
        if "stage" in filters and row.stage != filters["stage"]:
            return False
        if "risk_tier" in filters and row.risk_tier != filters["risk_tier"]:
            return False
        if "owner" in filters:
            named: set[Any] = {row.business_owner}
            for value in row.owners.values():
                named.update(value if isinstance(value, list) else [value])
            return filters["owner"] in named
        return True

    kept = sorted((r for r in rows if keep(r)), key=lambda r: (r.updated_at, r.workflow_id))
    return [r.workflow_id for r in reversed(kept)]


async def _walk(sessionmaker: Sessions, limit: int, **filters: str) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    visible_to = filters.pop("visible_to", None)
    for _ in range(100):
        async with session_scope(sessionmaker) as session:
            page, cursor = await RegistryRepository(session).list(
                visible_to=visible_to, limit=limit, cursor=cursor, **filters
            )
        assert len(page) <= limit
        seen.extend(r.workflow_id for r in page)
        if cursor is None:
            return seen
    raise AssertionError("pagination did not terminate")


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"stage": "live"},
        {"risk_tier": "high"},
        {"owner": "ann"},
        {"owner": "eve"},
        {"owner": "group:risk"},
        {"stage": "implementation", "owner": "ben"},
        {"stage": "scoping", "risk_tier": "low", "owner": "ann"},
        {"owner": "nobody"},
        {"visible_to": "ann"},
        {"visible_to": "eve"},
        {"visible_to": "eve", "stage": "scoping"},
        {"visible_to": "ben", "owner": "ann"},
        {"visible_to": "group:risk"},
        {"visible_to": "nobody"},
    ],
    ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items()) or "all",
)
async def test_list_filters_and_pages(sessionmaker: Sessions, filters: dict[str, str]) -> None:
    rows = _seed_rows()
    for row in rows:
        await upsert(sessionmaker, row)
    expected = _expected(rows, **filters)

    for limit in (1, 4, 50):
        assert await _walk(sessionmaker, limit, **filters) == expected


async def test_last_full_page_has_no_next_cursor(sessionmaker: Sessions) -> None:
    for n in range(4):
        await upsert(sessionmaker, registry_row(updated_at=T0 + timedelta(minutes=n)))
    async with session_scope(sessionmaker) as session:
        repo = RegistryRepository(session)
        page, cursor = await repo.list(visible_to=None, limit=2)
        assert len(page) == 2
        assert cursor is not None
        page, cursor = await repo.list(visible_to=None, limit=2, cursor=cursor)
        assert len(page) == 2
        assert cursor is None


async def test_bad_cursor_and_limit_are_refused(sessionmaker: Sessions) -> None:
    async with session_scope(sessionmaker) as session:
        repo = RegistryRepository(session)
        for cursor in ("not-base64!", "bm9wZQ", encode_cursor(T0, "x")[:-3]):
            with pytest.raises(InvalidCursor):
                await repo.list(visible_to=None, cursor=cursor)
        with pytest.raises(ValueError, match="limit"):
            await repo.list(visible_to=None, limit=0)


# --------------------------------------------------------------------------- inbox


async def test_inbox_lists_open_gates_waiting_on_a_person(sessionmaker: Sessions) -> None:
    later = registry_row(
        stage="go_live",
        gate="go_live",
        pending_approvers=["rita", "bo"],
        due_at=T0 + timedelta(days=5),
    )
    sooner = registry_row(
        stage="risk_signoff",
        gate="risk_signoff",
        pending_approvers=["rita"],
        due_at=T0 + timedelta(days=1),
    )
    other = registry_row(stage="ops_handoff", gate="ops_handoff", pending_approvers=["olga"])
    idle = registry_row(stage="implementation")
    for row in (later, sooner, other, idle):
        await upsert(sessionmaker, row)

    assert await pending(sessionmaker, "rita") == [sooner.workflow_id, later.workflow_id]
    assert await pending(sessionmaker, "bo") == [later.workflow_id]
    assert await pending(sessionmaker, "nobody") == []

    # rita approves: the next snapshot no longer waits on her
    await upsert(
        sessionmaker,
        registry_row(
            sooner.workflow_id,
            stage="risk_signoff",
            gate="risk_signoff",
            pending_approvers=["raj"],
            approvals=["rita"],
            event_id=2,
        ),
    )
    assert await pending(sessionmaker, "rita") == [later.workflow_id]
    # a closed run waits on nobody even if its snapshot still lists people
    await upsert(
        sessionmaker,
        registry_row(
            later.workflow_id,
            stage="cancelled",
            closed=True,
            pending_approvers=["rita", "bo"],
            event_id=2,
        ),
    )
    assert await pending(sessionmaker, "rita") == []
    assert await pending(sessionmaker, "bo") == []
