"""Apply Alembic migrations from code: ``python -m services.store.migrate`` upgrades to head
using the application settings (what ``make run`` does before starting the processes)."""

from __future__ import annotations

import asyncio
import logging
import sys

from alembic import command
from alembic.config import Config

from services.settings import PROJECT_ROOT, ConfigError, load_settings

logger = logging.getLogger(__name__)

ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"


def alembic_config(url: str | None = None) -> Config:
    """Config for the project's migrations, usable from any working directory."""
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    # the host process owns logging; alembic.ini's logging section is for the alembic CLI
    config.attributes["configure_logger"] = False
    if url is not None:
        # ConfigParser interpolation would treat a '%' in a password as a placeholder
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_head_sync(url: str | None = None) -> None:
    """Upgrade ``url`` (default: the settings' database) to the newest revision.

    Blocking, and migrations/env.py runs its own event loop: only call it where no event
    loop is running. Async code uses ``upgrade_head``.
    """
    command.upgrade(alembic_config(url), "head")


def downgrade_base_sync(url: str | None = None) -> None:
    command.downgrade(alembic_config(url), "base")


async def upgrade_head(url: str | None = None) -> None:
    """Upgrade ``url`` (default: the settings' database) to head from async code.

    Alembic is synchronous and its env.py starts an event loop of its own, so the work runs
    in a worker thread instead of blocking (or nesting inside) the caller's loop.
    """
    await asyncio.to_thread(upgrade_head_sync, url)


async def downgrade_base(url: str | None = None) -> None:
    await asyncio.to_thread(downgrade_base_sync, url)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        url = load_settings().resolved_database_url
    except ConfigError as exc:
        logger.error("%s", exc)
        return 2
    upgrade_head_sync(url)
    logger.info("database schema is at head")
    return 0


if __name__ == "__main__":
    sys.exit(main())
