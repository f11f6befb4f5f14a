"""What an auditor reads: a run's ledger, its verification and the evidence pack.

One builder serves ``GET /v1/use-cases/{id}/evidence-pack`` and ``audit_cli export``, so the
document an auditor downloads and the one they export from the database are the same. The
pack is assembled from the ledger itself (plus the evidence table and the registry), never
from Temporal: it stays valid after the workflow's history has expired.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from services.store.ledger import (
    LedgerRepository,
    VerifyResult,
    iso_utc,
    verify_chain,
)
from services.store.models import EvidenceItem, LedgerEntry, UseCase
from services.store.registry import RegistryRepository

PACK_FORMAT = "releasegate.evidence-pack/1"

HASH_RECIPE = (
    "hash = SHA-256 (hex) of the UTF-8 canonical JSON (keys sorted, separators ',' and ':', "
    "no ASCII escaping) of {workflow_id, seq, at, kind, actor, channel, payload, "
    "policy_version, prev_hash}, with at as ISO-8601 UTC with microseconds and 'Z' (as shown "
    "in the chain); the first entry's prev_hash is 64 zeros"
)

WORKFLOW_ID_PREFIX = "usecase-"


class UnknownUseCase(LookupError):
    """Neither the ledger nor the registry knows this use case."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"no use case '{workflow_id}'")
        self.workflow_id = workflow_id


def workflow_id_for(id_or_key: str) -> str:
    """``usecase-<key>`` or the bare key → the run's workflow id (as the API addresses runs)."""
    return id_or_key if id_or_key.startswith(WORKFLOW_ID_PREFIX) else f"usecase-{id_or_key}"


# --------------------------------------------------------------------------- documents


class LedgerEntryView(BaseModel):
    """One ledger entry as stored. ``at`` is the canonical spelling the hash covers, so an
    auditor can recompute every hash from this document alone."""

    seq: int
    at: str
    kind: str
    actor: str
    channel: str
    payload: Any  # a JSON object as written; shown as stored even if it has been tampered with
    policy_version: str
    prev_hash: str
    hash: str


class PackUseCase(BaseModel):
    id: str
    key: str
    title: str | None
    risk_tier: str | None
    stage: str | None
    closed: bool
    outcome: str | None = None
    round: int | None = None
    path: list[str] = Field(default_factory=list)
    started_at: str | None = None
    updated_at: str | None = None


class PackPolicy(BaseModel):
    version: str | None
    sha256: str | None
    # the policy file's text when the file on disk still hashes to the pinned sha256
    content: str | None = None
    content_available: bool = False
    content_note: str | None = None


class EvidenceRef(BaseModel):
    kind: str
    name: str
    uri: str
    sha256: str


class PackDecision(BaseModel):
    seq: int
    at: str
    gate: str | None
    round: int | None
    decision: str | None
    actor: str
    channel: str
    comment: str = ""
    quorum: int | None = None
    evidence_digests: list[str] = Field(default_factory=list)
    # the evidence items those digests name, from the evidence table
    evidence: list[EvidenceRef] = Field(default_factory=list)
    # an approval counts only for the evidence it saw: later evidence for the same gate and
    # round voids it (an ``approvals_voided`` entry naming the approver)
    voided: bool = False
    voided_at_seq: int | None = None
    voided_by: str | None = None


class PackGatePassed(BaseModel):
    seq: int
    at: str
    gate: str | None
    round: int | None
    approvers: list[str] = Field(default_factory=list)


class PackEvidence(BaseModel):
    ledger_seq: int
    scope: str
    round: int
    kind: str
    name: str
    uri: str
    sha256: str
    submitted_by: str
    at: str


class PackRefused(BaseModel):
    seq: int
    at: str
    actor: str
    channel: str
    command: str | None = None
    refusal: str | None = None
    detail: str | None = None
    gate: str | None = None
    decision: str | None = None


class PackChange(BaseModel):
    change_id: str
    workflow_id: str
    materiality: str | None
    raised_by: str
    seq: int
    at: str


class PackLedger(BaseModel):
    entries: int
    head_hash: str | None
    verify: VerifyResult
    hash_recipe: str = HASH_RECIPE
    chain: list[LedgerEntryView]


class EvidencePack(BaseModel):
    format: str = PACK_FORMAT
    generated_at: str
    use_case: PackUseCase
    owners: dict[str, Any]
    roster: dict[str, Any]
    policy: PackPolicy
    decisions: list[PackDecision]
    gates_passed: list[PackGatePassed]
    evidence: list[PackEvidence]
    refused: list[PackRefused]
    changes: list[PackChange]
    ledger: PackLedger


# --------------------------------------------------------------------------- reads


