"""The API's door to Temporal: start runs, send commands as Updates, read state by Query.

Routes stay thin; this module turns Temporal's errors into problem documents and keeps a small
cache of each run's pinned facts (roster, tier, policy hash) for the fast eligibility pre-check.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from services import observability
from services.api.problems import Problem
from services.settings import Settings
from workflows import policy, search
from workflows.model import (
    Gate,
    HistoryEvent,
    Owners,
    Refusal,
    Role,
    UseCaseCreate,
    UseCaseInput,
    UseCaseView,
)
from workflows.release import UseCaseRelease

RPC_TIMEOUT = timedelta(seconds=15)
T = TypeVar("T")


def workflow_id_for(id_or_key: str) -> str:
    return id_or_key if id_or_key.startswith("usecase-") else f"usecase-{id_or_key}"


def request_digest(body: UseCaseCreate, delivery_lead: str) -> str:
    doc = {"delivery_lead": delivery_lead, "body": body.model_dump(mode="json")}
    return hashlib.sha256(
        json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


@dataclass(frozen=True)
class RunFacts:
    """What a run pinned at start and never changes: safe to cache for pre-checks."""

    workflow_id: str
    roster: dict[Role, list[str]]
    tier: str
    policy_sha256: str
    request_sha256: str
    change_raised_by: str | None = None


def _unavailable(exc: BaseException) -> Problem:
    return Problem(503, f"Temporal is unreachable: {exc}", code="temporal-unavailable")


def _connect_failed(exc: RuntimeError) -> Problem:
    """A lazy client that cannot dial raises RuntimeError('Failed client connect: …')."""
    if "connect" not in str(exc).lower():
        raise exc
    return Problem(503, "Temporal is unreachable", code="temporal-unavailable")


def _is_unavailable(exc: RPCError) -> bool:
    return exc.status in (
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.CANCELLED,
        RPCStatusCode.UNKNOWN,
        RPCStatusCode.RESOURCE_EXHAUSTED,
    )


class UseCaseGateway:
    def __init__(
        self,
        client: Client,
        settings: Settings,
        loaded_policy: policy.LoadedPolicy,
        directory: policy.Directory,
    ) -> None:
        self.client = client
        self.settings = settings
        self.policy = loaded_policy
        self.directory = directory
        self._facts: OrderedDict[str, RunFacts] = OrderedDict()
        self._ui_prefix = settings.workflow_ui_url("").rstrip("/")

    # ------------------------------------------------------------------ start

    async def start(self, body: UseCaseCreate, delivery_lead: str) -> tuple[UseCaseView, bool]:
        """Start a run; returns (state, created). Same key + same body → the same run."""
        wid = workflow_id_for(body.key)
        observability.bind_workflow(wid)
        digest = request_digest(body, delivery_lead)
        o = body.owners
        owners = Owners(
            delivery_lead=delivery_lead,
            business_owner=o.business_owner,
            technical_owner=o.technical_owner,
            operations_owner=o.operations_owner,
            risk_approvers=list(o.risk_approvers),
            escalation_owner=o.escalation_owner,
            stop_authority=list(o.stop_authority)
            if o.stop_authority
            else policy.default_stop_authority(
                o.business_owner, o.technical_owner, o.operations_owner
            ),
        )
        pinned = self.policy.pin(body.risk_tier)
        try:
            roster = policy.resolve_roster(owners, self.directory)
            policy.check_staffing(pinned, roster)
        except policy.PolicyViolation as exc:
            raise Problem(422, exc.detail, code="invalid-owners") from None
        inp = UseCaseInput(
            key=body.key,
            title=body.title,
            summary=body.summary,
            risk_tier=body.risk_tier,
            owners=owners,
            roster=roster,
            policy=pinned,
            slack_channel=body.slack_channel,
            request_sha256=digest,
            hooks=body.hooks,
        )
        facts = {
            "request_sha256": digest,
            "tier": body.risk_tier.value,
            "policy_sha256": pinned.sha256,
            "roster": {r.value: ids for r, ids in roster.items()},
        }
        try:
            handle = await self.client.start_workflow(
                UseCaseRelease.run,
                inp,
                id=wid,
                task_queue=self.settings.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(search.USE_CASE_KEY, body.key),
                        SearchAttributePair(search.STAGE, "scoping"),
                        SearchAttributePair(search.RISK_TIER, body.risk_tier.value),
                        SearchAttributePair(search.BUSINESS_OWNER, o.business_owner),
                    ]
                ),
                memo={"facts": facts},
                static_summary=f"{body.title} ({body.key})",
                static_details=(
                    f"**Use case:** {body.title}  \n**Key:** {body.key} · **Risk tier:** "
                    f"{body.risk_tier.value}  \n**Delivery lead:** {delivery_lead} · **Business "
                    f"owner:** {o.business_owner} · **Technical owner:** {o.technical_owner}  \n"
                    f"**Policy:** {pinned.version} ({pinned.sha256[:12]})\n\n{body.summary}"
                ),
                rpc_timeout=RPC_TIMEOUT,
            )
        except WorkflowAlreadyStartedError:
            existing = await self.facts(wid)
            if existing.request_sha256 != digest:
                raise Problem(
                    409,
                    f"use case '{body.key}' already exists with a different definition",
                    code="key-conflict",
                ) from None
            return await self.state(wid), False
        except RPCError as exc:
            raise (
                _unavailable(exc)
                if _is_unavailable(exc)
                else Problem(
                    503, f"Temporal refused the start: {exc.message}", code="temporal-error"
                )
            ) from None
        except RuntimeError as exc:
            raise _connect_failed(exc) from None
        self._remember(RunFacts(wid, roster, body.risk_tier.value, pinned.sha256, digest))
        return await self._query_state(handle), True

    # ------------------------------------------------------------------ reads

    async def facts(self, wid: str) -> RunFacts:
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
                raise Problem(404, f"no use case '{wid}'", code="not-found") from None
            raise _unavailable(exc) from None
        except RuntimeError as exc:
            raise _connect_failed(exc) from None
        if desc.workflow_type != "UseCaseRelease":
            raise Problem(404, f"no use case '{wid}'", code="not-found")
        raw: dict[str, Any] = await desc.memo_value("facts", default={})
        facts = RunFacts(
            workflow_id=wid,
            roster={Role(k): list(v) for k, v in raw.get("roster", {}).items()},
            tier=raw.get("tier", ""),
            policy_sha256=raw.get("policy_sha256", ""),
            request_sha256=raw.get("request_sha256", ""),
            change_raised_by=raw.get("change_raised_by"),
        )
        self._remember(facts)
        return facts

    def _remember(self, facts: RunFacts) -> None:
        self._facts[facts.workflow_id] = facts
        while len(self._facts) > 10_000:
            self._facts.popitem(last=False)

    async def state(self, wid: str) -> UseCaseView:
        await self.facts(wid)  # 404 for unknown ids without waking a worker
        return await self._query_state(self.client.get_workflow_handle(wid))

    async def history(self, wid: str) -> list[HistoryEvent]:
        await self.facts(wid)
        handle = self.client.get_workflow_handle(wid)
        return await self._call(handle.query(UseCaseRelease.events, rpc_timeout=RPC_TIMEOUT))

    async def _query_state(self, handle: WorkflowHandle[Any, Any]) -> UseCaseView:
        view: UseCaseView = await self._call(
            handle.query(UseCaseRelease.state, rpc_timeout=RPC_TIMEOUT)
        )
        return self.decorate(view)

    def decorate(self, view: UseCaseView) -> UseCaseView:
        view.temporal_ui_url = f"{self._ui_prefix}/{view.id}"
        return view

    # ------------------------------------------------------------------ commands

    async def precheck_decider(self, wid: str, gate: Gate, actor: str) -> None:
        """Fast 403 from pinned facts, before any worker is woken. The workflow still decides."""
        facts = await self.facts(wid)
        if facts.policy_sha256 != self.policy.sha256 or not facts.tier:
            return  # this run pinned another policy version: leave it to the workflow
        rule = policy.gate_rule(self.policy.pin(policy.RiskTier(facts.tier)), gate)
        if rule is None:
            raise Problem(
                409, f"gate {gate.value} is not part of this use case's path", code="gate-not-open"
            )
        excluded = policy.excluded_from_gate(
            gate, facts.roster, change_raised_by=facts.change_raised_by
        )
        could = policy.eligible(
            rule, facts.roster, excluded, change_raised_by=facts.change_raised_by
        )
        if actor not in could:
            raise Problem.refused(Refusal.NOT_ELIGIBLE, "not eligible for this gate")

    async def precheck_delivery(self, wid: str, actor: str, *, what: str) -> None:
        facts = await self.facts(wid)
        team = set(facts.roster.get(Role.DELIVERY_LEAD, [])) | set(
            facts.roster.get(Role.TECHNICAL_OWNER, [])
        )
        if team and actor not in team:
            raise Problem.refused(
                Refusal.NOT_ELIGIBLE, f"only the delivery lead or technical owner {what}"
            )

    async def update(
        self, wid: str, method: Any, arg: Any, *, update_id: str | None = None
    ) -> UseCaseView:
        await self.facts(wid)
        handle = self.client.get_workflow_handle(wid)
        deciding = method is UseCaseRelease.decide
        try:
            view: UseCaseView = await self._call(
                handle.execute_update(
                    method, arg, id=update_id or str(uuid.uuid4()), rpc_timeout=RPC_TIMEOUT
                )
            )
        except Problem as problem:
            if deciding:
                observability.record_refused_decision(arg, problem.code)
            raise
        view = self.decorate(view)
        if deciding:
            observability.record_accepted_decision(arg, view)
        return view

    async def _call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.type:
                try:
                    refusal = Refusal(cause.type)
                except ValueError:
                    refusal = None
                if refusal is not None:
                    raise Problem.refused(refusal, cause.message) from None
            raise Problem(
                409, f"the workflow refused the command: {cause}", code="refused"
            ) from None
        except WorkflowQueryFailedError as exc:
            raise Problem(
                503, f"the workflow could not answer: {exc}", code="query-failed"
            ) from None
        except WorkflowUpdateRPCTimeoutOrCancelledError as exc:
            raise _unavailable(exc) from None
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                if "completed" in exc.message or "closed" in exc.message:
                    raise Problem.refused(Refusal.RUN_CLOSED, "the run is closed") from None
                raise Problem(404, "no such use case", code="not-found") from None
            if exc.status == RPCStatusCode.FAILED_PRECONDITION:
                raise Problem.refused(Refusal.RUN_CLOSED, exc.message) from None
            raise _unavailable(exc) from None
        except RuntimeError as exc:
            raise _connect_failed(exc) from None

    async def ping(self) -> None:
        await self.client.workflow_service.get_system_info(
            GetSystemInfoRequest(), timeout=timedelta(seconds=3)
        )


__all__ = ["RunFacts", "UseCaseGateway", "workflow_id_for"]
