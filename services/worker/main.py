"""Worker entry point: one Temporal client and one DB engine per process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from temporalio.client import Client
from temporalio.worker import Worker

from services.settings import ConfigError, Settings, load_settings
from services.store.db import make_engine, make_sessionmaker
from services.temporal import connect
from services.worker.activities import StoreActivities
from services.worker.notify import Adapter, LogAdapter, NotificationActivities
from workflows.release import UseCaseRelease

log = logging.getLogger("releasegate.worker")


def build_adapters(settings: Settings) -> list[Adapter]:
    adapters: list[Adapter] = [LogAdapter()]
    return adapters


def build_worker(
    client: Client,
    settings: Settings,
    activities: StoreActivities,
    notifications: NotificationActivities,
) -> Worker:
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[UseCaseRelease],
        activities=[activities.append_ledger, activities.sync_registry, notifications.notify],
    )


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    engine = make_engine(settings.resolved_database_url)
    try:
        client = await connect(settings)
        activities = StoreActivities(make_sessionmaker(engine))
        notifications = NotificationActivities(build_adapters(settings))
        async with build_worker(client, settings, activities, notifications):
            log.info(
                "worker polling task queue %s on %s (namespace %s)",
                settings.task_queue,
                settings.temporal_address,
                settings.temporal_namespace,
            )
            await stop.wait()
    finally:
        await engine.dispose()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"releasegate worker: {exc}", file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None

    async def _run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop)

    asyncio.run(_run())


if __name__ == "__main__":
    main()