def entry_view(row: LedgerEntry) -> LedgerEntryView:
    return LedgerEntryView(
        seq=row.seq,
        at=iso_utc(row.at),
        kind=row.kind,
        actor=row.actor,
        channel=row.channel,
        payload=row.payload,
        policy_version=row.policy_version,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def verify_document(result: VerifyResult) -> dict[str, Any]:
    """The contract's verify body: ``reason`` only when the chain is broken."""
    body: dict[str, Any] = {
        "ok": result.ok,
        "entries": result.entries,
        "first_bad_seq": result.first_bad_seq,
    }
    if not result.ok and result.reason:
        body["reason"] = result.reason
    return body


async def _known(session: AsyncSession, workflow_id: str) -> UseCase:
    row = await RegistryRepository(session).get(workflow_id)
    if row is None:
        raise UnknownUseCase(workflow_id)
    return row


async def ledger_of(session: AsyncSession, workflow_id: str) -> Sequence[LedgerEntry]:
    """A run's entries in seq order; ``UnknownUseCase`` when neither ledger nor registry has it."""
    rows = await LedgerRepository(session).entries(workflow_id)
    if not rows:
        await _known(session, workflow_id)
    return rows


async def verify_use_case(session: AsyncSession, workflow_id: str) -> VerifyResult:
    return verify_chain(await ledger_of(session, workflow_id))


# --------------------------------------------------------------------------- evidence pack


def pinned_policy(version: str | None, sha256: str | None, policy_path: Path | None) -> PackPolicy:
    """The pinned policy, with the file's content when the file still is that version."""
    pack = PackPolicy(version=version, sha256=sha256)
    if sha256 is None:
        pack.content_note = "content unavailable: the run's pinned policy hash is not in the ledger"
        return pack
    if policy_path is None:
        pack.content_note = "content unavailable: no policy file configured"
        return pack
    try:
        raw = policy_path.read_bytes()
    except OSError as exc:
        pack.content_note = f"content unavailable: {policy_path} cannot be read ({exc.strerror})"
        return pack
    on_disk = hashlib.sha256(raw).hexdigest()
    if on_disk != sha256.lower():
        pack.content_note = (
            f"content unavailable: {policy_path.name} now has sha256 {on_disk}, "
            "not the pinned one (the policy was edited after this run started)"
        )
        return pack
    try:
        pack.content = raw.decode("utf-8")
    except UnicodeDecodeError:
        pack.content_note = f"content unavailable: {policy_path.name} is not UTF-8 text"
        return pack
    pack.content_available = True
    return pack


def _payload(row: LedgerEntry | None) -> dict[str, Any]:
    # a payload edited into something other than an object still yields a (partial) pack
    return _dict(row.payload) if row is not None else {}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _strs(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def decisions_of(
    rows: Sequence[LedgerEntry], evidence_by_digest: dict[str, list[EvidenceRef]]
) -> list[PackDecision]:
    """Every decision entry, approvals marked voided when later evidence voided them.

    An ``approvals_voided`` entry voids the named approvers' approvals of the same gate and
    round that are still standing. A gate opening again (a new stage_entered / gate_opened for
    it) starts a fresh set of seats, so a later void never reaches back past it.
    """
    decisions: list[PackDecision] = []
    standing: dict[tuple[str | None, int | None], list[PackDecision]] = {}
    for row in rows:
        payload = _payload(row)
        gate = _str(payload.get("gate"))
        round_ = _int(payload.get("round"))
        if row.kind == "decision":
            digests = _strs(payload.get("evidence_digests"))
            decision = PackDecision(
                seq=row.seq,
                at=iso_utc(row.at),
                gate=gate,
                round=round_,
                decision=_str(payload.get("decision")),
                actor=row.actor,
                channel=row.channel,
                comment=_str(payload.get("comment")) or "",
                quorum=_int(payload.get("quorum")),
                evidence_digests=digests,
                evidence=[ref for d in digests for ref in evidence_by_digest.get(d.lower(), [])],
            )
            decisions.append(decision)
            if decision.decision == "approve":
                standing.setdefault((gate, round_), []).append(decision)
        elif row.kind == "approvals_voided":
            voided = set(_strs(payload.get("voided")))
            seats = standing.get((gate, round_), [])
            for decision in seats:
                if decision.actor in voided:
                    decision.voided = True
                    decision.voided_at_seq = row.seq
                    decision.voided_by = row.actor
            standing[(gate, round_)] = [d for d in seats if not d.voided]
        elif row.kind in ("stage_entered", "gate_opened"):
            opened = gate if row.kind == "gate_opened" else _str(payload.get("stage"))
            for key in [k for k in standing if k[0] == opened]:
                del standing[key]
    return decisions


def _evidence_refs(items: Sequence[EvidenceItem]) -> dict[str, list[EvidenceRef]]:
    refs: dict[str, list[EvidenceRef]] = {}
    for item in items:
        ref = EvidenceRef(kind=item.kind, name=item.name, uri=item.uri, sha256=item.sha256)
        known = refs.setdefault(item.sha256.lower(), [])
        if ref not in known:
            known.append(ref)
    return refs


async def build_evidence_pack(
    session: AsyncSession,
    id_or_key: str,
    *,
    policy_path: Path | None,
    now: datetime | None = None,
) -> EvidencePack:
    """The auditor's document for one run. Raises ``UnknownUseCase``.

    ``policy_path`` is the configured policy file; its text is included only when it hashes
    to the sha256 the run pinned at start.
    """
    workflow_id = workflow_id_for(id_or_key)
    repo = LedgerRepository(session)
    rows = await repo.entries(workflow_id)
    registry = await RegistryRepository(session).get(workflow_id)
    if not rows and registry is None:
        raise UnknownUseCase(workflow_id)
    items = await repo.evidence(workflow_id)

    started = next((r for r in rows if r.kind == "run_started"), None)
    start = _payload(started)
    closing = next((r for r in reversed(rows) if r.kind == "run_closed"), None)
    last = rows[-1] if rows else None
    last_payload = _payload(last)

    pinned = _dict(start.get("policy"))
    updated = last.at if last else (registry.updated_at if registry else None)
    use_case = PackUseCase(
        id=workflow_id,
        key=registry.key if registry else (rows[0].use_case_key if rows else id_or_key),
        title=_str(start.get("title")) or (registry.title if registry else None),
        risk_tier=_str(start.get("risk_tier")) or (registry.risk_tier if registry else None),
        # the registry is the current read model; the ledger's newest entry is the fallback
        stage=registry.stage if registry else _str(last_payload.get("stage")),
        closed=bool(registry.closed) if registry else closing is not None,
        outcome=_str(_payload(closing).get("outcome")) if closing else None,
        round=registry.round if registry else _int(last_payload.get("round")),
        path=_strs(start.get("path")),
        started_at=iso_utc(started.at) if started else None,
        updated_at=iso_utc(updated) if updated else None,
    )
    owners = _dict(start.get("owners")) or (_dict(registry.owners) if registry else {})
    roster = _dict(start.get("roster"))

    policy = pinned_policy(
        _str(pinned.get("version")) or (rows[0].policy_version if rows else None),
        _str(pinned.get("sha256")),
        policy_path,
    )

    refused = [
        PackRefused(
            seq=r.seq,
            at=iso_utc(r.at),
            actor=r.actor,
            channel=r.channel,
            command=_str(_payload(r).get("command")),
            refusal=_str(_payload(r).get("refusal")),
            detail=_str(_payload(r).get("detail")),
            gate=_str(_payload(r).get("gate")),
            decision=_str(_payload(r).get("decision")),
        )
        for r in rows
        if r.kind == "refused"
    ]
    gates_passed = [
        PackGatePassed(
            seq=r.seq,
            at=iso_utc(r.at),
            gate=_str(_payload(r).get("gate")),
            round=_int(_payload(r).get("round")),
            approvers=_strs(_payload(r).get("approvers")),
        )
        for r in rows
        if r.kind == "gate_passed"
    ]
    changes = [
        PackChange(
            change_id=change_id,
            workflow_id=f"{workflow_id}-{change_id}",
            materiality=_str(_payload(r).get("materiality")),
            raised_by=r.actor,
            seq=r.seq,
            at=iso_utc(r.at),
        )
        for r in rows
        if r.kind == "change_raised" and (change_id := _str(_payload(r).get("change")))
    ]
    evidence = [
        PackEvidence(
            ledger_seq=i.event_id,
            scope=i.scope,
            round=i.round,
            kind=i.kind,
            name=i.name,
            uri=i.uri,
            sha256=i.sha256,
            submitted_by=i.submitted_by,
            at=iso_utc(i.at),
        )
        for i in items
    ]
    return EvidencePack(
        generated_at=iso_utc(now or datetime.now(UTC)),
        use_case=use_case,
        owners=owners,
        roster=roster,
        policy=policy,
        decisions=decisions_of(rows, _evidence_refs(items)),
        gates_passed=gates_passed,
        evidence=evidence,
        refused=refused,
        changes=changes,
        ledger=PackLedger(
            entries=len(rows),
            head_hash=last.hash if last else None,
            # verify exactly the rows this pack shows, not a re-read that may have grown
            verify=verify_chain(rows),
            chain=[entry_view(r) for r in rows],
        ),
    )
