"""Drive a UseCaseRelease run through its stages (shared by the workflow test modules)."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from tests.workflows.helpers import GATE_APPROVERS, GATE_EVIDENCE, STAGE_EVIDENCE, evidence
from workflows.model import (
    AddEvidence,
    CompleteStage,
    Decision,
    Gate,
    GateDecision,
    Stage,
    UseCaseView,
)
from workflows.release import UseCaseRelease

WORK = ("scoping", "specification", "implementation", "validation")


async def complete(
    handle: WorkflowHandle, stage: str, tier: str, actor: str = "dana"
) -> UseCaseView:
    kinds = STAGE_EVIDENCE[tier].get(stage, [])
    return await handle.execute_update(
        UseCaseRelease.complete_stage,
        CompleteStage(actor=actor, stage=Stage(stage), evidence=[evidence(k) for k in kinds]),
    )


async def decide(
    handle: WorkflowHandle,
    actor: str,
    gate: str,
    decision: Decision = Decision.APPROVE,
    comment: str = "",
    update_id: str | None = None,
) -> UseCaseView:
    return await handle.execute_update(
        UseCaseRelease.decide,
        GateDecision(actor=actor, gate=Gate(gate), decision=decision, comment=comment),
        id=update_id,
    )


async def pass_gate(handle: WorkflowHandle, gate: str, tier: str) -> UseCaseView:
    kinds = GATE_EVIDENCE[tier].get(gate, [])
    if kinds:
        await handle.execute_update(
            UseCaseRelease.add_evidence,
            AddEvidence(actor="tom", evidence=[evidence(k) for k in kinds]),
        )
    view: UseCaseView | None = None
    for approver in GATE_APPROVERS[tier][gate]:
        view = await decide(handle, approver, gate)
    assert view is not None
    return view


async def advance_to(handle: WorkflowHandle, target: str, tier: str) -> UseCaseView:
    view = await handle.query(UseCaseRelease.state)
    while view.stage.value != target:
        stage = view.stage.value
        if stage in WORK:
            view = await complete(handle, stage, tier)
        else:
            view = await pass_gate(handle, stage, tier)
    return view


async def refusal_of(awaitable) -> ApplicationError:  # type: ignore[no-untyped-def]
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await awaitable
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    return cause
