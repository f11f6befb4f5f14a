"""The ledger for auditors: entries, chain verification and the evidence pack.

Served from the store alone (no Temporal call), so these answer for runs whose workflow
history has long expired. A database that cannot be reached is a 503 (``DbSession``). Like
every read of one run they are need-to-know: ``ReadableRecord`` answers 404 first for a run
whose roster (the registry's copy) does not name the caller, unless they are a policy reader.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.api.deps import DbSession, ReadableRecord, Res
from services.api.problems import Problem
from services.store.audit import (
    EvidencePack,
    LedgerEntryView,
    UnknownUseCase,
    build_evidence_pack,
    entry_view,
    ledger_of,
    verify_document,
    verify_use_case,
)
from services.store.ledger import VerifyResult

router = APIRouter(prefix="/v1/use-cases", tags=["ledger"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {
        "description": "Unknown use case (no ledger entries and not in the registry), or one "
        "the caller may not read"
    },
    503: {"description": "The ledger database is unreachable"},
}


def _not_found(exc: UnknownUseCase) -> Problem:
    return Problem(404, f"no use case '{exc.workflow_id}'", code="not-found")


@router.get("/{use_case_id}/ledger", response_model=list[LedgerEntryView], responses=NOT_FOUND)
async def get_ledger(wid: ReadableRecord, session: DbSession) -> list[LedgerEntryView]:
    """Every ledger entry of the run, in seq order, exactly as stored (hashes included)."""
    try:
        rows = await ledger_of(session, wid)
    except UnknownUseCase as exc:
        raise _not_found(exc) from None
    return [entry_view(row) for row in rows]


@router.get("/{use_case_id}/ledger/verify", response_model=VerifyResult, responses=NOT_FOUND)
async def verify_ledger(wid: ReadableRecord, session: DbSession) -> JSONResponse:
    """Recompute the hash chain: ``{"ok": true, "entries": n, "first_bad_seq": null}``, or
    ``ok: false`` with the first bad seq and a ``reason``."""
    try:
        result = await verify_use_case(session, wid)
    except UnknownUseCase as exc:
        raise _not_found(exc) from None
    return JSONResponse(verify_document(result))


@router.get("/{use_case_id}/evidence-pack", response_model=EvidencePack, responses=NOT_FOUND)
async def get_evidence_pack(wid: ReadableRecord, session: DbSession, res: Res) -> EvidencePack:
    """One document for an auditor: the use case, its owners, the pinned policy (with its
    content while the policy file is still that version), every decision with the evidence
    digests it approved and whether later evidence voided it, all evidence items, refused
    attempts, and the ledger with its head hash and verification."""
    try:
        return await build_evidence_pack(session, wid, policy_path=res.settings.policy_path)
    except UnknownUseCase as exc:
        raise _not_found(exc) from None
