"""Migrations apply from empty, roll back to nothing, and match the models exactly."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from services.store.db import make_engine
from services.store.migrate import alembic_config, downgrade_base, upgrade_head
from services.store.models import Base

STORE_TABLES = {"use_cases", "use_case_people", "pending_approvals", "ledger_entries", "evidence"}


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
