"""Migrations apply from empty, roll back to nothing, and match the models exactly."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from services.store.db import make_engine
from services.store.migrate import alembic_config, downgrade_base, upgrade_head
from services.store.models import Base

STORE_TABLES = {
    "use_cases",
    "use_case_people",
    "use_case_roster",
    "pending_approvals",
    "ledger_entries",
    "evidence",
    "idempotency_keys",
}


def _snapshot(connection: Connection) -> tuple[set[str], str | None, list[object]]:
    tables = set(inspect(connection).get_table_names())
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return tables, context.get_current_revision(), compare_metadata(context, Base.metadata)


async def _inspect(url: str) -> tuple[set[str], str | None, list[object]]:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_snapshot)
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_and_no_drift(empty_db_url: str) -> None:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()

    tables, revision, _ = await _inspect(empty_db_url)
    assert tables & STORE_TABLES == set()
    assert revision is None

    await upgrade_head(empty_db_url)
    tables, revision, diff = await _inspect(empty_db_url)
    assert STORE_TABLES <= tables
    assert revision == head
    # autogenerate finds nothing to do: models and migrations describe the same schema
    assert diff == []

    await downgrade_base(empty_db_url)
    tables, revision, _ = await _inspect(empty_db_url)
    assert tables & STORE_TABLES == set()
    assert revision is None

    # and the chain applies again cleanly after a full downgrade
    await upgrade_head(empty_db_url)
    tables, revision, diff = await _inspect(empty_db_url)
    assert STORE_TABLES <= tables
    assert revision == head
    assert diff == []


async def test_sqlite_data_dir_is_created(tmp_path: Path) -> None:
    data_dir = tmp_path / "not" / "yet" / "there"
    url = f"sqlite+aiosqlite:///{data_dir / 'releasegate.db'}"

    await upgrade_head(url)

    assert (data_dir / "releasegate.db").exists()
    tables, _, diff = await _inspect(url)
    assert STORE_TABLES <= tables
    assert diff == []


def test_single_head_with_dated_revision_files() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1
    for revision in script.walk_revisions():
        filename = Path(revision.path).name
        assert filename[:8].isdigit(), filename
        assert f"_{revision.revision}_" in filename


ROSTER_REVISION = "ce57d6bb9b68"
PINNED = {"delivery_lead": ["dana"], "risk_approver": ["raj", "rita"], "business_owner": ["bo"]}


def _registered(connection: Connection, workflow_id: str, owners: dict[str, object]) -> None:
    now = datetime(2026, 11, 28, tzinfo=UTC)
    connection.execute(
        text(
            "INSERT INTO use_cases (workflow_id, key, title, risk_tier, stage, closed, "
            "business_owner, owners, pending_approvers, approvals, round, updated_at, event_id) "
            "VALUES (:wid, :key, 't', 'low', 'scoping', false, 'bo', :owners, '[]', '[]', 1, "
            ":now, 1)"
        ),
        {"wid": workflow_id, "key": workflow_id[8:], "owners": json.dumps(owners), "now": now},
    )


def _seed_previous_version(connection: Connection) -> None:
    """Two runs registered before the roster existed: one with its ledger start, one without."""
    _registered(connection, "usecase-pinned", {"delivery_lead": "dana"})
    connection.execute(
        text(
            "INSERT INTO ledger_entries (workflow_id, use_case_key, event_id, seq, at, kind, "
            "actor, channel, payload, policy_version, prev_hash, hash) VALUES ('usecase-pinned', "
            "'pinned', 1, 1, :now, 'run_started', 'dana', 'api', :payload, '2026.1', :h, :h)"
        ),
        {
            "now": datetime(2026, 11, 28, tzinfo=UTC),
            "payload": json.dumps({"roster": PINNED}),
            "h": "0" * 64,
        },
    )
    _registered(
        connection,
        "usecase-unpinned",
        {"delivery_lead": "dana", "risk_approvers": ["group:risk-committee", "raj"]},
    )


def _roster_rows(connection: Connection) -> set[tuple[str, str, str]]:
    rows = connection.execute(text("SELECT workflow_id, role, person_id FROM use_case_roster"))
    return {(w, r, p) for w, r, p in rows}


async def test_roster_migration_backfills_registered_runs(empty_db_url: str) -> None:
    config = alembic_config(empty_db_url)
    previous = ScriptDirectory.from_config(config).get_revision(ROSTER_REVISION).down_revision
    await asyncio.to_thread(command.upgrade, config, str(previous))
    engine = make_engine(empty_db_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_seed_previous_version)
        await asyncio.to_thread(command.upgrade, config, ROSTER_REVISION)
        async with engine.connect() as connection:
            rows = await connection.run_sync(_roster_rows)
    finally:
        await engine.dispose()

    assert rows == {
        ("usecase-pinned", role, person) for role, people in PINNED.items() for person in people
    } | {
        ("usecase-unpinned", "delivery_lead", "dana"),
        ("usecase-unpinned", "risk_approvers", "raj"),
    }

    await asyncio.to_thread(command.downgrade, config, str(previous))
    tables, _, _ = await _inspect(empty_db_url)
    assert "use_case_roster" not in tables
