"""Builders for store payloads with sensible defaults."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from workflows.activities import LedgerBatch, LedgerRecord, RegistryRow
from workflows.ids import key_of, use_case_workflow_id
from workflows.model import Channel, EventKind, EvidenceRecord

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def new_workflow_id() -> str:
    return use_case_workflow_id(f"t{uuid.uuid4().hex[:16]}")


def sha(label: str) -> str:
    """A distinct, valid 64-hex digest per label."""
    return hashlib.sha256(label.encode()).hexdigest()


def evidence_item(
    name: str, *, kind: str = "evaluation_report", scope: str = "validation"
) -> EvidenceRecord:
    return EvidenceRecord(
        kind=kind,
        name=name,
        uri=f"s3://evidence/{name}",
        sha256=sha(name),
        scope=scope,
        round=1,
        submitted_by="dana",
        at=T0,
    )


def record(
    workflow_id: str,
    event_id: int,
    *,
    kind: EventKind | str = EventKind.STAGE_COMPLETED,
    payload: dict[str, Any] | None = None,
    evidence: Iterable[EvidenceRecord] = (),
) -> LedgerRecord:
    return LedgerRecord(
        workflow_id=workflow_id,
        use_case_key=key_of(workflow_id),
        event_id=event_id,
        at=T0 + timedelta(minutes=event_id, microseconds=event_id),
        kind=kind,
        actor="dana",
        channel=Channel.API,
        payload=payload if payload is not None else {"n": event_id, "note": "größe ✓"},
        policy_version="2026.1",
        evidence=list(evidence),
    )


def batch(workflow_id: str, event_ids: Iterable[int]) -> LedgerBatch:
    return LedgerBatch(records=[record(workflow_id, e) for e in event_ids])


def registry_row(workflow_id: str | None = None, **overrides: Any) -> RegistryRow:
    workflow_id = workflow_id or new_workflow_id()
    values: dict[str, Any] = {
        "workflow_id": workflow_id,
        "key": key_of(workflow_id),
        "title": f"Use case {workflow_id}",
        "risk_tier": "medium",
        "stage": "implementation",
        "closed": False,
        "business_owner": "bo",
        "owners": {
            "delivery_lead": "dana",
            "business_owner": "bo",
            "technical_owner": "tom",
            "operations_owner": "olga",
            "risk_approvers": ["rita", "group:risk-committee"],
            "escalation_owner": "eve",
            "stop_authority": ["bo", "tom"],
        },
        "pending_approvers": [],
        "gate": None,
        "quorum": None,
        "approvals": [],
        "due_at": None,
        "round": 1,
        "updated_at": T0,
        "event_id": 1,
    }
    values.update(overrides)
    return RegistryRow(**values)
