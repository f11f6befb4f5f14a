"""Outage answers of the gateway against the real dev server: a run whose workflow task keeps
failing is open and stuck (503 with its real status), never "closed"; a run that really ended
is closed with its status; the poller check is cached, not paid per command."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from services.commands.errors import CommandRefused, Outage, Unavailable
from services.commands.gateway import POLLERS_CACHE_S, UseCaseGateway, WorkerWatch
from services.settings import Settings
from workflows.model import Cancel, CommandName, Refusal

# generous: the point is "seconds, not the 15 s RPC timeout"
FAST_S = 6.0


@workflow.defn(name="UseCaseRelease")
class BrokenRelease:
    """Stands in for UseCaseRelease with a bug: the cancel handler raises a bare exception,
    which fails the workflow task (and every retry of it) instead of the Update."""

    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self, end: str) -> None:
        if end == "fail":
            raise ApplicationError("the run gave up", non_retryable=True)
        await workflow.wait_condition(lambda: self.done or end == "complete")

    @workflow.update(name=CommandName.CANCEL.value)
    async def cancel(self, _: Any) -> None:
        raise RuntimeError("a bug in the workflow code")


@pytest.fixture
async def broken(temporal_env: WorkflowEnvironment) -> AsyncIterator[UseCaseGateway]:
    task_queue = f"broken-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        TEMPORAL_ADDRESS=temporal_env.client.service_client.config.target_host,
        RELEASEGATE_TASK_QUEUE=task_queue,
    )
    async with Worker(
        temporal_env.client,
        task_queue=task_queue,
        workflows=[BrokenRelease],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        yield UseCaseGateway(temporal_env.client, settings)


async def _start(gateway: UseCaseGateway, end: str) -> str:
    wid = f"usecase-broken-{uuid.uuid4().hex[:8]}"
    await gateway.client.start_workflow(
        "UseCaseRelease", end, id=wid, task_queue=gateway.settings.task_queue
    )
    return wid


async def test_failing_workflow_task_is_503_with_the_real_status(broken: UseCaseGateway) -> None:
    wid = await _start(broken, "wait")
    started = time.monotonic()
    with pytest.raises(Unavailable) as caught:
        await broken.execute(wid, CommandName.CANCEL, Cancel(actor="dana"))
    elapsed = time.monotonic() - started

    assert caught.value.outage is Outage.WORKFLOW_TASK_FAILING, caught.value.detail
    assert caught.value.facts["run_status"] == "RUNNING"
    assert caught.value.facts["workflow_task_attempt"] >= 2
    assert elapsed < FAST_S, elapsed
    # and the run really is open
    description = await broken.client.get_workflow_handle(wid).describe()
    assert description.status is WorkflowExecutionStatus.RUNNING


@pytest.mark.parametrize(
    ("end", "status"), [("complete", "COMPLETED"), ("fail", "FAILED")], ids=["completed", "failed"]
)
async def test_an_ended_run_is_closed_with_its_status(
    broken: UseCaseGateway, end: str, status: str
) -> None:
    wid = await _start(broken, end)
    with contextlib.suppress(WorkflowFailureError):
        await broken.client.get_workflow_handle(wid).result()
    with pytest.raises(CommandRefused) as caught:
        await broken.execute(wid, CommandName.CANCEL, Cancel(actor="dana"))
    assert caught.value.refusal is Refusal.RUN_CLOSED
    assert status in caught.value.detail


class _CountingService:
    def __init__(self, pollers: list[Any]) -> None:
        self.calls = 0
        self.pollers = pollers

    async def describe_task_queue(self, *_: Any, **__: Any) -> Any:
        self.calls += 1
        return type("Response", (), {"pollers": self.pollers})()


class _Client:
    namespace = "default"

    def __init__(self, service: _CountingService) -> None:
        self.workflow_service = service


async def test_the_poller_answer_is_cached() -> None:
    now = [0.0]
    service = _CountingService([])
    watch = WorkerWatch(_Client(service), "q", clock=lambda: now[0])  # type: ignore[arg-type]
    assert watch.last_known is None
    assert await watch.polled() is False
    assert await watch.polled() is False
    assert service.calls == 1
    now[0] += POLLERS_CACHE_S
    assert await watch.polled() is False
    assert service.calls == 2
    assert watch.last_known is False
