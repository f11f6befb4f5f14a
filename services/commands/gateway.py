"""The command layer's door to Temporal: start runs, send Updates, read state by Query.

It turns Temporal's errors into the command layer's typed errors and keeps a small cache of each
run's pinned facts (roster, tier, policy hash) for the fast authorization pre-check. Workflow
handlers are addressed by method reference, one per ``CommandName``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, GetSystemInfoRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
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
    CommandError,
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
from workflows import ids
from workflows.model import CommandName, HistoryEvent, Refusal, Role, UseCaseView
from workflows.release import UseCaseRelease

RPC_TIMEOUT = timedelta(seconds=15)
# An Update or Query that answers within FIRST_WAIT costs nothing extra. One that does not is
# watched every PROBE_EVERY: is a worker polling, is the run's workflow task failing? Either
# answer ends the wait at once instead of after RPC_TIMEOUT.
FIRST_WAIT_S = 1.0
PROBE_EVERY_S = 1.0
PROBE_RPC_TIMEOUT = timedelta(seconds=3)
# How long a poller answer is reused, so a burst of slow commands costs one DescribeTaskQueue.
POLLERS_CACHE_S = 2.0
# Temporal keeps listing a poller for minutes after its worker is gone; a live worker renews its
# long poll about once a minute, so one not seen for longer than this is gone.
POLLER_FRESH_S = 75.0
# A workflow task on its second attempt has failed at least once: the run cannot move.
FAILING_TASK_ATTEMPT = 2
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
    CommandName.SET_DEPUTIES: UseCaseRelease.set_deputies,
    CommandName.OVERRIDE_GATE: UseCaseRelease.override_gate,
    CommandName.RESOLVE_INCIDENT: UseCaseRelease.resolve_incident,
    CommandName.REPORT_RUNTIME: UseCaseRelease.report_runtime,
    CommandName.REQUEST_WAIVER: UseCaseRelease.request_waiver,
    CommandName.DECIDE_WAIVER: UseCaseRelease.decide_waiver,
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
    # deputies per owner role: named at start, kept current by the run (memo "deputies")
    deputies: dict[Role, list[str]] = field(default_factory=dict)

    @classmethod
    def from_memo(
        cls, workflow_id: str, raw: dict[str, Any], deputies: dict[str, Any] | None = None
    ) -> RunFacts:
        named = deputies if deputies is not None else raw.get("deputies") or {}
        return cls(
            workflow_id=workflow_id,
            roster={Role(k): list(v) for k, v in raw.get("roster", {}).items()},
            tier=raw.get("tier", ""),
            policy_sha256=raw.get("policy_sha256", ""),
            request_sha256=raw.get("request_sha256", ""),
            change_raised_by=raw.get("change_raised_by"),
            deputies={Role(k): list(v) for k, v in named.items()},
        )

    @property
    def people(self) -> dict[Role, list[str]]:
        """Everyone the run names: its roster and its deputies (who may read it)."""
        out = {role: list(people) for role, people in self.roster.items()}
        for role, people in self.deputies.items():
            out[role] = sorted({*out.get(role, []), *people})
        return out


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
            refusal = Refusal(cause.type)
        except ValueError:
            pass
        else:
            return CommandRefused(refusal, cause.message, retry_after=_retry_after(cause))
    return WorkflowRejected(f"the workflow refused the command: {cause}")


def _retry_after(cause: ApplicationError) -> int | None:
    """The seconds a rate-limited refusal names (its details' ``retry_after``), if any."""
    for detail in cause.details:
        seconds = detail.get("retry_after") if isinstance(detail, dict) else None
        if isinstance(seconds, int) and seconds > 0:
            return seconds
    return None


class _ServerSaysClosed(CommandRefused):
    """Temporal (not the workflow) answered as if the run were closed: worth checking, since a
    run whose workflow task fails is open, and only stuck."""

    def __init__(self, detail: str) -> None:
        super().__init__(Refusal.RUN_CLOSED, detail)


def _rpc_error(exc: RPCError) -> CommandRefused | RunNotFound | Unavailable:
    if exc.status == RPCStatusCode.NOT_FOUND:
        if "completed" in exc.message or "closed" in exc.message:
            return _ServerSaysClosed("the run is closed")
        return RunNotFound("no such use case")
    if exc.status == RPCStatusCode.FAILED_PRECONDITION:
        return _ServerSaysClosed(exc.message)
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


class WorkerWatch:
    """Whether a worker polls the task queue (DescribeTaskQueue's workflow pollers), with the
    answer reused for ``POLLERS_CACHE_S``. ``None`` means Temporal could not say."""

    def __init__(
        self, client: Client, task_queue: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.client = client
        self.task_queue = task_queue
        self._clock = clock
        self._answer: bool | None = None
        self._checked_at = float("-inf")

    @property
    def last_known(self) -> bool | None:
        """The newest answer, however old (``None`` before the first check)."""
        return self._answer

    async def polled(self) -> bool | None:
        if self._clock() - self._checked_at < POLLERS_CACHE_S:
            return self._answer
        try:
            answer = await self._ask()
        except (RPCError, RuntimeError):
            return None  # Temporal itself is the problem; its own checks report that
        self._answer, self._checked_at = answer, self._clock()
        return answer

    async def _ask(self) -> bool:
        response = await self.client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self.client.namespace,
                task_queue=TaskQueue(
                    name=self.task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL
                ),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            ),
            timeout=PROBE_RPC_TIMEOUT,
        )
        now = datetime.now(UTC)
        return any(
            (now - p.last_access_time.ToDatetime(UTC)).total_seconds() < POLLER_FRESH_S
            for p in response.pollers
        )

    def absent(self, consequence: str) -> Unavailable:
        return Unavailable(
            Outage.NO_WORKER,
            f"no worker polls task queue '{self.task_queue}': {consequence}",
            task_queue=self.task_queue,
        )


