"""Live operation: incidents, stop-ship, resume, change requests and retirement.

Change requests run as child workflows with their own ids; the routes under
``/changes/{change_id}`` drive them with exactly the verbs of a use case. Routes only
authenticate and call the command layer.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from services.api.deps import ApiSender, Commands, DbSession, ReadableChange
from services.api.routes.lists import Cursor, HistoryLimit, history
from services.api.schemas import (
    ChangeBody,
    ChangeState,
    CompleteStageBody,
    DecisionBody,
    EvidenceBody,
    IncidentBody,
    OptionalReasonBody,
    ReasonBody,
)
from services.api.state import SEEN_RESPONSES, IfMatch, with_etag
from services.commands.service import workflow_id
from services.store import lists
from workflows.model import ChangeStatus, Gate, HistoryEvent, RunOutcome, Stage, UseCaseView

router = APIRouter(prefix="/v1/use-cases", tags=["live operation"])


@router.post("/{use_case_id}/incidents", status_code=201, response_model=UseCaseView)
async def report_incident(
    use_case_id: str, body: IncidentBody, sender: ApiSender, commands: Commands, response: Response
) -> UseCaseView:
    """Any owner or operations; a sev1 suspends the use case when the policy says so."""
    view = await commands.report_incident(
        workflow_id(use_case_id), sender, body.severity, body.summary
    )
    return with_etag(response, view)


@router.post("/{use_case_id}/suspend", response_model=UseCaseView)
async def suspend(
    use_case_id: str, body: ReasonBody, sender: ApiSender, commands: Commands, response: Response
) -> UseCaseView:
    """Stop-ship by a stop-authority holder: state ``suspended``, the rollback hook is called."""
    return with_etag(
        response, await commands.suspend(workflow_id(use_case_id), sender, body.reason)
    )


@router.post("/{use_case_id}/resume", response_model=UseCaseView)
async def resume(
    use_case_id: str,
    sender: ApiSender,
    commands: Commands,
    response: Response,
    body: OptionalReasonBody | None = None,
) -> UseCaseView:
    """Opens gate ``resume_approval`` (risk + business per policy)."""
    view = await commands.resume(
        workflow_id(use_case_id), sender, reason=body.reason if body else ""
    )
    return with_etag(response, view)


@router.post("/{use_case_id}/changes", status_code=201, response_model=ChangeState)
async def raise_change(
    use_case_id: str,
    body: ChangeBody,
    sender: ApiSender,
    commands: Commands,
    response: Response,
) -> ChangeState:
    """Minor → ``change_approval``; material → validation and the release gates again, while
    the live version keeps running. Returns the change's own state, its id and its Location."""
    wid = workflow_id(use_case_id)
    raised = await commands.raise_change(
        wid, sender, body.summary, body.materiality, evidence=body.evidence, bundle=body.bundle
    )
    response.headers["Location"] = f"/v1/use-cases/{wid}/changes/{raised.change_id}"
    state = ChangeState.model_validate({**raised.view.model_dump(), "change_id": raised.change_id})
    return with_etag(response, state)


@router.post("/{use_case_id}/retire", response_model=UseCaseView)
async def retire(
    use_case_id: str,
    sender: ApiSender,
    commands: Commands,
    response: Response,
    body: OptionalReasonBody | None = None,
) -> UseCaseView:
    view = await commands.retire(
        workflow_id(use_case_id), sender, reason=body.reason if body else ""
    )
    return with_etag(response, view)


@router.get("/{use_case_id}/changes/{change_id}", response_model=UseCaseView)
async def get_change(
    wid: ReadableChange, commands: Commands, session: DbSession, response: Response
) -> UseCaseView:
    """The change's own state. A change that passed while its use case was suspended is held
    by the use case until resume: its stage reads ``awaiting_resume`` until then."""
    view = await commands.state(wid)
    change = view.change
    if change is not None and view.outcome == RunOutcome.APPLIED:
        status = await lists.change_status(session, change.parent_id, change.change_id)
        if status == ChangeStatus.AWAITING_RESUME:
            view = view.model_copy(update={"stage": Stage.AWAITING_RESUME})
    return with_etag(response, view)


@router.get("/{use_case_id}/changes/{change_id}/history", response_model=list[HistoryEvent])
async def get_change_history(
    wid: ReadableChange,
    commands: Commands,
    session: DbSession,
    response: Response,
    limit: HistoryLimit = None,
    cursor: Cursor = None,
) -> list[HistoryEvent]:
    """The change's own stage and decision events (its run id names no use case); with
    ``limit`` or ``cursor`` one page of them, as for a use case's history."""
    return await history(commands, session, wid, limit, cursor, response)


@router.post(
    "/{use_case_id}/changes/{change_id}/stages/{stage}/complete", response_model=UseCaseView
)
async def complete_change_stage(
    use_case_id: str,
    change_id: str,
    stage: Stage,
    body: CompleteStageBody,
    sender: ApiSender,
    commands: Commands,
    response: Response,
) -> UseCaseView:
    view = await commands.complete_stage(
        workflow_id(use_case_id, change_id),
        sender,
        stage,
        evidence=body.evidence,
        comment=body.comment,
    )
    return with_etag(response, view)


@router.post(
    "/{use_case_id}/changes/{change_id}/evidence", status_code=201, response_model=UseCaseView
)
async def add_change_evidence(
    use_case_id: str,
    change_id: str,
    body: EvidenceBody,
    sender: ApiSender,
    commands: Commands,
    response: Response,
) -> UseCaseView:
    view = await commands.add_evidence(
        workflow_id(use_case_id, change_id), sender, body.evidence, comment=body.comment
    )
    return with_etag(response, view)


@router.post(
    "/{use_case_id}/changes/{change_id}/gates/{gate}/decisions",
    response_model=UseCaseView,
    responses=SEEN_RESPONSES,
)
async def decide_change_gate(
    use_case_id: str,
    change_id: str,
    gate: Gate,
    body: DecisionBody,
    sender: ApiSender,
    commands: Commands,
    response: Response,
    if_match: IfMatch = None,
) -> UseCaseView:
    """As for a use case: an approval names what its approver saw."""
    view = await commands.decide_as_seen(
        workflow_id(use_case_id, change_id),
        sender,
        gate,
        body.decision,
        comment=body.comment,
        evidence_digests=body.evidence_digests,
        if_match=if_match,
    )
    return with_etag(response, view)
