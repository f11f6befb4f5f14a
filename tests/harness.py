"""A worker running UseCaseRelease with the real activities, for workflow and API tests; the
API in-process or under uvicorn, and the settings, policies and workers the tests build them
from."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx
import uvicorn
import yaml
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from services.api.app import create_app
from services.settings import Settings
from services.worker.main import workflow_runner
from workflows.model import UseCaseInput
from workflows.release import UseCaseRelease

ROOT = Path(__file__).resolve().parents[1]
HOOK_SECRET = "test-hook-secret"
# Debian's Chromium, as the browser tests launch it (tests/ui, tests/e2e/test_temporal_ui.py)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# RELEASEGATE_HOOK_ALLOWED_HOSTS of the test workers: the hook receivers listen on loopback
HOOK_ALLOWED_HOSTS = "127.0.0.1"


@dataclass
class ReleaseHarness:
    client: Client
    task_queue: str
    sessionmaker: async_sessionmaker[AsyncSession]

    async def start(self, inp: UseCaseInput) -> WorkflowHandle:
        return await self.client.start_workflow(
            UseCaseRelease.run,
            inp,
            id=f"usecase-{inp.key}",
            task_queue=self.task_queue,
            static_summary=inp.title,
        )


def release_worker(client: Client, task_queue: str, activities: Sequence[Any]) -> Worker:
    """A worker of UseCaseRelease on ``task_queue``, with the worker process's sandbox."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[UseCaseRelease],
        workflow_runner=workflow_runner(),
        activities=activities,
    )


def suite_settings(
    temporal_env: WorkflowEnvironment, task_queue: str, store_url: str, **extra: Any
) -> Settings:
    """Settings of an API or worker on the suite's Temporal server and store."""
    return Settings(
        TEMPORAL_ADDRESS=temporal_env.client.service_client.config.target_host,
        RELEASEGATE_TASK_QUEUE=task_queue,
        RELEASEGATE_DATABASE_URL=store_url,
        **extra,
    )


def policy_variant(directory: Path, version: str, edit: Callable[[dict[str, Any]], None]) -> Path:
    """``config/policy.yaml`` as ``edit`` changes it, saved as version ``version`` into
    ``directory`` (a run pins whatever policy the API that starts it loaded)."""
    doc = yaml.safe_load((ROOT / "config" / "policy.yaml").read_text())
    doc["version"] = version
    edit(doc)
    path = directory / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@asynccontextmanager
async def api_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API in-process (its lifespan run), an httpx client over ASGI."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client,
    ):
        yield client


def loopback_socket() -> tuple[socket.socket, str]:
    """A socket bound to a free loopback port, and its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


class UvicornServer:
    """An ASGI app under a real uvicorn on ``sock``, served in the test's loop."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket, url: str) -> None:
        self.sock = sock
        self.url = url
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        for _ in range(200):
            if self.server.started:
                return self
            await asyncio.sleep(0.05)
        raise AssertionError("uvicorn did not start")

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        assert self.task is not None
        await self.task
        self.sock.close()


async def serve_loopback(app: web.Application) -> tuple[web.AppRunner, str]:
    """An aiohttp app (a test double) served on a free loopback port: its runner (clean it up
    at the end) and its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"
