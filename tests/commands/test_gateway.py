"""How the gateway turns Temporal's answers into the command layer's typed errors."""

from __future__ import annotations

import pytest
from temporalio.client import (
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from services.commands.errors import (
    CommandError,
    CommandRefused,
    Outage,
    RunNotFound,
    Unavailable,
    WorkflowRejected,
)
from services.commands.gateway import UPDATES, _call
from workflows.model import CommandName, Refusal
from workflows.release import UseCaseRelease


async def raising(exc: BaseException) -> None:
    raise exc


async def mapped(exc: BaseException) -> CommandError:
    with pytest.raises(CommandError) as caught:
        await _call(raising(exc))
    return caught.value


@pytest.mark.parametrize("refusal", list(Refusal))
async def test_a_workflow_refusal_keeps_its_refusal(refusal: Refusal) -> None:
    err = await mapped(WorkflowUpdateFailedError(ApplicationError("no", type=refusal.value)))
    assert isinstance(err, CommandRefused)
    assert err.refusal == refusal
    assert err.detail == "no"
    assert err.code == refusal.value.replace("_", "-")


async def test_a_failure_outside_the_refusals_is_rejected_not_crashed() -> None:
    err = await mapped(WorkflowUpdateFailedError(ApplicationError("boom", type="SomethingElse")))
    assert isinstance(err, WorkflowRejected)
    assert err.code == "refused"


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (
            RPCError("workflow execution already completed", RPCStatusCode.NOT_FOUND, b""),
            CommandRefused,
            "run-closed",
        ),
        (RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b""), RunNotFound, "not-found"),
        (RPCError("closing", RPCStatusCode.FAILED_PRECONDITION, b""), CommandRefused, "run-closed"),
        (RPCError("down", RPCStatusCode.UNAVAILABLE, b""), Unavailable, "temporal-unavailable"),
        (WorkflowUpdateRPCTimeoutOrCancelledError(), Unavailable, "temporal-unavailable"),
        (WorkflowQueryFailedError("no worker"), Unavailable, "query-failed"),
        (RuntimeError("Failed client connect: refused"), Unavailable, "temporal-unavailable"),
    ],
)
async def test_temporal_errors_map_to_typed_errors(
    exc: BaseException, kind: type[CommandError], code: str
) -> None:
    err = await mapped(exc)
    assert isinstance(err, kind)
    assert err.code == code


async def test_an_unrelated_runtime_error_is_not_disguised() -> None:
    with pytest.raises(RuntimeError, match="bug"):
        await _call(raising(RuntimeError("a bug")))


def test_unavailable_says_which_outage() -> None:
    assert Unavailable(Outage.QUERY_FAILED, "x").outage == Outage.QUERY_FAILED


def test_every_command_is_an_update_of_the_same_name() -> None:
    assert set(UPDATES) == set(CommandName)
    for command, method in UPDATES.items():
        assert method is getattr(UseCaseRelease, command.value)
