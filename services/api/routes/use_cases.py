"""Use cases: start, read, complete stages, add evidence, decide gates, reopen, cancel.

Routes only authenticate and call the command layer, which authorizes and sends the Update.
Every state they answer with carries its evidence ``ETag`` (``services.api.state``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from services.api.deps import ApiSender, Commands, CurrentPerson, DbSession, ReadableUseCase
from services.api.problems import Problem
from services.api.routes.lists import Cursor, HistoryLimit, history
from services.api.schemas import (
    CancelBody,
    CompleteStageBody,
    DecisionBody,
    DeputiesBody,
    EvidenceBody,
    OverrideBody,
    UseCasePage,
    UseCaseSummary,
)
from services.api.state import SEEN_RESPONSES, IfMatch, with_etag
from services.commands.service import Sender, workflow_id
from services.store.registry import RegistryRepository
from workflows.model import (
    Channel,
    Gate,
    HistoryEvent,
    RiskTier,
    Stage,
    UseCaseCreate,
    UseCaseView,
)

router = APIRouter(prefix="/v1/use-cases", tags=["use cases"])


@router.post("", status_code=201, response_model=UseCaseView)
async def start_use_case(
    body: UseCaseCreate, person: CurrentPerson, commands: Commands, response: Response
) -> UseCaseView:
    """Launch a use case; the caller becomes its delivery lead. Idempotent by key (the use
    case's own), so no Idempotency-Key is needed."""
    view, created = await commands.start(body, Sender(person.id, Channel.API))
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/v1/use-cases/{view.id}"
    return with_etag(response, view)


@router.get("", response_model=UseCasePage)
async def list_use_cases(
    person: CurrentPerson,
    commands: Commands,
    session: DbSession,
    stage: Stage | None = None,
    risk_tier: RiskTier | None = None,
    owner: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> UseCasePage:
    """The runs the caller may read (need-to-know), newest first."""
    repo = RegistryRepository(session)
    try:
        rows, next_cursor = await repo.list(
            visible_to=None if commands.reads_every_run(person) else person.id,
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
async def get_use_case(wid: ReadableUseCase, commands: Commands, response: Response) -> UseCaseView:
    return with_etag(response, await commands.state(wid))


@router.get("/{use_case_id}/history", response_model=list[HistoryEvent])
async def get_history(
    wid: ReadableUseCase,
    commands: Commands,
    session: DbSession,
    response: Response,
    limit: HistoryLimit = None,
    cursor: Cursor = None,
) -> list[HistoryEvent]:
    """The run's stage and decision events in order. With ``limit`` or ``cursor``, one page
    of them from the ledger (next page: the ``X-Next-Cursor`` header)."""
    return await history(commands, session, wid, limit, cursor, response)


@router.post("/{use_case_id}/stages/{stage}/complete", response_model=UseCaseView)
async def complete_stage(
    use_case_id: str,
    stage: Stage,
    body: CompleteStageBody,
    sender: ApiSender,
    commands: Commands,
    response: Response,
) -> UseCaseView:
    view = await commands.complete_stage(
        workflow_id(use_case_id), sender, stage, evidence=body.evidence, comment=body.comment
    )
    return with_etag(response, view)


@router.post("/{use_case_id}/evidence", status_code=201, response_model=UseCaseView)
async def add_evidence(
    use_case_id: str, body: EvidenceBody, sender: ApiSender, commands: Commands, response: Response
) -> UseCaseView:
    view = await commands.add_evidence(
        workflow_id(use_case_id), sender, body.evidence, comment=body.comment
    )
    return with_etag(response, view)


@router.post(
    "/{use_case_id}/gates/{gate}/decisions", response_model=UseCaseView, responses=SEEN_RESPONSES
)
async def decide_gate(
    use_case_id: str,
    gate: Gate,
    body: DecisionBody,
    sender: ApiSender,
    commands: Commands,
    response: Response,
    if_match: IfMatch = None,
) -> UseCaseView:
    """Approve, request changes or reject. An approval names what its approver saw:
    ``evidence_digests``, or ``If-Match`` with the ``ETag`` of the state they reviewed.
    ``Idempotency-Key`` makes retries one decision."""
    view = await commands.decide_as_seen(
        workflow_id(use_case_id),
        sender,
        gate,
        body.decision,
        comment=body.comment,
        evidence_digests=body.evidence_digests,
        if_match=if_match,
    )
    return with_etag(response, view)


@router.post("/{use_case_id}/gates/{gate}/reopen", response_model=UseCaseView)
async def reopen_gate(
    use_case_id: str,
    gate: Gate,
    sender: ApiSender,
    commands: Commands,
    response: Response,
    body: CancelBody | None = None,
) -> UseCaseView:
    """After a gate expired (stage ``stalled``), the delivery lead opens it again."""
    view = await commands.reopen_gate(
        workflow_id(use_case_id), sender, gate, comment=body.reason if body else ""
    )
    return with_etag(response, view)


@router.post("/{use_case_id}/gates/{gate}/override", response_model=UseCaseView)
async def override_gate(
    use_case_id: str,
    gate: Gate,
    body: OverrideBody,
    sender: ApiSender,
    commands: Commands,
    response: Response,
) -> UseCaseView:
    """Break-glass: a member of the policy's emergency group passes a stalled gate (past its
    SLA, or expired) with a justification. Recorded as ``override``, never as an approval; a
    retrospective review (gate ``override_review``) must uphold it within the policy's window."""
    view = await commands.override_gate(
        workflow_id(use_case_id), sender, gate, justification=body.justification
    )
    return with_etag(response, view)


@router.put("/{use_case_id}/deputies", response_model=UseCaseView)
async def set_deputies(
    use_case_id: str, body: DeputiesBody, sender: ApiSender, commands: Commands, response: Response
) -> UseCaseView:
    """The business owner names the deputies who may fill an owner role's seats (delegation
    of authority); recorded in the ledger, taken in at once by an open gate."""
    view = await commands.set_deputies(
        workflow_id(use_case_id), sender, body.deputies, comment=body.comment
    )
    return with_etag(response, view)


@router.post("/{use_case_id}/cancel", response_model=UseCaseView)
async def cancel_use_case(
    use_case_id: str,
    sender: ApiSender,
    commands: Commands,
    response: Response,
    body: CancelBody | None = None,
) -> UseCaseView:
    view = await commands.cancel(
        workflow_id(use_case_id), sender, reason=body.reason if body else ""
    )
    return with_etag(response, view)
