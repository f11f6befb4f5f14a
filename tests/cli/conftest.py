"""A running stack for the CLI: the API served by uvicorn in its own process (the app factory,
as in production) against the session's Temporal dev server, worker and SQLite store.

The CLI is the installed ``releasegate`` script, run as a subprocess per invocation, so every
test sees exactly what a shell user sees: stdout, stderr and the exit code.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from tests.harness import ReleaseHarness

ROOT = Path(__file__).resolve().parents[2]
RELEASEGATE = Path(sys.executable).parent / "releasegate"
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Cli:
    """Runs ``releasegate`` with the API URL and a person's dev token in its environment."""

    url: str
    home: Path

    def env(self, person: str | None, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASEGATE_")}
        env.update(
            {
                "RELEASEGATE_URL": self.url,
                # a config file of the developer's must not leak into the tests
                "HOME": str(self.home),
                "XDG_CONFIG_HOME": str(self.home / ".config"),
                "COLUMNS": "200",
                "NO_COLOR": "1",
            }
        )
        if person is not None:
            env["RELEASEGATE_TOKEN"] = f"dev-{person}"
        env.update(extra)
        return env

    async def spawn(
        self, *args: str, person: str | None = "dana", **env: str
    ) -> asyncio.subprocess.Process:
        if not RELEASEGATE.exists():
            pytest.fail(f"{RELEASEGATE} is missing: install the project (pip install -e .)")
        return await asyncio.create_subprocess_exec(
            str(RELEASEGATE),
            *args,
            env=self.env(person, **env),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    @staticmethod
    async def finish(process: asyncio.subprocess.Process, timeout: float = 120.0) -> Result:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
        assert process.returncode is not None
        return Result(process.returncode, out.decode(), err.decode())

    async def __call__(self, *args: str, person: str | None = "dana", **env: str) -> Result:
        return await self.finish(await self.spawn(*args, person=person, **env))


@pytest.fixture(scope="session")
async def api_url(
    temporal_env: WorkflowEnvironment,
    release: ReleaseHarness,
    store_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[str]:
    """``uvicorn --factory services.api.app:create_app`` on a free port, until the session ends."""
    port = free_port()
    data_dir = tmp_path_factory.mktemp("cli-api")
    log = (data_dir / "api.log").open("wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASEGATE_")}
    env.update(
        {
            # the suite's command keys (tests/conftest.py): the API signs what the worker trusts
            "RELEASEGATE_COMMAND_KEYS": os.environ["RELEASEGATE_COMMAND_KEYS"],
            "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
            "RELEASEGATE_TASK_QUEUE": release.task_queue,
            "RELEASEGATE_DATABASE_URL": store_url,
            "RELEASEGATE_DATA_DIR": str(data_dir),
        }
    )
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "services.api.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"API exited: {(data_dir / 'api.log').read_text()}")
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"API not ready: {(data_dir / 'api.log').read_text()}")
                await asyncio.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        log.close()


@pytest.fixture
def cli(api_url: str, tmp_path: Path) -> Cli:
    return Cli(url=api_url, home=tmp_path / "home")
