"""The outbox: facts, notices and hook calls a run records, for the run loop to ship in order.

Handlers never do I/O. They record here; the workflow's run loop ships the ledger batch, calls
hooks, sends notices and syncs the read model. ``publish`` marks that what the world sees of the
run (search attributes, current details, the read model) must be brought up to date.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from workflows import bundles, presentation
from workflows.activities import GateCard, HookRequest, LedgerRecord, Notification, NotificationKind
from workflows.events import EventBody, extras_model, payload_of
from workflows.model import (
    ChangeOutcome,
    ChangeStatus,
    Channel,
    Decision,
    EventKind,
    Evidence,
    EvidenceRecord,
    Gate,
    GateOutcome,
    HistoryEvent,
    HookKind,
)
from workflows.state import Run

SYSTEM = "system"  # the actor of what the clock and the run itself do


def record(
    run: Run,
    kind: EventKind,
    now: datetime,
    *,
    actor: str,
    channel: Channel = Channel.SYSTEM,
    gate: Gate | None = None,
    decision: Decision | None = None,
    comment: str = "",
    evidence: list[EvidenceRecord] | None = None,
    extras: dict[str, Any] | None = None,
) -> None:
    """One fact: into the history the API shows, and into the outbox for the ledger."""
    state = run.state
    state.updated_at = now
    state.event_id += 1
    items = [
        Evidence(**e.model_dump(include={"kind", "name", "uri", "sha256"})) for e in evidence or []
    ]
    state.history.append(
        HistoryEvent(
            at=now,
            stage=state.stage,
            kind=kind,
            actor=actor,
            channel=channel,
            decision=decision,
            gate=gate,
            comment=comment,
            evidence=items,
            round=state.round,
        )
    )
    body = EventBody(
        stage=state.stage,
        round=state.round,
        gate=gate,
        decision=decision,
        comment=comment,
        evidence=items,
    )
    own = extras_model(kind).model_validate(extras or {})
    state.outbox.ledger.append(
        LedgerRecord(
            workflow_id=run.workflow_id,
            use_case_key=run.inp.key,
            event_id=state.event_id,
            at=now,
            kind=kind,
            actor=actor,
            channel=channel,
            payload=payload_of(body, own),
            policy_version=run.policy.version,
            evidence=list(evidence or []),
        )
    )


def publish(run: Run) -> None:
    """What the world sees of the run changed: search attributes, details, read model."""
    run.state.outbox.publishes += 1
    run.state.outbox.read_model_stale = True


def gate_notice(
    run: Run,
    kind: NotificationKind,
    now: datetime,
    *,
    outcome: GateOutcome | None = None,
    by: str | None = None,
    comment: str = "",
) -> None:
    """Queue a gate card: opened for the people it waits on, then updated in place."""
    card = presentation.gate_card(run, outcome=outcome, by=by, comment=comment)
    if card is None:
        return
    text, recipients = presentation.gate_notice_text(run, kind, card)
    run.state.outbox.notices.append(_notice(run, kind, text, now, card=card, recipients=recipients))


def live_notice(run: Run, text: str, now: datetime) -> None:
    owners = run.inp.owners
    recipients = sorted({owners.business_owner, owners.technical_owner, owners.operations_owner})
    run.state.outbox.notices.append(
        _notice(
            run, NotificationKind.LIVE_EVENT, f"{run.inp.title}: {text}", now, recipients=recipients
        )
    )


def notice(
    run: Run, kind: NotificationKind, text: str, now: datetime, recipients: list[str]
) -> None:
    """Queue a plain notice to the people named."""
    run.state.outbox.notices.append(_notice(run, kind, text, now, recipients=recipients))


def _notice(
    run: Run,
    kind: NotificationKind,
    text: str,
    now: datetime,
    *,
    card: GateCard | None = None,
    recipients: list[str] | None = None,
) -> Notification:
    return Notification(
        kind=kind,
        workflow_id=run.workflow_id,
        key=run.inp.key,
        title=run.inp.title,
        risk_tier=run.inp.risk_tier.value,
        stage=run.state.stage.value,
        round=card.round if card else run.state.round,
        at=now,
        text=text,
        gate=card,
        evidence=[
            Evidence(**e.model_dump(include={"kind", "name", "uri", "sha256"}))
            for e in run.state.evidence
        ],
        recipients=recipients or [],
        slack_channel=run.inp.slack_channel,
    )


def hook(run: Run, kind: HookKind, payload: dict[str, Any]) -> None:
    """Queue a deploy or rollback hook call, if the use case or the policy names a URL."""
    url = getattr(run.inp.hooks, f"{kind.value}_url", None) if run.inp.hooks else None
    url = url or getattr(run.policy.live.hooks, f"{kind.value}_url", None)
    if not url:
        return
    run.state.outbox.hooks.append(
        HookRequest(
            workflow_id=run.workflow_id,
            use_case_key=run.inp.key,
            hook=kind,
            url=url,
            idempotency_key=f"{run.workflow_id}:{run.state.event_id}:{kind.value}",
            payload={
                "use_case": run.inp.key,
                "stage": run.state.stage.value,
                **payload,
                # a deploy names the bundle it makes live: the approved one
                **(bundles.hook_fields(run) if kind == HookKind.DEPLOY else {}),
            },
        )
    )


def report_to_parent(run: Run, outcome: ChangeStatus, now: datetime) -> None:
    """A change request's run tells its use case how it ended."""
    assert run.change is not None
    run.state.outbox.parent_report = ChangeOutcome(
        change_id=run.change.change_id,
        outcome=outcome,
        at=now,
        evidence=list(run.state.evidence),
    )


__all__ = [
    "SYSTEM",
    "gate_notice",
    "hook",
    "live_notice",
    "notice",
    "publish",
    "record",
    "report_to_parent",
]