# what a 503 no-worker means for the request, by where it stopped
NOT_SENT = "the command was not sent"
SENT = (
    "the command was sent and may still take effect when a worker returns; repeat it with the "
    "same Idempotency-Key to learn its outcome"
)
NOT_READ = "nothing can read the run now"
STARTED_NOT_READ = (
    "the run was started, but nothing can read it now; repeat the request (same key and "
    "body) to get its state"
)
NOT_STARTED = "the run was not started"


class UseCaseGateway:
    """Temporal access for one process (one client, one facts cache, one worker watch)."""

    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.workers = WorkerWatch(client, settings.task_queue)
        self._facts: OrderedDict[str, RunFacts] = OrderedDict()
        self._ui_prefix = settings.workflow_ui_url("").rstrip("/")

    # ------------------------------------------------------------------ start

    async def start(self, plan: StartPlan) -> tuple[UseCaseView, bool]:
        """Start a run; returns (state, created). Same key + same request → the same run."""
        wid = plan.workflow_id
        observability.bind_workflow(wid)
        await self._require_worker(NOT_STARTED)
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
        return await self._query_state(handle, STARTED_NOT_READ), True

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

    async def facts(self, wid: str, *, fresh: bool = False) -> RunFacts:
        """The run's pinned facts (memo), cached unless ``fresh``; ``RunNotFound`` for
        anything not a run."""
        observability.bind_workflow(wid)
        cached = None if fresh else self._facts.get(wid)
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
        # The id says what a run is: ``…-change-<n>`` is a change request's run, which only its
        # use case's run starts (as its child), anything else a use case's own. A run that is
        # not what its id says — one started under an id another run owns, through Temporal or
        # before keys were refused — is no run of ours, whatever its memo claims.
        if desc.workflow_type != WORKFLOW_TYPE or desc.parent_id != ids.parent_workflow_id(wid):
            raise RunNotFound(f"no use case '{wid}'")
        raw: dict[str, Any] = await desc.memo_value("facts", default={})
        deputies: dict[str, Any] | None = await desc.memo_value("deputies", default=None)
        facts = RunFacts.from_memo(wid, raw, deputies)
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
        await self._require_worker(NOT_READ)
        events: list[HistoryEvent] = await self._watched(
            wid, lambda: handle.query(UseCaseRelease.events, rpc_timeout=RPC_TIMEOUT), NOT_READ
        )
        return events

    async def _query_state(
        self, handle: WorkflowHandle[Any, Any], consequence: str = NOT_READ
    ) -> UseCaseView:
        await self._require_worker(consequence)
        view: UseCaseView = await self._watched(
            handle.id,
            lambda: handle.query(UseCaseRelease.state, rpc_timeout=RPC_TIMEOUT),
            consequence,
        )
        return self.decorate(view)

    def decorate(self, view: UseCaseView) -> UseCaseView:
        view.temporal_ui_url = f"{self._ui_prefix}/{view.id}"
        return view

    # ------------------------------------------------------------------ commands

    async def execute(
        self, wid: str, command: CommandName, arg: Any, *, update_id: str | None = None
    ) -> UseCaseView:
        """Send ``command`` as its Update and wait for the run's state after it.

        Fails fast (503 ``no-worker``) when no worker polls the task queue: before sending
        when the last check found none, else once the Update has not answered within
        ``FIRST_WAIT_S``. A run whose workflow task keeps failing answers 503
        ``workflow-task-failing`` with its real status, never "closed"."""
        await self.facts(wid)
        handle = self.client.get_workflow_handle(wid)
        await self._require_worker(NOT_SENT)
        update_id = update_id or str(uuid.uuid4())
        try:
            view: UseCaseView = await self._watched(
                wid,
                lambda: handle.execute_update(
                    UPDATES[command], arg, id=update_id, rpc_timeout=RPC_TIMEOUT
                ),
                SENT,
            )
        except (RunNotFound, _ServerSaysClosed):
            # the run exists (its facts were read): Temporal's wording for a close depends on
            # how far it had got when the Update arrived, so ask what the run really is
            raise await self._closed_or_stuck(wid) from None
        return self.decorate(view)

    async def outcome(self, wid: str, command: CommandName, update_id: str) -> UseCaseView | None:
        """The first answer the run gave the Update ``update_id`` (its state then, or the
        refusal it raised); None when the run holds no such Update (never sent, or refused by
        its validator, which keeps nothing)."""
        await self.facts(wid)
        handle = self.client.get_workflow_handle(wid).get_update_handle_for(
            UPDATES[command], update_id
        )
        try:
            view: UseCaseView = await _call(handle.result(rpc_timeout=RPC_TIMEOUT))
        except (RunNotFound, _ServerSaysClosed):
            return None  # NOT_FOUND: this run (or the run it continued as) has no such Update
        return self.decorate(view)

    async def ping(self) -> None:
        await self.client.workflow_service.get_system_info(
            GetSystemInfoRequest(), timeout=timedelta(seconds=3)
        )

    # ------------------------------------------------------------------ outages

    async def _require_worker(self, consequence: str) -> None:
        """Before sending: only when the last check found no worker (then check again)."""
        if self.workers.last_known is False and await self.workers.polled() is False:
            raise self.workers.absent(consequence)

    async def _watched(self, wid: str, call: Callable[[], Awaitable[T]], consequence: str) -> T:
        """``call`` through ``_call``, watched while it is slow (see ``FIRST_WAIT_S``)."""
        task = asyncio.ensure_future(_call(call()))
        try:
            done, _ = await asyncio.wait({task}, timeout=FIRST_WAIT_S)
            while not done:
                await self._diagnose(wid, consequence)
                done, _ = await asyncio.wait({task}, timeout=PROBE_EVERY_S)
            try:
                return task.result()
            except Unavailable as exc:
                if exc.outage is Outage.UNREACHABLE:
                    await self._diagnose(wid, consequence)  # a more precise answer, if any
                raise
        finally:
            if not task.done():
                task.cancel()
                task.add_done_callback(_swallow)

    async def _diagnose(self, wid: str, consequence: str) -> None:
        """Raise the outage that explains a slow answer; return when there is none."""
        if await self.workers.polled() is False:
            raise self.workers.absent(consequence)
        status = await self._run_status(wid)
        if status is not None and status.failing:
            raise status.stuck()

    async def _run_status(self, wid: str) -> RunStatus | None:
        try:
            desc = await self.client.get_workflow_handle(wid).describe(
                rpc_timeout=PROBE_RPC_TIMEOUT
            )
        except (RPCError, RuntimeError):
            return None
        raw = desc.raw_description
        attempt = raw.pending_workflow_task.attempt if raw.HasField("pending_workflow_task") else 0
        return RunStatus(wid, desc.status, attempt)

    async def _closed_or_stuck(self, wid: str) -> CommandError:
        status = await self._run_status(wid)
        if status is None or status.status is not WorkflowExecutionStatus.RUNNING:
            named = f" ({status.status.name})" if status and status.status else ""
            return CommandRefused(Refusal.RUN_CLOSED, f"the run is closed{named}")
        if status.failing:
            return status.stuck()
        return Unavailable(
            Outage.UNREACHABLE,
            "the run is open (RUNNING) but Temporal did not take the command; try again",
            run_status=status.status.name,
        )


@dataclass(frozen=True)
class RunStatus:
    """What DescribeWorkflowExecution says about a run, for outage answers."""

    workflow_id: str
    status: WorkflowExecutionStatus | None
    workflow_task_attempt: int

    @property
    def failing(self) -> bool:
        return (
            self.status is WorkflowExecutionStatus.RUNNING
            and self.workflow_task_attempt >= FAILING_TASK_ATTEMPT
        )

    def stuck(self) -> Unavailable:
        return Unavailable(
            Outage.WORKFLOW_TASK_FAILING,
            f"the run is open (RUNNING) but its workflow task has failed "
            f"{self.workflow_task_attempt - 1} time(s) and it takes no command until an operator "
            "fixes the cause (see the run's history in the Temporal UI)",
            run_status="RUNNING",
            workflow_task_attempt=self.workflow_task_attempt,
        )


def _swallow(task: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned call's outcome, so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()


__all__ = ["UPDATES", "RunFacts", "RunStatus", "UseCaseGateway", "WorkerWatch"]
