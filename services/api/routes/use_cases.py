"""Use cases: start, read, complete stages, add evidence, decide gates, cancel."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response

from services.api.deps import CurrentPerson, DbSession, Gateway
from services.api.gateway import UseCaseGateway, workflow_id_for
from services.api.problems import Problem
from services.api.schemas import (
    CancelBody,
    CompleteStageBody,
    DecisionBody,
    EvidenceBody,
    UseCasePage,
    UseCaseSummary,
)
from services.store.registry import RegistryRepository
from workflows.model import (
    AddEvidence,
    Cancel,
    Channel,
    CompleteStage,
    Gate,
    GateDecision,
    HistoryEvent,
    ReopenGate,
    RiskTier,
    Stage,
    UseCaseCreate,
    UseCaseView,
)
from workflows.release import UseCaseRelease

router = APIRouter(prefix="/v1/use-cases", tags=["use cases"])

IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:@-]{1,200}$")


def _idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not IDEMPOTENCY_KEY.match(value):
        raise Problem(
            422,
            "Idempotency-Key: 1-200 characters of A-Z a-z 0-9 . _ : @ -",
            code="invalid-request",
        )
    return value


@router.post("", status_code=201, response_model=UseCaseView)
async def start_use_case(
    body: UseCaseCreate, person: CurrentPerson, gateway: Gateway, response: Response
) -> UseCaseView:
    """Launch a use case; the caller becomes its delivery lead. Idempotent by key."""
    view, created = await gateway.start(body, person.id)
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/v1/use-cases/{view.id}"
    return view


@router.get("", response_model=UseCasePage)
async def list_use_cases(
    _: CurrentPerson,
    session: DbSession,
    stage: Stage | None = None,
    risk_tier: RiskTier | None = None,
    owner: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> UseCasePage:
    repo = RegistryRepository(session)
    try:
        rows, next_cursor = await repo.list(
            stage=stage.value if stage else None,
            risk_tier=risk_tier.value if risk_tier else None,
            owner=owner,
            limit=limit,
            cursor=cursor,
        )
    except ValueError as exc:
        raise Problem(422, f"cursor: {exc}", code="invalid-request") from None
    return UseCasePage(
        items=[
            UseCaseSummary(
                id=r.workflow_id,
                key=r.key,
                title=r.title,
                risk_tier=r.risk_tier,
                stage=r.stage,
                closed=r.closed,
                business_owner=r.business_owner,
                gate=r.gate,
                pending_approvers=list(r.pending_approvers or []),
                due_at=r.due_at,
                round=r.round,
                updated_at=r.updated_at,
            )
            for r in rows
        ],
        next_cursor=next_cursor,
    )


@router.get("/{use_case_id}", response_model=UseCaseView)
async def get_use_case(use_case_id: str, _: CurrentPerson, gateway: Gateway) -> UseCaseView:
    return await gateway.state(workflow_id_for(use_case_id))


@router.get("/{use_case_id}/history", response_model=list[HistoryEvent])
async def get_history(use_case_id: str, _: CurrentPerson, gateway: Gateway) -> list[HistoryEvent]:
    return await gateway.history(workflow_id_for(use_case_id))


IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


async def send(
    gateway: UseCaseGateway, use_case_id: str, method: Any, cmd: Any, idempotency_key: str | None
) -> UseCaseView:
    """One command to one run, as an Update whose id is the caller's idempotency key."""
    return await gateway.update(
        workflow_id_for(use_case_id), method, cmd, update_id=_idempotency_key(idempotency_key)
    )


async def complete_stage_of(
    gateway: UseCaseGateway,
    wid: str,
    stage: Stage,
    body: CompleteStageBody,
    actor: str,
    idempotency_key: str | None,
) -> UseCaseView:
    """Shared by use cases and their change requests: the same verbs on another run."""
    await gateway.precheck_delivery(wid, actor, what="completes a stage")
    cmd = CompleteStage(
        actor=actor, stage=stage, evidence=body.evidence, comment=body.comment, channel=Channel.API
    )
    return await gateway.update(
        wid, UseCaseRelease.complete_stage, cmd, update_id=_idempotency_key(idempotency_key)
    )


