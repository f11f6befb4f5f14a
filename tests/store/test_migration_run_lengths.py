"""The migration that sizes run columns from ``workflows.limits`` keeps every row.

On SQLite, widening a column rebuilds its table (batch mode: copy, DROP, rename). With foreign
keys on, that DROP would cascade to every row referencing ``use_cases``: the people, inbox
and roster side tables. Rows seeded before the upgrade must all be there after it, and the
widened columns must take what a change request's run records.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from alembic import command
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection

from services.store.db import make_engine
from services.store.migrate import alembic_config
from services.store.models import LedgerBlock
from workflows import limits

REVISION = "5b0d7e2a91c4"
PREVIOUS = "ce57d6bb9b68"
SIDE_TABLES = ("use_case_people", "pending_approvals", "use_case_roster")
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _seed(connection: Connection) -> None:
    connection.execute(
        text(
            "INSERT INTO use_cases (workflow_id, key, title, risk_tier, stage, closed, "
            "business_owner, owners, pending_approvers, approvals, round, updated_at, event_id) "
            "VALUES ('usecase-kyc', 'kyc', 't', 'low', 'risk_signoff', false, 'bo', '{}', "
            "'[\"rita\"]', '[]', 1, :now, 3)"
        ),
        {"now": NOW},
    )
    for table, role in (
        ("use_case_people", "business_owner"),
        ("use_case_roster", "business_owner"),
        ("pending_approvals", None),
    ):
        columns = "person_id, workflow_id" + (", role" if role else "")
        values = "'bo', 'usecase-kyc'" + (f", '{role}'" if role else "")
        connection.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({values})"))


def _count(connection: Connection, table: str) -> int:
    return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def _long_run(connection: Connection) -> None:
    key = limits.change_run_key("k" * limits.USE_CASE_KEY_MAX, "change-" + "9" * 6)
    title = "t" * limits.RUN_TITLE_MAX
    connection.execute(
        text(
            "INSERT INTO use_cases (workflow_id, key, title, risk_tier, stage, closed, "
            "business_owner, owners, pending_approvers, approvals, round, updated_at, event_id) "
            "VALUES ('usecase-long', :key, :title, 'low', 'scoping', false, 'bo', '{}', '[]', "
            "'[]', 1, :now, 1)"
        ),
        {"key": key, "title": title, "now": NOW},
    )
    connection.execute(text("DELETE FROM use_cases WHERE workflow_id = 'usecase-long'"))


async def test_widening_keeps_every_row_and_takes_a_change_run(empty_db_url: str) -> None:
    config = alembic_config(empty_db_url)
    await asyncio.to_thread(command.upgrade, config, PREVIOUS)
    engine = make_engine(empty_db_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_seed)

        await asyncio.to_thread(command.upgrade, config, REVISION)
        async with engine.begin() as connection:
            for table in ("use_cases", *SIDE_TABLES):
                assert await connection.run_sync(_count, table) == 1, table
            await connection.run_sync(_long_run)
            blocked = await connection.scalar(select(func.count()).select_from(LedgerBlock))
            assert blocked == 0

        await asyncio.to_thread(command.downgrade, config, PREVIOUS)
        async with engine.begin() as connection:
            for table in ("use_cases", *SIDE_TABLES):
                assert await connection.run_sync(_count, table) == 1, table
    finally:
        await engine.dispose()
