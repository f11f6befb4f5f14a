"""What an auditor reads: a run's ledger, its verification and the evidence pack.

One builder serves ``GET /v1/use-cases/{id}/evidence-pack`` and ``audit_cli export``, so the
document an auditor downloads and the one they export from the database are the same. The
pack's facts (owners, stage, decisions, evidence items) are read from the chained ledger
entries alone, never from the side tables (evidence, registry) a database administrator could
edit without breaking a hash; it never reads Temporal either, so it stays valid after the
workflow's history has expired. Its ``transparency`` section proves each entry's inclusion in
the signed transparency log (services/tlog), which ``services.tlog.auditor`` checks offline.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from services.store.blocked import BlockedRepository
from services.store.ledger import (
    LedgerRepository,
    VerifyResult,
    iso_utc,
    verify_chain,
)
from services.store.models import LedgerEntry, UseCase
from services.store.registry import RegistryRepository
from services.store.transparency import LogIncomplete, TransparencyLogRepository, heads_tree
from services.tlog.auditor import (
    Checkpoint,
    NoteError,
    Verifier,
    chained_evidence,
    open_note,
    parse_note,
)
from services.tlog.checkpoints import DirectorySink
from workflows.events import (
    ApprovalsVoided,
    ChangeRaised,
    DecisionMade,
    EventBody,
    Extras,
    GatePassed,
    Refused,
    RunClosed,
    RunStarted,
    WaiverExpired,
    WaiverFact,
    WaiverGranted,
    WaiverRequested,
    extras_as,
    parse_payload,
)
from workflows.ids import change_workflow_id, key_of, use_case_workflow_id
from workflows.model import Decision, EventKind

PACK_FORMAT = "releasegate.evidence-pack/1"

TLOG_FORMAT = "releasegate.tlog/1"
LEAF_RECIPE = (
    "RFC 6962: leaf hash = SHA-256(0x00 || the entry's hash as 32 bytes), node = SHA-256(0x01 "
    "|| left || right); leaves in append order across every run; the checkpoint's "
    "'releasegate/run-heads' line is the root of a second such tree over each run's newest "
    "entry (leaf data: canonical JSON of leaf_hash, leaf_index, seq, workflow_id), sorted by "
    "workflow_id"
)

HASH_RECIPE = (
    "hash = SHA-256 (hex) of the UTF-8 canonical JSON (keys sorted, separators ',' and ':', "
    "no ASCII escaping) of {workflow_id, seq, at, kind, actor, channel, payload, "
    "policy_version, prev_hash}, with at as ISO-8601 UTC with microseconds and 'Z' (as shown "
    "in the chain); the first entry's prev_hash is 64 zeros"
)


class UnknownUseCase(LookupError):
    """Neither the ledger nor the registry knows this use case."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"no use case '{workflow_id}'")
        self.workflow_id = workflow_id


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
    # a grantor's decision on a governed exception (no gate): the exception's id
    waiver: str | None = None


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


class PackWaiverDecision(BaseModel):
    seq: int
    at: str
    actor: str
    channel: str
    decision: str | None  # approve (a grant) or reject (a refusal)
    comment: str = ""


class PackWaiver(BaseModel):
    """A governed exception as its ledger entries tell it: what was waived, why, by whose
    grant, until when, and how it ended. An exception is never evidence that a requirement
    was met."""

    id: str
    requirement: dict[str, Any] | None = None
    justification: str = ""
    requested_by: str
    requested_at: str
    requested_seq: int
    expires_at: str | None = None
    grantors: list[str] = Field(default_factory=list)  # who could grant it
    status: str = "pending"  # pending | granted | refused | expired
    decisions: list[PackWaiverDecision] = Field(default_factory=list)
    granted_at: str | None = None
    granted_seq: int | None = None
    granted_by: list[str] = Field(default_factory=list)
    refused_at: str | None = None
    refused_seq: int | None = None
    refused_by: str | None = None
    expired_at: str | None = None
    expired_seq: int | None = None
    expired_after_grant: bool | None = None
    consequence: str | None = None


