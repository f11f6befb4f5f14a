"""Live operation: incidents, stop-ship, resume, change requests and retirement.

Change requests run as child workflows with their own ids; the routes under
``/changes/{change_id}`` drive them with exactly the verbs of a use case.
"""

from __future__ import annotations

import re

from fastapi import APIRouter

from services.api.deps import CurrentPerson, Gateway
from services.api.gateway import workflow_id_for
from services.api.problems import Problem
from services.api.routes.use_cases import (
    IdempotencyKey,
    _idempotency_key,
    add_evidence_to,
    complete_stage_of,
    decide_gate_of,
    send,
)
from services.api.schemas import (
    ChangeBody,
    CompleteStageBody,
    DecisionBody,
    EvidenceBody,
    IncidentBody,
    OptionalReasonBody,
    ReasonBody,
)
from workflows.model import (
    Channel,
    Gate,
    RaiseChange,
    ReportIncident,
    Resume,
    Retire,
    Stage,
    Suspend,
    UseCaseView,
)
from workflows.release import UseCaseRelease

router = APIRouter(prefix="/v1/use-cases", tags=["live operation"])

CHANGE_ID = re.compile(r"^change-[1-9][0-9]{0,5}$")


def change_workflow_id(use_case_id: str, change_id: str) -> str:
    if not CHANGE_ID.match(change_id):
        raise Problem(404, f"no change '{change_id}'", code="not-found")
    return f"{workflow_id_for(use_case_id)}-{change_id}"


@router.post("/{use_case_id}/incidents", status_code=201, response_model=UseCaseView)
async def report_incident(
    use_case_id: str,
    body: IncidentBody,
    person: CurrentPerson,
    gateway: Gateway,
    idempotency_key: IdempotencyKey = None,
) -> UseCaseView:
    """Any owner or operations; a sev1 suspends the use case when the policy says so."""
    cmd = ReportIncident(
        actor=person.id, severity=body.severity, summary=body.summary, channel=Channel.API
    )
    return await send(gateway, use_case_id, UseCaseRelease.report_incident, cmd, idempotency_key)


@router.post("/{use_case_id}/suspend", response_model=UseCaseView)
async def suspend(
    use_case_id: str,
    body: ReasonBody,
    person: CurrentPerson,
    gateway: Gateway,
    idempotency_key: IdempotencyKey = None,
) -> UseCaseView:
    """Stop-ship by a stop-authority holder: state ``suspended``, the rollback hook is called."""
    cmd = Suspend(actor=person.id, reason=body.reason, channel=Channel.API)
    return await send(gateway, use_case_id, UseCaseRelease.suspend, cmd, idempotency_key)


@router.post("/{use_case_id}/resume", response_model=UseCaseView)
async def resume(
    use_case_id: str,
    person: CurrentPerson,
    gateway: Gateway,
    body: OptionalReasonBody | None = None,
    idempotency_key: IdempotencyKey = None,
) -> UseCaseView:
    """Opens gate ``resume_approval`` (risk + business per policy)."""
    cmd = Resume(actor=person.id, reason=body.reason if body else "", channel=Channel.API)
    return await send(gateway, use_case_id, UseCaseRelease.resume, cmd, idempotency_key)


@router.post("/{use_case_id}/changes", status_code=201, response_model=UseCaseView)
async def raise_change(
    use_case_id: str,
    body: ChangeBody,
    person: CurrentPerson,
    gateway: Gateway,
    idempotency_key: IdempotencyKey = None,
) -> UseCaseView:
    """Minor → ``change_approval``; material → validation and the release gates again, while
    the live version keeps running. Returns the change's own state."""
    wid = workflow_id_for(use_case_id)
    await gateway.precheck_delivery(wid, person.id, what="raises a change")
    cmd = RaiseChange(
        actor=person.id,
        summary=body.summary,
        materiality=body.materiality,
        evidence=body.evidence,
        channel=Channel.API,
    )
    parent = await gateway.update(
        wid, UseCaseRelease.raise_change, cmd, update_id=_idempotency_key(idempotency_key)
    )
    change = next(c for c in reversed(parent.changes) if c.raised_by == person.id)
    return await gateway.state(change.workflow_id)


@router.post("/{use_case_id}/retire", response_model=UseCaseView)
async def retire(
    use_case_id: str,
    person: CurrentPerson,
    gateway: Gateway,
    body: OptionalReasonBody | None = None,
    idempotency_key: IdempotencyKey = None,
) -> UseCaseView:
    cmd = Retire(actor=person.id, reason=body.reason if body else "", channel=Channel.API)
    return await send(gateway, use_case_id, UseCaseRelease.retire, cmd, idempotency_key)


@router.get("/{use_case_id}/changes/{change_id}", response_model=UseCaseView)
async def get_change(
    use_case_id: str, change_id: str, _: CurrentPerson, gateway: Gateway
) -> UseCaseView:
    return await gateway.state(change_workflow_id(use_case_id, change_id))


@router.post(
    "/{use_case_id}/changes/{change_id}/stages/{stage}/complete", response_model=UseCaseView
)
async def complete_change_stage(
    use_case_id: str,
    change_id: str,
    stage: Stage,
    body: CompleteStageBody,
    person: CurrentPerson,
    gateway: Gateway,
    idempotency_key: IdempotencyKey = None,
) -> UseCaseView:
    return await complete_stage_of(
        gateway,
        change_workflow_id(use_case_id, change_id),
        stage,
        body,
        person.id,
        idempotency_key,
    )


@router.post(
    "/{use_case_id}/changes/{change_id}/evidence", status_code=201, response_model=UseCaseView
)
async def add_change_evidence(
    use_case_id: str,
    change_id: str,
    body: EvidenceBody,
    person: CurrentPerson,
    gateway: Gateway,
    idempotency_key: IdempotencyKey = None,
) -> UseCaseView:
    return await add_evidence_to(
        gateway, change_workflow_id(use_case_id, change_id), body, person.id, idempotency_key
    )


@router.post(
    "/{use_case_id}/changes/{change_id}/gates/{gate}/decisions", response_model=UseCaseView
)
async def decide_change_gate(
    use_case_id: str,
    change_id: str,
    gate: Gate,
    body: DecisionBody,
    person: CurrentPerson,
    gateway: Gateway,
    idempotency_key: IdempotencyKey = None,
) -> UseCaseView:
    return await decide_gate_of(
        gateway,
        change_workflow_id(use_case_id, change_id),
        gate,
        body,
        person.id,
        idempotency_key,
    )
