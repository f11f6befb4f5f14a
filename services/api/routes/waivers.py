"""Governed exceptions (waivers): ask for one, grant or refuse it, read them.

The delivery lead or the technical owner asks for an exception to one requirement of the run's
pinned policy until a date within the tier's maximum; the tier's grantors decide it (never its
requester). Routes only authenticate and call the command layer; the workflow decides.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.api.deps import ApiSender, Commands, ReadableUseCase
from services.api.problems import Problem
from services.commands.service import workflow_id
from workflows import limits
from workflows.model import Waiver, WaiverRequirement, WaiverVerdict

router = APIRouter(prefix="/v1/use-cases", tags=["governed exceptions"])

WAIVER_ID = re.compile(r"^w-[1-9][0-9]{0,5}$")


class WaiverBody(BaseModel):
    """Body of ``POST /v1/use-cases/{id}/waivers``."""

    model_config = ConfigDict(extra="forbid")
    requirement: WaiverRequirement
    justification: str = Field(min_length=1, max_length=limits.TEXT_MAX)
    # an ISO 8601 time with its offset, no later than the tier's ``waivers.max_days`` from now
    expires_at: AwareDatetime


class WaiverDecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: WaiverVerdict
    comment: str = Field(default="", max_length=limits.TEXT_MAX)


class WaiverList(BaseModel):
    items: list[Waiver]


def _known_id(waiver_id: str) -> str:
    if not WAIVER_ID.match(waiver_id):
        raise Problem(404, f"no exception '{waiver_id[:40]}' on this use case", code="not-found")
    return waiver_id


@router.post("/{use_case_id}/waivers", status_code=201, response_model=Waiver)
async def request_waiver(
    use_case_id: str, body: WaiverBody, sender: ApiSender, commands: Commands, response: Response
) -> Waiver:
    """The delivery lead or technical owner asks for an exception (pending until granted)."""
    wid = workflow_id(use_case_id)
    waiver = await commands.request_waiver(
        wid,
        sender,
        body.requirement,
        justification=body.justification,
        expires_at=body.expires_at,
    )
    response.headers["Location"] = f"/v1/use-cases/{wid}/waivers/{waiver.id}"
    return waiver


@router.get("/{use_case_id}/waivers", response_model=WaiverList)
async def list_waivers(wid: ReadableUseCase, commands: Commands) -> WaiverList:
    """Pending and granted exceptions, and the latest closed ones (the ledger has them all)."""
    return WaiverList(items=await commands.waivers(wid))


@router.get("/{use_case_id}/waivers/{waiver_id}", response_model=Waiver)
async def get_waiver(wid: ReadableUseCase, waiver_id: str, commands: Commands) -> Waiver:
    return await commands.waiver(wid, _known_id(waiver_id))


@router.post("/{use_case_id}/waivers/{waiver_id}/decisions", response_model=Waiver)
async def decide_waiver(
    use_case_id: str,
    waiver_id: str,
    body: WaiverDecisionBody,
    sender: ApiSender,
    commands: Commands,
) -> Waiver:
    """A grantor grants (fills a seat) or refuses (comment required) a pending exception."""
    return await commands.decide_waiver(
        workflow_id(use_case_id),
        sender,
        _known_id(waiver_id),
        body.decision,
        comment=body.comment,
    )
