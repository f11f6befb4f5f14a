"""Builders for transparency-log tests: a signing log with a checkpoint directory, a run whose
entries look like a real high-tier release, appends and evidence packs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.store.audit import CheckpointSource, build_evidence_pack
from services.store.db import session_scope
from services.store.ledger import LedgerRepository
from services.store.transparency import TransparencyLogRepository
from services.tlog.auditor import Report, Verifier, verify_pack
from services.tlog.checkpoints import (
    CheckpointPolicy,
    DirectorySink,
    SignedCheckpoint,
    WitnessClient,
)
from services.tlog.note import NoteSigner, new_seed
from services.tlog.publish import Publisher
from tests.store.factories import T0, sha
from workflows.activities import LedgerBatch, LedgerRecord
from workflows.ids import key_of
from workflows.model import Channel, EventKind

Sessions = async_sessionmaker[AsyncSession]
ORIGIN = "ledger.test/releasegate"
OWNERS = {
    "delivery_lead": "dana",
    "business_owner": "bo",
    "technical_owner": "tom",
    "operations_owner": "olga",
    "risk_approvers": ["rita", "raj"],
    "escalation_owner": "eve",
}


@dataclass
class SigningLog:
    """The worker's side of the log in a test: its key, policy and checkpoint directory."""

    sessionmaker: Sessions
    directory: Path
    every: int = 1_000_000
    signer: NoteSigner = field(default_factory=lambda: NoteSigner(ORIGIN, new_seed()))
    signed: list[SignedCheckpoint] = field(default_factory=list)
    witness: WitnessClient | None = None

    @property
    def policy(self) -> CheckpointPolicy:
        return CheckpointPolicy(self.signer, every=self.every, seconds=3600)

    @property
    def publisher(self) -> Publisher:
        return Publisher(self.sessionmaker, DirectorySink(self.directory), self.witness)

    @property
    def keys(self) -> list[Verifier]:
        return [self.signer.verifier]

    def source(self) -> CheckpointSource:
        return CheckpointSource(keys=self.keys, directory=self.directory)

    async def append(self, *records: LedgerRecord) -> int:
        async with session_scope(self.sessionmaker) as session:
            ledger = LedgerRepository(session, self.policy)
            written = await ledger.append(LedgerBatch(records=list(records)))
        if ledger.signed is not None:
            self.signed.append(ledger.signed)
            await self.publisher.publish(ledger.signed)
        return written

    async def checkpoint(self) -> SignedCheckpoint | None:
        """Sign now (as the timer does when entries have waited long enough)."""
        policy = CheckpointPolicy(self.signer, every=1, seconds=3600)
        async with session_scope(self.sessionmaker) as session:
            signed = await TransparencyLogRepository(session).checkpoint_if_due(policy)
        if signed is not None:
            self.signed.append(signed)
            await self.publisher.publish(signed)
        return signed

    async def pack(self, workflow_id: str) -> dict[str, Any]:
        async with session_scope(self.sessionmaker) as session:
            pack = await build_evidence_pack(
                session, workflow_id, policy_path=None, checkpoints=self.source()
            )
        document: dict[str, Any] = json.loads(pack.model_dump_json())
        return document

    def verify(self, pack: dict[str, Any], *dirs: Path) -> Report:
        return verify_pack(pack, self.keys, list(dirs) or [self.directory])


def entry(
    workflow_id: str,
    event_id: int,
    kind: EventKind,
    actor: str,
    payload: dict[str, Any],
    channel: Channel = Channel.API,
) -> LedgerRecord:
    return LedgerRecord(
        workflow_id=workflow_id,
        use_case_key=key_of(workflow_id),
        event_id=event_id,
        at=T0 + timedelta(minutes=event_id),
        kind=kind,
        actor=actor,
        channel=channel,
        payload=payload,
        policy_version="2026.2",
    )


def evidence(kind: str, name: str) -> dict[str, str]:
    return {"kind": kind, "name": name, "uri": f"s3://evidence/{name}", "sha256": sha(name)}


RITA_DECISION_SEQ = 4


def high_tier_run(workflow_id: str, tier: str = "high") -> list[LedgerRecord]:
    """A release up to go-live: rita first asks for changes (seq 4), then the gate passes."""
    assessment = evidence("risk_assessment", f"{workflow_id}-risk.pdf")
    dpia = evidence("dpia", f"{workflow_id}-dpia.pdf")
    gate = {"stage": "risk_signoff", "round": 1, "gate": "risk_signoff"}
    records = [
        (
            EventKind.RUN_STARTED,
            "dana",
            {
                "stage": "scoping",
                "round": 1,
                "title": "KYC onboarding assistant",
                "risk_tier": tier,
                "owners": OWNERS,
                "roster": {"risk_approver": ["raj", "rita"]},
                "path": ["scoping", "risk_signoff", "go_live"],
            },
        ),
        (
            EventKind.STAGE_COMPLETED,
            "dana",
            {"stage": "scoping", "round": 1, "evidence": [assessment]},
        ),
        (EventKind.GATE_OPENED, "system", gate),
        (
            EventKind.DECISION,
            "rita",
            {
                **gate,
                "decision": "request_changes",
                "comment": "a DPIA is missing",
                "evidence_digests": [assessment["sha256"]],
                "quorum": 2,
            },
        ),
        (EventKind.EVIDENCE_ADDED, "tom", {**gate, "evidence": [dpia]}),
        (
            EventKind.DECISION,
            "rita",
            {
                **gate,
                "decision": "approve",
                "evidence_digests": [assessment["sha256"], dpia["sha256"]],
            },
        ),
        (
            EventKind.DECISION,
            "raj",
            {
                **gate,
                "decision": "approve",
                "evidence_digests": [assessment["sha256"], dpia["sha256"]],
            },
        ),
        (EventKind.GATE_PASSED, "system", {**gate, "approvers": ["rita", "raj"]}),
        (EventKind.STAGE_ENTERED, "system", {"stage": "go_live", "round": 1}),
        (
            EventKind.DECISION,
            "bo",
            {"stage": "go_live", "round": 1, "gate": "go_live", "decision": "approve"},
        ),
        (EventKind.STAGE_ENTERED, "system", {"stage": "live", "round": 1}),
    ]
    return [
        entry(workflow_id, n, kind, actor, payload)
        for n, (kind, actor, payload) in enumerate(records, start=1)
    ]
