"""The ledger for auditors: entries, chain verification and the evidence pack.

Served from the store alone (no Temporal call), so these answer for runs whose workflow
history has long expired. A database that cannot be reached is a 503 (``DbSession``). Like
every read of one run they are need-to-know: ``ReadableRecord`` answers 404 first for a run
whose roster (the registry's copy) does not name the caller, unless they are a policy reader.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, PlainTextResponse

from services.api.deps import CurrentPerson, DbSession, ReadableRecord, Res
from services.api.problems import Problem
from services.settings import ConfigError, Settings
from services.store.audit import (
    CheckpointSource,
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
from services.store.transparency import LogIncomplete, TransparencyLogRepository
from services.tlog import keys as checkpoint_keys
from services.tlog.auditor import Checkpoint, NoteError, parse_note
from services.tlog.keys import CheckpointKeys
from services.tlog.merkle import root_of

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
    attempts, and the ledger with its head hash and verification — every fact read from the
    chained entries. ``transparency``: each entry's leaf index and inclusion proof, and the
    run's head, against the newest signed checkpoint (verify offline with
    ``releasegate audit verify PACK.json --checkpoints DIR --key KEYS``)."""
    try:
        return await build_evidence_pack(
            session,
            wid,
            policy_path=res.settings.policy_path,
            checkpoints=checkpoint_source(res.settings),
        )
    except UnknownUseCase as exc:
        raise _not_found(exc) from None


# --------------------------------------------------------------------------- transparency log

log_router = APIRouter(prefix="/v1/ledger", tags=["ledger"])


def _keys(settings: Settings) -> CheckpointKeys | None:
    try:
        return checkpoint_keys.for_process(settings)
    except ConfigError:
        return None


def checkpoint_source(settings: Settings) -> CheckpointSource:
    """Checkpoints this API trusts: signed by a published key, from the database's copies and
    the checkpoint directory (the newest of either; the database can withhold, not forge)."""
    keys = _keys(settings)
    return CheckpointSource(
        keys=keys.verifiers if keys else (), directory=settings.checkpoint_dir_path
    )


@log_router.get("/keys", responses={503: {"description": "No checkpoint keys configured"}})
async def ledger_keys(res: Res) -> dict[str, Any]:
    """The public keys checkpoints are signed with (every key ever used: a rotated key stays,
    retired), as C2SP vkeys for ``--key``, and the witness's when one is configured. Public:
    no token needed."""
    keys = _keys(res.settings)
    if keys is None:
        raise Problem(503, "no checkpoint keys are configured", code="no-checkpoint-keys")
    document = keys.document()
    document["witnesses"] = (
        [res.settings.checkpoint_witness_key] if res.settings.checkpoint_witness_key else []
    )
    return document


@log_router.get("/checkpoint", responses={404: {"description": "No checkpoint signed yet"}})
async def latest_checkpoint(_: CurrentPerson, session: DbSession, res: Res) -> PlainTextResponse:
    """The newest signed checkpoint, as the C2SP signed note."""
    latest = await checkpoint_source(res.settings).latest(session)
    if latest is None:
        raise Problem(404, "no checkpoint has been signed yet", code="no-checkpoint")
    return PlainTextResponse(latest[1], media_type="text/plain; charset=utf-8")


@log_router.get(
    "/consistency",
    responses={422: {"description": "Sizes out of order or beyond the log"}, **NOT_FOUND},
)
async def consistency(
    _: CurrentPerson,
    session: DbSession,
    res: Res,
    first: Annotated[int, Query(alias="from", ge=0, description="the older tree size")],
    second: Annotated[int, Query(alias="to", ge=0, description="the newer tree size")],
) -> dict[str, Any]:
    """RFC 9162 consistency proof between two tree sizes (typically two checkpoints): the
    tree of size ``to`` extends the tree of size ``from``. Hashes in hex; the signed
    checkpoints of those sizes when known."""
    repo = TransparencyLogRepository(session)
    size = await repo.size()
    if first > second or second > size:
        raise Problem(
            422,
            f"need 0 <= from <= to <= {size} (the log's size); got from={first}, to={second}",
            code="bad-tree-sizes",
        )
    try:
        tree = await repo.tree(second)
    except LogIncomplete as exc:
        raise Problem(
            409, f"the log cannot prove size {second}: {exc}", code="log-incomplete"
        ) from None
    notes = await checkpoint_source(res.settings).notes(session)
    by_size: dict[int, str] = {}
    for note in notes:
        with contextlib.suppress(NoteError):
            by_size.setdefault(Checkpoint.parse(parse_note(note).text).size, note)
    return {
        "from": first,
        "to": second,
        "from_root": root_of(tree.levels[0][:first]).hex(),
        "to_root": tree.root.hex(),
        "proof": [p.hex() for p in tree.consistency_proof(first)],
        "checkpoints": {"from": by_size.get(first), "to": by_size.get(second)},
    }
