"""The approver console under a real uvicorn on loopback (the suite's dev server, worker and
SQLite store behind it), Debian's Chromium driven by Playwright, and axe-core from npm."""

from __future__ import annotations

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
from tests.harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ReleaseHarness,
    UvicornServer,
    loopback_socket,
    suite_settings,
)

ROOT = Path(__file__).resolve().parents[2]
AXE_VERSION = "4"
LAPTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


class LiveServer(UvicornServer):
    """The API (with its console) under uvicorn on a free loopback port, in the test loop."""

    def __init__(self, settings: Settings, sock: socket.socket) -> None:
        config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
        super().__init__(config, sock, settings.public_url)
        self.settings = settings


def console_settings(
    temporal_env: WorkflowEnvironment,
    release: ReleaseHarness,
    store_url: str,
    url: str,
    **extra: Any,
) -> Settings:
    return suite_settings(temporal_env, release.task_queue, store_url, RELEASEGATE_URL=url, **extra)


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