class PackLedger(BaseModel):
    entries: int
    head_hash: str | None
    verify: VerifyResult
    hash_recipe: str = HASH_RECIPE
    chain: list[LedgerEntryView]


class PackLeaf(BaseModel):
    seq: int
    leaf_index: int
    # RFC 9162 inclusion proof (hex, bottom-up) against the checkpoint's root
    inclusion: list[str] = Field(default_factory=list)


class PackPendingLeaf(BaseModel):
    seq: int
    leaf_index: int


class PackRunHead(BaseModel):
    """The run's newest entry as of the checkpoint, proven in its run-heads tree."""

    seq: int
    leaf_index: int
    leaf_hash: str
    heads_index: int
    inclusion: list[str] = Field(default_factory=list)


class PackConsistency(BaseModel):
    old: int
    proof: list[str] = Field(default_factory=list)


class PackTransparency(BaseModel):
    format: str = TLOG_FORMAT
    workflow_id: str
    leaf_recipe: str = LEAF_RECIPE
    # the newest signed checkpoint (a C2SP signed note), the proofs' anchor
    checkpoint: str | None = None
    tree_size: int | None = None
    # consistency from the checkpoint signed before it
    checkpoint_consistency: PackConsistency | None = None
    leaves: list[PackLeaf] = Field(default_factory=list)
    # entries logged after the checkpoint: not provable yet
    pending: list[PackPendingLeaf] = Field(default_factory=list)
    run_head: PackRunHead | None = None
    # why proofs are missing (no checkpoint yet, leaves missing from the log)
    problem: str | None = None


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
    transparency: PackTransparency | None = None
    # governed exceptions (waivers): requested, decided, granted, refused, expired
    waivers: list[PackWaiver] = Field(default_factory=list)


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
    """The contract's verify body, with the run's own event count (``expected_entries``);
    ``reason`` only when the chain is broken."""
    body: dict[str, Any] = {
        "ok": result.ok,
        "entries": result.entries,
        "first_bad_seq": result.first_bad_seq,
        "expected_entries": result.expected_entries,
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
    """A run's entries in seq order; ``UnknownUseCase`` when neither ledger nor registry has
    it, ``LedgerBlocked`` when the store refused part of it for good (the chain shown would
    stop short without saying so)."""
    rows = await LedgerRepository(session).entries(workflow_id)
    if not rows:
        await _known(session, workflow_id)
    await BlockedRepository(session).ensure_open(workflow_id)
    return rows


async def verify_use_case(session: AsyncSession, workflow_id: str) -> VerifyResult:
    """The chain held to the run's own event count (see ``verify_chain``)."""
    rows = await ledger_of(session, workflow_id)
    expected = await LedgerRepository(session).expected_entries(workflow_id)
    return verify_chain(rows, expected=expected)


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


def recorded(model: BaseModel, name: str) -> Any:
    """The field as the payload recorded it, None when it holds only the model's default:
    an auditor is shown what was written, never a filled-in value."""
    return getattr(model, name) if name in model.model_fields_set else None


@dataclass(frozen=True)
class _Fact:
    """A ledger row with its payload parsed for its kind (a payload edited into something
    that does not parse reads as its defaults, so a tampered ledger still yields a pack)."""

    row: LedgerEntry
    body: EventBody
    extras: Extras

    @classmethod
    def of(cls, row: LedgerEntry) -> _Fact:
        body, extras = parse_payload(row.kind, row.payload)
        return cls(row, body, extras)

    @property
    def kind(self) -> str:
        return self.row.kind

    def gate(self) -> str | None:
        return self.body.gate.value if self.body.gate is not None else None

    def round(self) -> int | None:
        return recorded(self.body, "round")

    def stage(self) -> str | None:
        stage = recorded(self.body, "stage")
        return stage.value if stage is not None else None


def _decision(fact: _Fact, evidence_by_digest: dict[str, list[EvidenceRef]]) -> PackDecision:
    made = extras_as(DecisionMade, fact.extras)
    digests = made.evidence_digests
    return PackDecision(
        seq=fact.row.seq,
        at=iso_utc(fact.row.at),
        gate=fact.gate(),
        round=fact.round(),
        decision=fact.body.decision,
        actor=fact.row.actor,
        channel=fact.row.channel,
        comment=fact.body.comment,
        quorum=recorded(made, "quorum"),
        evidence_digests=digests,
        evidence=[ref for d in digests for ref in evidence_by_digest.get(d.lower(), [])],
        waiver=made.waiver,
    )


class _Seats:
    """Every decision entry, approvals marked voided when later evidence voided them.

    Reads the ledger in order, keeping the approvals standing per (gate, round). An
    ``approvals_voided`` entry voids the named approvers' approvals of the same gate and round
    that are still standing. A gate opening again (a new stage_entered / gate_opened for it)
    starts a fresh set of seats, so a later void never reaches back past it.
    """

    def __init__(self, evidence_by_digest: dict[str, list[EvidenceRef]]) -> None:
        self.evidence_by_digest = evidence_by_digest
        self.decisions: list[PackDecision] = []
        self.standing: dict[tuple[str | None, int | None], list[PackDecision]] = {}

    def walk(self, facts: Sequence[_Fact]) -> list[PackDecision]:
        for fact in facts:
            if fact.kind == EventKind.DECISION:
                self.decided(fact)
            elif fact.kind == EventKind.APPROVALS_VOIDED:
                self.voided(fact)
            elif fact.kind == EventKind.GATE_OPENED:
                self.opened(fact.gate())
            elif fact.kind == EventKind.STAGE_ENTERED:
                self.opened(fact.stage())
        return self.decisions

    def decided(self, fact: _Fact) -> None:
        decision = _decision(fact, self.evidence_by_digest)
        self.decisions.append(decision)
        if fact.body.decision is Decision.APPROVE:
            self.standing.setdefault((decision.gate, decision.round), []).append(decision)

    def voided(self, fact: _Fact) -> None:
        names = set(extras_as(ApprovalsVoided, fact.extras).voided)
        seats = self.standing.get((fact.gate(), fact.round()), [])
        for decision in seats:
            if decision.actor in names:
                decision.voided = True
                decision.voided_at_seq = fact.row.seq
                decision.voided_by = fact.row.actor
        self.standing[(fact.gate(), fact.round())] = [d for d in seats if not d.voided]

    def opened(self, gate: str | None) -> None:
        for key in [k for k in self.standing if k[0] == gate]:
            del self.standing[key]


def _evidence_refs(items: Sequence[PackEvidence]) -> dict[str, list[EvidenceRef]]:
    refs: dict[str, list[EvidenceRef]] = {}
    for item in items:
        ref = EvidenceRef(kind=item.kind, name=item.name, uri=item.uri, sha256=item.sha256)
        known = refs.setdefault(item.sha256.lower(), [])
        if ref not in known:
            known.append(ref)
    return refs


def _refused(fact: _Fact) -> PackRefused:
    refused = extras_as(Refused, fact.extras)
    return PackRefused(
        seq=fact.row.seq,
        at=iso_utc(fact.row.at),
        actor=fact.row.actor,
        channel=fact.row.channel,
        command=recorded(refused, "command"),
        refusal=recorded(refused, "refusal"),
        detail=recorded(refused, "detail"),
        gate=fact.gate(),
        decision=fact.body.decision,
    )


def _gate_passed(fact: _Fact) -> PackGatePassed:
    return PackGatePassed(
        seq=fact.row.seq,
        at=iso_utc(fact.row.at),
        gate=fact.gate(),
        round=fact.round(),
        approvers=extras_as(GatePassed, fact.extras).approvers,
    )


def _changes(workflow_id: str, facts: Sequence[_Fact]) -> list[PackChange]:
    raised = [
        (fact, extras_as(ChangeRaised, fact.extras))
        for fact in facts
        if fact.kind == EventKind.CHANGE_RAISED
    ]
    return [
        PackChange(
            change_id=change.change,
            workflow_id=change_workflow_id(workflow_id, change.change),
            materiality=change.materiality,
            raised_by=fact.row.actor,
            seq=fact.row.seq,
            at=iso_utc(fact.row.at),
        )
        for fact, change in raised
        if change.change
    ]


def _waivers(facts: Sequence[_Fact]) -> list[PackWaiver]:
    """Every governed exception, from its entries in order (a later entry of an id that was
    never requested is left out: the ledger must tell the whole story)."""
    found: dict[str, PackWaiver] = {}
    for fact in facts:
        at, seq = iso_utc(fact.row.at), fact.row.seq
        if fact.kind == EventKind.WAIVER_REQUESTED:
            asked = extras_as(WaiverRequested, fact.extras)
            if asked.waiver:
                found[asked.waiver] = PackWaiver(
                    id=asked.waiver,
                    requirement=_requirement(asked),
                    justification=fact.body.comment,
                    requested_by=fact.row.actor,
                    requested_at=at,
                    requested_seq=seq,
                    expires_at=asked.expires_at,
                    grantors=asked.grantors,
                )
            continue
        if fact.kind == EventKind.DECISION:
            made = extras_as(DecisionMade, fact.extras)
            if made.waiver in found:
                found[made.waiver].decisions.append(
                    PackWaiverDecision(
                        seq=seq,
                        at=at,
                        actor=fact.row.actor,
                        channel=fact.row.channel,
                        decision=fact.body.decision,
                        comment=fact.body.comment,
                    )
                )
            continue
        waiver = found.get(extras_as(WaiverFact, fact.extras).waiver)
        if waiver is None:
            continue
        if fact.kind == EventKind.WAIVER_GRANTED:
            granted = extras_as(WaiverGranted, fact.extras)
            waiver.status, waiver.granted_at, waiver.granted_seq = "granted", at, seq
            waiver.granted_by = granted.grantors
        elif fact.kind == EventKind.WAIVER_REFUSED:
            waiver.status, waiver.refused_at, waiver.refused_seq = "refused", at, seq
            waiver.refused_by = fact.row.actor
        elif fact.kind == EventKind.WAIVER_EXPIRED:
            expired = extras_as(WaiverExpired, fact.extras)
            waiver.status, waiver.expired_at, waiver.expired_seq = "expired", at, seq
            waiver.expired_after_grant = expired.was_granted
            waiver.consequence = expired.consequence or None
    return list(found.values())


def _requirement(fact: WaiverFact) -> dict[str, Any] | None:
    if fact.requirement is None:
        return None
    return fact.requirement.model_dump(mode="json", exclude_none=True)


def _chained_evidence(facts: Sequence[_Fact]) -> list[PackEvidence]:
    """Every evidence item as its entry recorded it: scope and round are where the run stood,
    the submitter is the entry's actor (the evidence table is a copy, never read here)."""
    items = []
    for fact in facts:
        payload = fact.row.payload if isinstance(fact.row.payload, dict) else {}
        for item in chained_evidence(payload):
            items.append(
                PackEvidence(
                    ledger_seq=fact.row.seq,
                    scope=str(payload.get("stage", "")),
                    round=payload.get("round", 1) if isinstance(payload.get("round"), int) else 1,
                    kind=str(item.get("kind", "")),
                    name=str(item.get("name", "")),
                    uri=str(item.get("uri", "")),
                    sha256=str(item.get("sha256", "")),
                    submitted_by=fact.row.actor,
                    at=iso_utc(fact.row.at),
                )
            )
    return items


@dataclass(frozen=True)
class _RunRecord:
    """What the store holds about one run: its ledger (parsed) and registry row. The registry
    row only supplies the run's event count for ``ledger.verify``; no fact comes from it."""

    workflow_id: str
    facts: list[_Fact]
    registry: UseCase | None

    @property
    def rows(self) -> list[LedgerEntry]:
        return [fact.row for fact in self.facts]

    def first(self, kind: EventKind) -> _Fact | None:
        return next((f for f in self.facts if f.kind == kind), None)

    def last(self, kind: EventKind | None = None) -> _Fact | None:
        return next((f for f in reversed(self.facts) if kind is None or f.kind == kind), None)

    def started(self) -> RunStarted:
        fact = self.first(EventKind.RUN_STARTED)
        return extras_as(RunStarted, fact.extras) if fact else RunStarted()


async def _load(session: AsyncSession, workflow_id: str) -> _RunRecord:
    rows = await LedgerRepository(session).entries(workflow_id)
    registry = await RegistryRepository(session).get(workflow_id)
    # a run whose entries (and registry row) were all deleted still has its leaves in the
    # log: its pack is built (empty) so that verification names what is missing
    if (
        not rows
        and registry is None
        and not await TransparencyLogRepository(session).has_run(workflow_id)
    ):
        raise UnknownUseCase(workflow_id)
    return _RunRecord(workflow_id, [_Fact.of(row) for row in rows], registry)


def _use_case(run: _RunRecord) -> PackUseCase:
    start = run.started()
    started = run.first(EventKind.RUN_STARTED)
    closing = run.last(EventKind.RUN_CLOSED)
    last = run.last()
    return PackUseCase(
        id=run.workflow_id,
        key=run.facts[0].row.use_case_key if run.facts else key_of(run.workflow_id),
        title=start.title or None,
        risk_tier=start.risk_tier.value if start.risk_tier else None,
        # where the newest entry says the run stands
        stage=_raw_stage(last) if last else None,
        closed=closing is not None,
        outcome=extras_as(RunClosed, closing.extras).outcome if closing else None,
        round=last.round() if last else None,
        path=[stage.value for stage in start.path],
        started_at=iso_utc(started.row.at) if started else None,
        updated_at=iso_utc(last.row.at) if last else None,
    )


def _raw_stage(fact: _Fact) -> str | None:
    stage = fact.row.payload.get("stage") if isinstance(fact.row.payload, dict) else None
    return stage if isinstance(stage, str) else None


def _policy(run: _RunRecord, policy_path: Path | None) -> PackPolicy:
    pin = run.started().policy
    # the run_started pin, else the version every ledger row carries
    version = (pin.version if pin else None) or (
        run.facts[0].row.policy_version if run.facts else None
    )
    return pinned_policy(version, pin.sha256 if pin else None, policy_path)


def _ledger(rows: Sequence[LedgerEntry], registry: UseCase | None) -> PackLedger:
    return PackLedger(
        entries=len(rows),
        head_hash=rows[-1].hash if rows else None,
        # verify exactly the rows this pack shows, not a re-read that may have grown, held to
        # the event count of the registry row this pack was built with
        verify=verify_chain(rows, expected=registry.event_id if registry else None),
        chain=[entry_view(r) for r in rows],
    )


async def build_evidence_pack(
    session: AsyncSession,
    id_or_key: str,
    *,
    policy_path: Path | None,
    now: datetime | None = None,
    checkpoints: CheckpointSource | None = None,
) -> EvidencePack:
    """The auditor's document for one run. Raises ``UnknownUseCase``.

    ``policy_path`` is the configured policy file; its text is included only when it hashes
    to the sha256 the run pinned at start. ``checkpoints``: where the signed checkpoints are
    (default: the database's copies only).
    """
    run = await _load(session, use_case_workflow_id(id_or_key))
    start = run.started()
    evidence = _chained_evidence(run.facts)
    return EvidencePack(
        generated_at=iso_utc(now or datetime.now(UTC)),
        use_case=_use_case(run),
        owners=dict(start.owners),
        roster=dict(start.roster),
        policy=_policy(run, policy_path),
        decisions=_Seats(_evidence_refs(evidence)).walk(run.facts),
        gates_passed=[_gate_passed(f) for f in run.facts if f.kind == EventKind.GATE_PASSED],
        evidence=evidence,
        refused=[_refused(f) for f in run.facts if f.kind == EventKind.REFUSED],
        changes=_changes(run.workflow_id, run.facts),
        waivers=_waivers(run.facts),
        ledger=_ledger(run.rows, run.registry),
        transparency=await transparency_section(
            session, run.workflow_id, checkpoints or CheckpointSource()
        ),
    )


# --------------------------------------------------------------------------- transparency


@dataclass(frozen=True)
class CheckpointSource:
    """Where the signed checkpoints are: the database's copies and the checkpoint directory.
    With ``keys``, only checkpoints those keys signed count (a copy in the database cannot be
    forged, only withheld; the directory is out of the database's reach)."""

    keys: Sequence[Verifier] = ()
    directory: Path | None = None

    async def notes(self, session: AsyncSession) -> list[str]:
        stored = [row.note for row in await TransparencyLogRepository(session).checkpoints()]
        return stored + (DirectorySink(self.directory).notes() if self.directory else [])

    async def latest(self, session: AsyncSession) -> tuple[Checkpoint, str, list[int]] | None:
        """The newest checkpoint, its note, and the sizes of every known checkpoint. Of two
        trees of the newest size (a fork: never signed by an untampered log), the one the
        stored leaves give; the proofs then show the other for what it is."""
        notes = await self.notes(session)
        parsed = [(c, n) for n in notes if (c := _checkpoint_of(n, self.keys)) is not None]
        if not parsed:
            return None
        size = max(c.size for c, _ in parsed)
        newest = [(c, n) for c, n in parsed if c.size == size]
        if len({c.root for c, _ in newest}) > 1:
            with contextlib.suppress(LogIncomplete):
                root = (await TransparencyLogRepository(session).tree(size)).root
                newest.sort(key=lambda item: item[0].root != root)
        checkpoint, note = newest[0]
        return checkpoint, note, sorted({c.size for c, _ in parsed})


def _checkpoint_of(note: str, keys: Sequence[Verifier]) -> Checkpoint | None:
    try:
        text = open_note(note, keys)[0].text if keys else parse_note(note).text
        return Checkpoint.parse(text)
    except NoteError:
        return None


def _hex(proof: Sequence[bytes]) -> list[str]:
    return [p.hex() for p in proof]


async def transparency_section(
    session: AsyncSession, workflow_id: str, source: CheckpointSource
) -> PackTransparency:
    """Inclusion proofs of the run's leaves and its run head against the newest checkpoint."""
    repo = TransparencyLogRepository(session)
    run_leaves = await repo.run_leaves(workflow_id)
    section = PackTransparency(workflow_id=workflow_id)
    latest = await source.latest(session)
    if latest is None:
        section.pending = [PackPendingLeaf(seq=x.seq, leaf_index=x.leaf_index) for x in run_leaves]
        section.problem = "no checkpoint has been signed yet"
        return section
    checkpoint, note, sizes = latest
    section.checkpoint, section.tree_size = note, checkpoint.size
    try:
        tree = await repo.tree(checkpoint.size)
    except LogIncomplete as exc:
        section.problem = f"the log cannot prove the checkpoint of size {checkpoint.size}: {exc}"
        return section
    older = [size for size in sizes if size < checkpoint.size]
    if older:
        section.checkpoint_consistency = PackConsistency(
            old=older[-1], proof=_hex(tree.consistency_proof(older[-1]))
        )
    for leaf in run_leaves:
        if leaf.leaf_index < checkpoint.size:
            section.leaves.append(
                PackLeaf(
                    seq=leaf.seq,
                    leaf_index=leaf.leaf_index,
                    inclusion=_hex(tree.inclusion_proof(leaf.leaf_index)),
                )
            )
        else:
            section.pending.append(PackPendingLeaf(seq=leaf.seq, leaf_index=leaf.leaf_index))
    heads = sorted(await repo.heads_at(checkpoint.size), key=lambda h: h.workflow_id)
    position = next((i for i, h in enumerate(heads) if h.workflow_id == workflow_id), None)
    if position is not None:
        head = heads[position]
        section.run_head = PackRunHead(
            seq=head.seq,
            leaf_index=head.leaf_index,
            leaf_hash=head.leaf_hash.hex(),
            heads_index=position,
            inclusion=_hex(heads_tree(heads).inclusion_proof(position)),
        )
    return section


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
