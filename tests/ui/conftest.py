"""The approver console under a real uvicorn on loopback (the suite's dev server, worker and
SQLite store behind it), Debian's Chromium driven by Playwright, and axe-core from npm."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from temporalio.testing import WorkflowEnvironment

from services.api.app import create_app
from services.settings import Settings
from tests.harness import ReleaseHarness

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# as the Temporal UI check launches it (tests/e2e/test_temporal_ui.py)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE_VERSION = "4"
LAPTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


class LiveServer:
    """The API (with its console) under uvicorn on a free loopback port, in the test loop."""

    def __init__(self, settings: Settings, sock: socket.socket) -> None:
        self.sock = sock
        self.url = settings.public_url
        self.settings = settings
        config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LiveServer:
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


def loopback_socket() -> tuple[socket.socket, str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


def console_settings(
    temporal_env: WorkflowEnvironment,
    release: ReleaseHarness,
    store_url: str,
    url: str,
    **extra: Any,
) -> Settings:
    return Settings(
        TEMPORAL_ADDRESS=temporal_env.client.service_client.config.target_host,
        RELEASEGATE_TASK_QUEUE=release.task_queue,
        RELEASEGATE_DATABASE_URL=store_url,
        RELEASEGATE_URL=url,
        **extra,
    )


@pytest.fixture(scope="session")
async def console(
    temporal_env: WorkflowEnvironment, release: ReleaseHarness, store_url: str
) -> AsyncIterator[LiveServer]:
    sock, url = loopback_socket()
    settings = console_settings(temporal_env, release, store_url, url)
    async with LiveServer(settings, sock) as server:
        yield server


@pytest.fixture
async def rest(console: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """The same server's REST API (bearer dev tokens), for setting scenes and checking."""
    async with httpx.AsyncClient(base_url=console.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make system-deps)")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(viewport=LAPTOP)
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    return await context.new_page()


def _axe_cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "releasegate-tests" / f"axe-core-{AXE_VERSION}"


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core from the npm registry, installed once into a cache directory (never copied into
    the repository). No npm or no registry fails the test: an accessibility check that did not
    run must not pass."""
    prefix = _axe_cache()
    script = prefix / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is missing: the accessibility check installs axe-core with it")
        prefix.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(  # noqa: S603
            [
                npm,
                "install",
                "--prefix",
                str(prefix),
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                f"axe-core@{AXE_VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0 or not script.exists():
            pytest.fail(f"npm install axe-core failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return script.read_text()
