"""The command layer's door to Temporal: start runs, send Updates, read state by Query.

It turns Temporal's errors into the command layer's typed errors and keeps a small cache of each
run's pinned facts (roster, tier, policy hash) for the fast authorization pre-check. Workflow
handlers are addressed by method reference, one per ``CommandName``.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, TypeVar

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from services import observability
from services.commands.errors import (
    CommandRefused,
    KeyConflict,
    Outage,
    RunNotFound,
    Unavailable,
    WorkflowRejected,
)
from services.commands.start import (
    StartPlan,
    facts_memo,
    search_attributes,
    static_details,
    static_summary,
)
from services.settings import Settings
from workflows.model import CommandName, HistoryEvent, Refusal, Role, UseCaseView
from workflows.release import UseCaseRelease

RPC_TIMEOUT = timedelta(seconds=15)
FACTS_CACHE_SIZE = 10_000
WORKFLOW_TYPE = "UseCaseRelease"
T = TypeVar("T")

# each command is the workflow's Update of the same name
UPDATES: Final[dict[CommandName, Any]] = {
    CommandName.COMPLETE_STAGE: UseCaseRelease.complete_stage,
    CommandName.ADD_EVIDENCE: UseCaseRelease.add_evidence,
    CommandName.DECIDE: UseCaseRelease.decide,
    CommandName.REOPEN_GATE: UseCaseRelease.reopen_gate,
    CommandName.CANCEL: UseCaseRelease.cancel,
    CommandName.REPORT_INCIDENT: UseCaseRelease.report_incident,
    CommandName.SUSPEND: UseCaseRelease.suspend,
    CommandName.RESUME: UseCaseRelease.resume,
    CommandName.RAISE_CHANGE: UseCaseRelease.raise_change,
    CommandName.RETIRE: UseCaseRelease.retire,
}
# Temporal's answers that mean "cannot be reached right now" rather than "no"
UNAVAILABLE_STATUSES = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.CANCELLED,
        RPCStatusCode.UNKNOWN,
        RPCStatusCode.RESOURCE_EXHAUSTED,
    }
)


@dataclass(frozen=True)
class RunFacts:
    """What a run pinned at start and never changes: safe to cache for pre-checks."""

    workflow_id: str
    roster: dict[Role, list[str]]
    tier: str
    policy_sha256: str
    request_sha256: str
    change_raised_by: str | None = None

    @classmethod
    def from_memo(cls, workflow_id: str, raw: dict[str, Any]) -> RunFacts:
        return cls(
            workflow_id=workflow_id,
            roster={Role(k): list(v) for k, v in raw.get("roster", {}).items()},
            tier=raw.get("tier", ""),
            policy_sha256=raw.get("policy_sha256", ""),
            request_sha256=raw.get("request_sha256", ""),
            change_raised_by=raw.get("change_raised_by"),
        )


def _unreachable(exc: BaseException | None = None) -> Unavailable:
    detail = f"Temporal is unreachable: {exc}" if exc is not None else "Temporal is unreachable"
    return Unavailable(Outage.UNREACHABLE, detail)


def _connect_failed(exc: RuntimeError) -> Unavailable:
    """A lazy client that cannot dial raises RuntimeError('Failed client connect: …')."""
    if "connect" not in str(exc).lower():
        raise exc
    return _unreachable()


def _refusal_of(exc: WorkflowUpdateFailedError) -> CommandRefused | WorkflowRejected:
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.type:
        try:
            return CommandRefused(Refusal(cause.type), cause.message)
        except ValueError:
            pass
    return WorkflowRejected(f"the workflow refused the command: {cause}")


def _rpc_error(exc: RPCError) -> CommandRefused | RunNotFound | Unavailable:
    if exc.status == RPCStatusCode.NOT_FOUND:
        if "completed" in exc.message or "closed" in exc.message:
            return CommandRefused(Refusal.RUN_CLOSED, "the run is closed")
        return RunNotFound("no such use case")
    if exc.status == RPCStatusCode.FAILED_PRECONDITION:
        return CommandRefused(Refusal.RUN_CLOSED, exc.message)
    return _unreachable(exc)


async def _call(awaitable: Awaitable[T]) -> T:
    """One Update or Query; Temporal's errors become the command layer's."""
    try:
        return await awaitable
    except WorkflowUpdateFailedError as exc:
        raise _refusal_of(exc) from None
    except WorkflowQueryFailedError as exc:
        raise Unavailable(Outage.QUERY_FAILED, f"the workflow could not answer: {exc}") from None
    except WorkflowUpdateRPCTimeoutOrCancelledError as exc:
        raise _unreachable(exc) from None
    except RPCError as exc:
        raise _rpc_error(exc) from None
    except RuntimeError as exc:
        raise _connect_failed(exc) from None


class UseCaseGateway:
    """Temporal access for one process (one client, one facts cache)."""

    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self._facts: OrderedDict[str, RunFacts] = OrderedDict()
        self._ui_prefix = settings.workflow_ui_url("").rstrip("/")

    # ------------------------------------------------------------------ start

    async def start(self, plan: StartPlan) -> tuple[UseCaseView, bool]:
        """Start a run; returns (state, created). Same key + same request → the same run."""
        wid = plan.workflow_id
        observability.bind_workflow(wid)
        try:
            handle = await self._start_workflow(plan)
        except WorkflowAlreadyStartedError:
            return await self._existing(plan), False
        except RPCError as exc:
            if exc.status in UNAVAILABLE_STATUSES:
                raise _unreachable(exc) from None
            raise Unavailable(
                Outage.REFUSED_START, f"Temporal refused the start: {exc.message}"
            ) from None
        except RuntimeError as exc:
            raise _connect_failed(exc) from None
        self._remember(
            RunFacts(
                wid,
                plan.roster,
                plan.input.risk_tier.value,
                plan.input.policy.sha256,
                plan.request_sha256,
            )
        )
        return await self._query_state(handle), True

    async def _start_workflow(self, plan: StartPlan) -> WorkflowHandle[Any, Any]:
        inp = plan.input
        return await self.client.start_workflow(
            UseCaseRelease.run,
            inp,
            id=plan.workflow_id,
            task_queue=self.settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=search_attributes(inp),
            memo={"facts": facts_memo(plan)},
            static_summary=static_summary(inp),
            static_details=static_details(inp),
            rpc_timeout=RPC_TIMEOUT,
        )

    async def _existing(self, plan: StartPlan) -> UseCaseView:
        """The run a repeated start names: the same one, or a conflict."""
        existing = await self.facts(plan.workflow_id)
        if existing.request_sha256 != plan.request_sha256:
            raise KeyConflict(
                f"use case '{plan.input.key}' already exists with a different definition"
            )
        return await self.state(plan.workflow_id)

    # ------------------------------------------------------------------ reads

    async def facts(self, wid: str) -> RunFacts:
        """The run's pinned facts (memo), cached; ``RunNotFound`` for anything not a run."""
        observability.bind_workflow(wid)
        cached = self._facts.get(wid)
        if cached is not None:
            self._facts.move_to_end(wid)
            return cached
        handle = self.client.get_workflow_handle(wid)
        try:
            desc = await handle.describe(rpc_timeout=RPC_TIMEOUT)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise RunNotFound(f"no use case '{wid}'") from None
            raise _unreachable(exc) from None
        except RuntimeError as exc:
            raise _connect_failed(exc) from None
        if desc.workflow_type != WORKFLOW_TYPE:
            raise RunNotFound(f"no use case '{wid}'")
        raw: dict[str, Any] = await desc.memo_value("facts", default={})
        facts = RunFacts.from_memo(wid, raw)
        self._remember(facts)
        return facts

    def _remember(self, facts: RunFacts) -> None:
        self._facts[facts.workflow_id] = facts
        while len(self._facts) > FACTS_CACHE_SIZE:
            self._facts.popitem(last=False)

    async def state(self, wid: str) -> UseCaseView:
        await self.facts(wid)  # RunNotFound for unknown ids without waking a worker
        return await self._query_state(self.client.get_workflow_handle(wid))

    async def history(self, wid: str) -> list[HistoryEvent]:
        await self.facts(wid)
        handle = self.client.get_workflow_handle(wid)
        return await _call(handle.query(UseCaseRelease.events, rpc_timeout=RPC_TIMEOUT))

    async def _query_state(self, handle: WorkflowHandle[Any, Any]) -> UseCaseView:
        view: UseCaseView = await _call(handle.query(UseCaseRelease.state, rpc_timeout=RPC_TIMEOUT))
        return self.decorate(view)

    def decorate(self, view: UseCaseView) -> UseCaseView:
        view.temporal_ui_url = f"{self._ui_prefix}/{view.id}"
        return view

    # ------------------------------------------------------------------ commands

    async def execute(
        self, wid: str, command: CommandName, arg: Any, *, update_id: str | None = None
    ) -> UseCaseView:
        """Send ``command`` as its Update and wait for the run's state after it."""
        await self.facts(wid)
        handle = self.client.get_workflow_handle(wid)
        try:
            view: UseCaseView = await _call(
                handle.execute_update(
                    UPDATES[command],
                    arg,
                    id=update_id or str(uuid.uuid4()),
                    rpc_timeout=RPC_TIMEOUT,
                )
            )
        except RunNotFound:
            # the run exists (its facts were read), so it has closed; Temporal's wording for
            # that depends on how far the close had got when the Update arrived
            raise CommandRefused(Refusal.RUN_CLOSED, "the run is closed") from None
        return self.decorate(view)

    async def ping(self) -> None:
        await self.client.workflow_service.get_system_info(
            GetSystemInfoRequest(), timeout=timedelta(seconds=3)
        )


__all__ = ["UPDATES", "RunFacts", "UseCaseGateway"]
