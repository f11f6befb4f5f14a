"""JSON logs: every line parses and names the use case and workflow it is about, in the API
(bound by the gateway) and in the worker's activities (bound by an interceptor)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from services import observability
from services.settings import PROJECT_ROOT, Settings
from services.store.db import make_engine, make_sessionmaker
from services.temporal import connect
from services.worker.main import build_worker, release_activities
from services.worker.notify import LogAdapter
from tests.api.test_use_cases import create, walk
from tests.harness import HOOK_SECRET, suite_settings
from workflows.ids import run_key


@pytest.fixture
def json_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Capture the releasegate loggers through the JSON formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(observability.JsonFormatter())
    logger = logging.getLogger("releasegate")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
async def logged_api(
    make_api: Callable[..., Any], temporal_env: WorkflowEnvironment, store_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The API plus a worker built by build_worker (with its log-context interceptor)."""
    queue = f"logs-{uuid.uuid4().hex[:8]}"
    settings = suite_settings(temporal_env, queue, store_url)
    engine = make_engine(store_url)
    client = await connect(settings)
    async with httpx.AsyncClient() as http:
        activities = release_activities(
            make_sessionmaker(engine), [LogAdapter()], http, HOOK_SECRET
        )
        async with build_worker(client, settings, activities):
            yield await make_api(RELEASEGATE_TASK_QUEUE=queue)
    await engine.dispose()


async def test_json_lines_carry_the_workflow_id(
    logged_api: httpx.AsyncClient, json_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    uc = await create(logged_api, "low")
    await walk(logged_api, uc, "ops_handoff")
    wid, key = uc["id"], uc["key"]

    lines = json_lines()
    assert lines
    for line in lines:
        assert {"ts", "level", "logger", "message"} <= set(line)

    # the API's decision line: bound by the gateway for this request
    decisions = [x for x in lines if x["logger"] == "releasegate.decisions"]
    assert decisions, lines
    assert decisions[0]["workflow_id"] == wid
    assert decisions[0]["use_case"] == key
    assert decisions[0]["gate"] == "risk_signoff"
    assert decisions[0]["outcome"] == "accepted"
    assert decisions[0]["gate_wait_seconds"] >= 0

    # the worker's notification activity (it runs after the update answered): bound by the
    # activity interceptor
    for _ in range(200):
        notices = [x for x in json_lines() if x["logger"] == "releasegate.notify"]
        if notices:
            break
        await asyncio.sleep(0.05)
    assert notices, json_lines()
    for line in notices:
        assert line["workflow_id"] == wid
        assert line["use_case"] == key
        assert line["activity"]


def test_formatter_reads_temporal_extras_and_exceptions() -> None:
    formatter = observability.JsonFormatter()
    record = logging.makeLogRecord(
        {
            "name": "temporalio.activity",
            "levelno": logging.WARNING,
            "levelname": "WARNING",
            "msg": "retrying %s",
            "args": ("hook",),
            "temporal_activity": {"workflow_id": "usecase-kyc-bot-change-2", "attempt": 2},
        }
    )
    doc = json.loads(formatter.format(record))
    assert doc["message"] == "retrying hook"
    assert doc["workflow_id"] == "usecase-kyc-bot-change-2"
    assert doc["use_case"] == "kyc-bot"

    try:
        raise ValueError("boom")
    except ValueError:
        failing = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    with observability.log_context(workflow_id="usecase-abc", use_case="abc"):
        doc = json.loads(formatter.format(failing))
    assert "ValueError: boom" in doc["exception"]
    assert doc["use_case"] == "abc"


def test_use_case_key_from_workflow_ids() -> None:
    # the log context names the use case through workflows.ids, as every other reader does
    assert run_key("usecase-kyc-onboarding") == "kyc-onboarding"
    assert run_key("usecase-kyc-onboarding-change-12") == "kyc-onboarding"
    assert run_key("something-else") is None


def test_log_format_json_in_a_process() -> None:
    """RELEASEGATE_LOG_FORMAT=json: configure_logging turns the process's output into JSON."""
    code = (
        "import logging\n"
        "from services import observability\n"
        "from services.settings import Settings\n"
        "observability.configure_logging(Settings(RELEASEGATE_LOG_FORMAT='json'))\n"
        "logging.getLogger('releasegate.test')"
        ".info('hello', extra={'workflow_id': 'usecase-ab1'})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    line = json.loads(done.stderr.strip().splitlines()[-1])
    assert line["message"] == "hello"
    assert line["workflow_id"] == "usecase-ab1"
    assert line["use_case"] == "ab1"
    assert line["level"] == "info"


def test_log_format_is_validated() -> None:
    with pytest.raises(ValueError, match="RELEASEGATE_LOG_FORMAT"):
        Settings(RELEASEGATE_LOG_FORMAT="xml")