async def add_evidence_to(
    gateway: UseCaseGateway, wid: str, body: EvidenceBody, actor: str, idempotency_key: str | None
) -> UseCaseView:
    await gateway.precheck_delivery(wid, actor, what="submits evidence")
    cmd = AddEvidence(
        actor=actor, evidence=body.evidence, comment=body.comment, channel=Channel.API
    )
    return await gateway.update(
        wid, UseCaseRelease.add_evidence, cmd, update_id=_idempotency_key(idempotency_key)
    )


async def decide_gate_of(
    gateway: UseCaseGateway,
    wid: str,
    gate: Gate,
    body: DecisionBody,
    actor: str,
    idempotency_key: str | None,
) -> UseCaseView:
    key = _idempotency_key(idempotency_key)
    await gateway.precheck_decider(wid, gate, actor)
    cmd = GateDecision(
        actor=actor,
        gate=gate,
        decision=body.decision,
        comment=body.comment,
        evidence_digests=body.evidence_digests,
        channel=Channel.API,
    )
    return await gateway.update(wid, UseCaseRelease.decide, cmd, update_id=key)


@router.post("/{use_case_id}/stages/{stage}/complete", response_model=UseCaseView)
async def complete_stage(
    use_case_id: str,
    stage: Stage,
    body: CompleteStageBody,
    person: CurrentPerson,
    gateway: Gateway,
    idempotency_key: IdempotencyKey = None,
) -> UseCaseView:
    return await complete_stage_of(
        gateway, workflow_id_for(use_case_id), stage, body, person.id, idempotency_key
    )


@router.post("/{use_case_id}/evidence", status_code=201, response_model=UseCaseView)
async def add_evidence(
    use_case_id: str,
    body: EvidenceBody,
    person: CurrentPerson,
    gateway: Gateway,
    idempotency_key: IdempotencyKey = None,
) -> UseCaseView:
    return await add_evidence_to(
        gateway, workflow_id_for(use_case_id), body, person.id, idempotency_key
    )


@router.post("/{use_case_id}/gates/{gate}/decisions", response_model=UseCaseView)
async def decide_gate(
    use_case_id: str,
    gate: Gate,
    body: DecisionBody,
    person: CurrentPerson,
    gateway: Gateway,
    idempotency_key: IdempotencyKey = None,
) -> UseCaseView:
    """Approve, request changes or reject. ``Idempotency-Key`` makes retries one decision."""
    return await decide_gate_of(
        gateway, workflow_id_for(use_case_id), gate, body, person.id, idempotency_key
    )


@router.post("/{use_case_id}/gates/{gate}/reopen", response_model=UseCaseView)
async def reopen_gate(
    use_case_id: str,
    gate: Gate,
    person: CurrentPerson,
    gateway: Gateway,
    body: CancelBody | None = None,
    idempotency_key: IdempotencyKey = None,
) -> UseCaseView:
    """After a gate expired (stage ``stalled``), the delivery lead opens it again."""
    wid = workflow_id_for(use_case_id)
    view = await gateway.state(wid)
    if view.stalled_gate != gate:
        raise Problem(409, f"gate {gate.value} has not expired", code="wrong-stage")
    cmd = ReopenGate(actor=person.id, comment=body.reason if body else "", channel=Channel.API)
    return await gateway.update(
        wid, UseCaseRelease.reopen_gate, cmd, update_id=_idempotency_key(idempotency_key)
    )


@router.post("/{use_case_id}/cancel", response_model=UseCaseView)
async def cancel_use_case(
    use_case_id: str,
    person: CurrentPerson,
    gateway: Gateway,
    body: CancelBody | None = None,
    idempotency_key: IdempotencyKey = None,
) -> UseCaseView:
    cmd = Cancel(actor=person.id, reason=body.reason if body else "", channel=Channel.API)
    return await send(gateway, use_case_id, UseCaseRelease.cancel, cmd, idempotency_key)
