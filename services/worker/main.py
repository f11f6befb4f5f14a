"""Worker entry point: one Temporal client and one DB engine per process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pkgutil
import signal
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from services import command_keys, observability
from services.hook_targets import NO_HOOKS, HookAllowList
from services.settings import ConfigError, Settings, load_settings
from services.store.db import make_engine, make_sessionmaker
from services.temporal import connect
from services.tlog.publish import Checkpointing, checkpointing
from services.worker.activities import StoreActivities
from services.worker.hooks import HookActivities
from services.worker.notify import Adapter, LogAdapter, NotificationActivities, WebhookAdapter
from services.worker.runs import RunActivities
from services.worker.slack_adapter import slack_adapter
from workflows import credentials
from workflows.release import UseCaseRelease

log = logging.getLogger("releasegate.worker")
HEARTBEAT_THROTTLE = timedelta(seconds=1)


def build_adapters(settings: Settings, http: httpx.AsyncClient) -> list[Adapter]:
    """The log always; an outbound webhook and Slack when configured."""
    adapters: list[Adapter] = [LogAdapter()]
    if settings.notify_webhook_url:
        adapters.append(WebhookAdapter(http, settings.notify_webhook_url, settings.hook_secret))
    if settings.slack_bot_token and settings.slack_signing_secret:
        adapters.append(slack_adapter(settings))
    return adapters


def release_activities(
    sessionmaker: async_sessionmaker[AsyncSession],
    adapters: list[Adapter],
    http: httpx.AsyncClient,
    hook_secret: str | None,
    hook_hosts: HookAllowList = NO_HOOKS,
    client: Client | None = None,
    checkpointing: Checkpointing | None = None,
) -> list[Callable[..., Any]]:
    """Every activity UseCaseRelease calls, wired to its dependencies (tests use this too).
    ``hook_hosts`` is ``RELEASEGATE_HOOK_ALLOWED_HOSTS``; by default no hook may be called.
    ``client``: the worker's Temporal client, to confirm how a change's run ended.
    ``checkpointing``: signs and publishes transparency-log checkpoints (None: no signing)."""
    # notices that would reach nobody but the log are logged by the store step: no activity
    only_log = [a for a in adapters if isinstance(a, LogAdapter)] if adapters else []
    notice_log = only_log[0] if len(only_log) == len(adapters) and only_log else None
    store = StoreActivities(sessionmaker, checkpointing, notice_log)
    activities: list[Callable[..., Any]] = [
        store.persist,
        store.append_ledger,
        store.sync_registry,
        NotificationActivities(adapters).notify,
        HookActivities(http, hook_secret, hook_hosts).call,
    ]
    if client is not None:
        activities.append(RunActivities(client).change_outcome)
    return activities


def workflow_runner() -> SandboxedWorkflowRunner:
    """The workflow sandbox, sharing ``workflows.credentials`` with the worker process: the
    sandbox imports workflow modules afresh, and the trusted keys the worker configured must be
    the ones its workflow code verifies with. ``cryptography`` passes through too: its Rust
    extension cannot be initialised a second time inside the sandbox (a refused signature
    re-imported there aborted the worker process instead of refusing the start)."""
    restrictions = SandboxRestrictions.default.with_passthrough_modules(
        "workflows.credentials", "cryptography", *pure_workflow_modules()
    )
    precompile_workflow()
    return SandboxedWorkflowRunner(restrictions=restrictions)


def precompile_workflow() -> bool:
    """Write ``workflows/release.py``'s bytecode once, explicitly. The sandbox imports it afresh
    for every run, and where writing bytecode is off (``PYTHONDONTWRITEBYTECODE``, set on this
    machine kind and in our image) each run compiled it from source again: about a tenth of
    the worker's CPU. A read-only install just keeps compiling (False)."""
    import compileall

    import workflows.release

    return bool(compileall.compile_file(workflows.release.__file__, quiet=2))


def pure_workflow_modules() -> list[str]:
    """The ``workflows`` modules the sandbox takes from the worker process instead of
    importing them again for every run: all but ``workflows.release``, the workflow itself,
    which the sandbox still loads afresh (and checks) per run. They are pure by the house
    rules (no I/O, clocks or randomness; no module state but constants), so sharing them
    shares nothing a run could change. Measured: importing them per run (pydantic building
    every model's schema again) was a fifth of the worker's CPU on the gated path, and each
    cached run held its own copy of every module (bench/gated_path.py, bench/cached_runs.py).
    """
    import workflows

    return sorted(
        f"workflows.{m.name}"
        for m in pkgutil.iter_modules(workflows.__path__)
        if m.name != "release"
    )


def build_worker(
    client: Client, settings: Settings, activities: list[Callable[..., Any]]
) -> Worker:
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[UseCaseRelease],
        activities=activities,
        workflow_runner=workflow_runner(),
        # RELEASEGATE_MAX_CACHED_WORKFLOWS: every live run stays in memory (measured by
        # bench/cached_runs.py), so a command never waits for its run's history to replay
        max_cached_workflows=settings.max_cached_workflows,
        # log lines from activities name their workflow and use case (JSON logs)
        interceptors=[observability.ActivityLogContext()],
        # a notice's progress (services/worker/notify.py) reaches Temporal within a second of
        # each post, not 30 s later: a worker killed mid-send leaves its retry little to redo
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
    )


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    engine = make_engine(settings.resolved_database_url)
    try:
        observability.setup_tracing(settings, "releasegate-worker")
        # Temporal's worker metrics for Prometheus, when RELEASEGATE_WORKER_METRICS_PORT is set
        # the trusted public keys that workflow code verifies commands with
        credentials.configure(command_keys.for_process(settings).keyring)
        client = await connect(settings, runtime=observability.worker_runtime(settings))
        http = httpx.AsyncClient(timeout=httpx.Timeout(20.0))
        sessionmaker = make_sessionmaker(engine)
        signing = checkpointing(settings, sessionmaker, http)
        activities = release_activities(
            sessionmaker,
            build_adapters(settings, http),
            http,
            settings.hook_secret,
            settings.hook_allow_list,
            client,
            signing,
        )
        async with http, build_worker(client, settings, activities), asyncio.TaskGroup() as tasks:
            if signing is not None:
                tasks.create_task(signing.run_timer(stop))
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
    observability.configure_logging(settings)

    async def _run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop)

    try:
        asyncio.run(_run())
    except ConfigError as exc:  # bad TLS files, or Temporal refused the connection
        print(f"releasegate worker: {exc}", file=sys.stderr)  # noqa: T201
        # Skip interpreter teardown: the SDK's Rust threads can still hold a thread state after
        # a failed connect and abort finalization (SIGABRT, temporalio/sdk-python#300), which
        # would hide this exit status. Nothing is left to clean up here.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(2)


if __name__ == "__main__":
    main()
