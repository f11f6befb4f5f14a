"""Signing every command a front door sends to a run, as a Temporal client interceptor.

The API's (and Slack bot's) Temporal client carries this interceptor: each start, Update and
Signal whose argument has a ``credential`` field leaves signed for exactly that run, command
and update id (``workflows.credentials``). Putting it on the client, not in each call, means no
path of the command layer can forget it; a client without it (the Temporal CLI, any other SDK
client) sends commands the workflow refuses.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from temporalio.client import (
    Interceptor,
    OutboundInterceptor,
    SignalWorkflowInput,
    StartWorkflowInput,
    StartWorkflowUpdateInput,
    WorkflowHandle,
    WorkflowUpdateHandle,
)

from workflows.credentials import START, Signer

Clock = Callable[[], Awaitable[datetime]]


async def _wall_clock() -> datetime:
    return datetime.now(UTC)


class _Outbound(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, owner: SigningInterceptor) -> None:
        super().__init__(next)
        self.owner = owner

    async def _signed(self, workflow_id: str, command: str, arg: Any, scope: str) -> Any:
        if not isinstance(arg, BaseModel) or "credential" not in type(arg).model_fields:
            return arg
        unsigned = arg.model_copy(update={"credential": None})
        now = await self.owner.clock()
        credential = self.owner.signer.sign(workflow_id, command, unsigned, scope=scope, now=now)
        return arg.model_copy(update={"credential": credential})

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        if input.args:
            first = await self._signed(input.id, START, input.args[0], input.id)
            input.args = [first, *input.args[1:]]
        return await super().start_workflow(input)

    async def start_workflow_update(
        self, input: StartWorkflowUpdateInput
    ) -> WorkflowUpdateHandle[Any]:
        if input.args:
            if not input.update_id:
                input.update_id = str(uuid.uuid4())
            first = await self._signed(input.id, input.update, input.args[0], input.update_id)
            input.args = [first, *input.args[1:]]
        return await super().start_workflow_update(input)

    async def signal_workflow(self, input: SignalWorkflowInput) -> None:
        if input.args:
            scope = f"signal:{uuid.uuid4()}"
            first = await self._signed(input.id, input.signal, input.args[0], scope)
            input.args = [first, *input.args[1:]]
        await super().signal_workflow(input)


class SigningInterceptor(Interceptor):
    """``clock``: the time credentials are issued at (the wall clock; a test server that skips
    time passes its own)."""

    def __init__(self, signer: Signer, clock: Clock = _wall_clock) -> None:
        self.signer = signer
        self.clock = clock

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Outbound(next, self)


__all__ = ["SigningInterceptor"]
