"""What the world sees of a run: the state view, the Temporal UI details, search attribute
values, gate cards and notice texts, and the read model's row. Pure functions of the run."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from workflows import bundles, policy
from workflows.activities import (
    GateCard,
    NotificationKind,
    RegistryRow,
    SideDecision,
    SideDecisionKind,
)
from workflows.model import (
    WORK_STAGES,
    ChangeStatus,
    Deputies,
    GateOutcome,
    Override,
    PolicyRef,
    Stage,
    UseCaseView,
    Waiver,
    WaiverStatus,
)
from workflows.state import Run

# How many of the lists that grow with a run's life the view carries (the latest ones). Every
# command's answer is a view and enters the run's history, so these keep the history a run
# adds per command constant; the whole lists are pages of the ledger.
VIEW_INCIDENTS = 5
VIEW_CHANGES = 5
VIEW_EVIDENCE = 20
_OPEN_CHANGE = (ChangeStatus.OPEN, ChangeStatus.AWAITING_RESUME)


def _approvers(run: Run) -> list[str]:
    gate = run.state.gate
    return [a.actor for a in gate.approvals] if gate else []


def pending(run: Run) -> list[str]:
    """Who the open gate still waits on (computed when the gate or its approvals change)."""
    return list(run.state.gate.pending) if run.state.gate else []


def required_evidence(run: Run) -> list[str]:
    state = run.state
    if state.gate is not None:
        return list(state.gate.required_evidence)
    if state.stage in WORK_STAGES:
        missing = policy.missing_evidence(
            policy.required_kinds(run.policy, state.stage), state.evidence
        )
        if state.waivers:  # a granted exception's kind is waived, not missing
            waived = policy.waived_evidence(state.waivers, state.stage.value)
            missing = [k for k in missing if k not in waived]
        return missing
    return []


def waived_evidence(run: Run) -> list[str]:
    """Kinds the current stage or gate needs, not submitted, that a granted exception waives."""
    state = run.state
    if not state.waivers:
        return []
    if state.gate is not None:
        scope, needed = state.gate.gate.value, run.rule(state.gate.gate).evidence
    elif state.stage in WORK_STAGES:
        scope, needed = state.stage.value, policy.required_kinds(run.policy, state.stage)
    else:
        return []
    waived = policy.waived_evidence(state.waivers, scope)
    return [k for k in policy.missing_evidence(needed, state.evidence) if k in waived]


def view(run: Run) -> UseCaseView:
    state, inp = run.state, run.inp
    return UseCaseView(
        id=run.workflow_id,
        key=inp.key,
        title=inp.title,
        summary=inp.summary,
        risk_tier=inp.risk_tier,
        stage=state.stage,
        closed=state.closed,
        outcome=state.outcome,
        round=state.round,
        owners=inp.owners,
        slack_channel=inp.slack_channel,
        open_gate=state.gate.model_copy(deep=True) if state.gate else None,
        required_evidence=required_evidence(run),
        evidence=list(state.evidence[-VIEW_EVIDENCE:]),
        evidence_count=len(state.evidence),
        evidence_digests=bundles.bound_digests(run, policy.evidence_digests(state.evidence)),
        policy=PolicyRef(version=run.policy.version, sha256=run.policy.sha256),
        stage_entered_at=state.stage_entered_at,
        started_at=state.started_at,
        updated_at=state.updated_at,
        event_count=state.event_id,
        live_version=state.live_version,
        live_since=state.live_since,
        next_review_at=state.next_review_at,
        stalled_gate=state.stalled_gate,
        last_closed_gate=state.last_closed_gate,
        incidents=list(state.incidents[-VIEW_INCIDENTS:]),
        incident_count=state.incidents_before + len(state.incidents),
        changes=[c.model_copy() for c in state.changes[-VIEW_CHANGES:]],
        change_count=state.changes_before + len(state.changes),
        open_change_count=sum(1 for c in state.changes if c.status in _OPEN_CHANGE),
        change=run.change,
        deputies={r: list(ds) for r, ds in state.deputies.items()},
        override=state.override.model_copy(deep=True) if state.override else None,
        bundle=bundles.approved(run),
        bundle_digest=bundles.digest(bundles.approved(run)),
        runtime=state.runtime,
        open_alerts=len(state.alerts),
        triggers=list(state.triggers.values()),
        waivers=[w.model_copy(deep=True) for w in state.waivers],
        waived_evidence=waived_evidence(run),
    )


@dataclass(frozen=True)
class SearchValues:
    """The search attributes' values for the run as it stands."""

    stage: str
    waiting_on: list[str]  # pending approvers, plus the escalation owner once escalated
    gate_due_at: datetime | None


def search_values(run: Run) -> SearchValues:
    gate = run.state.gate
    waiting = pending(run)
    if gate is not None and gate.escalated_at is not None:
        waiting.append(run.inp.owners.escalation_owner)
    if run.state.override is not None:
        waiting += run.state.override.review.pending
    due = None
    if gate is not None:
        due = gate.expires_at if gate.escalated_at and gate.expires_at else gate.due_at
    return SearchValues(run.state.stage.value, sorted(set(waiting)), due)


def details(run: Run) -> str:
    """The Temporal UI's current details: stage, and who or what the run waits on."""
    state, owners = run.state, run.inp.owners
    lines = [f"**Stage:** {state.stage.value} · round {state.round}"]
    if run.change is not None:
        lines.append(
            f"**Change:** {run.change.change_id} ({run.change.materiality.value}) "
            f"of {run.change.parent_id}"
        )
    gate = state.gate
    if gate is not None:
        approved = ", ".join(_approvers(run)) or "nobody yet"
        escalated = f" (escalated to {owners.escalation_owner})" if gate.escalated_at else ""
        lines += [
            f"**Gate:** {gate.gate.value} — quorum {gate.quorum}, approved by {approved}",
            f"**Waiting on:** {', '.join(pending(run)) or '—'}",
            f"**Due:** {gate.due_at.isoformat()}{escalated}",
        ]
        if gate.required_evidence:
            lines.append(f"**Evidence missing:** {', '.join(gate.required_evidence)}")
    elif state.stage in WORK_STAGES:
        lines.append(
            f"**Waiting on:** {owners.delivery_lead} or {owners.technical_owner} "
            f"to complete {state.stage.value}"
        )
    elif state.stage == Stage.STALLED and state.stalled_gate:
        lines.append(
            f"**Expired:** {state.stalled_gate.value} — waiting on "
            f"{owners.delivery_lead} to reopen or cancel"
        )
    elif state.stage in (Stage.LIVE, Stage.SUSPENDED) and not state.closed:
        lines.append(f"**Live version:** {state.live_version}")
        if state.next_review_at:
            lines.append(f"**Next review:** {state.next_review_at.isoformat()}")
    elif state.closed:
        lines.append(f"**Closed:** {state.outcome.value if state.outcome else ''}")
    exceptions = [w.summary() for w in state.waivers if w.is_open]
    if exceptions:
        lines.append(f"**Exceptions:** {'; '.join(exceptions)}")
    if state.override is not None:
        review = state.override.review
        lines.append(
            f"**Break-glass:** {state.override.gate.value} overridden by {state.override.by}; "
            f"review waiting on {', '.join(review.pending) or '—'}, due {review.due_at.isoformat()}"
        )
    return "\n".join(lines)


def gate_card(
    run: Run, *, outcome: GateOutcome | None = None, by: str | None = None, comment: str = ""
) -> GateCard | None:
    gate = run.state.gate
    if gate is None:
        return None
    return GateCard(
        gate=gate.gate.value,
        round=gate.round,
        quorum=gate.quorum,
        eligible=list(gate.eligible),
        pending=pending(run) if outcome is None else [],
        approvals=list(gate.approvals),
        due_at=gate.due_at,
        outcome=outcome,
        decided_by=by,
        comment=comment,
        deputies=deputy_lines(run.state.deputies),
        exceptions=[w.summary() for w in run.state.waivers if w.is_open],
    )


def deputy_lines(deputies: Deputies) -> dict[str, list[str]]:
    """Deputies as cards and pages show them: role -> "person" or "person (until …)"."""
    return {
        role.value: [
            d.person + (f" (until {d.until:%Y-%m-%d %H:%M} UTC)" if d.until else "") for d in ds
        ]
        for role, ds in deputies.items()
        if ds
    }


def gate_notice_text(run: Run, kind: NotificationKind, card: GateCard) -> tuple[str, list[str]]:
    """A gate notice's plain text and whom to message directly."""
    title, name, due = run.inp.title, card.gate, f"{card.due_at:%Y-%m-%d %H:%M} UTC"
    waiting = ", ".join(card.pending) or "nobody"
    if kind == NotificationKind.GATE_OPENED:
        return f"{title}: {name} waits on {waiting} (quorum {card.quorum}), due {due}", card.pending
    if kind == NotificationKind.GATE_UPDATED:
        approved = ", ".join(a.actor for a in card.approvals) or "nobody yet"
        return f"{title}: {name} approved by {approved}", []
    if kind == NotificationKind.REMINDER:
        return f"Reminder — {title}: {name} is due {due}", card.pending
    if kind == NotificationKind.ESCALATION:
        return (
            f"Escalation — {title}: {name} passed its SLA waiting on {waiting}",
            [run.inp.owners.escalation_owner],
        )
    outcome = card.outcome.value if card.outcome else ""
    return f"{title}: {name} {outcome}" + (f" by {card.decided_by}" if card.decided_by else ""), []


def side_decisions(override: Override | None, waivers: Iterable[Waiver]) -> list[SideDecision]:
    """The decisions waiting beside the open gate, as the inbox lists them."""
    out: list[SideDecision] = []
    if override is not None:
        review = override.review
        out.append(
            SideDecision(
                kind=SideDecisionKind.OVERRIDE_REVIEW,
                ref=review.gate.value,
                pending=list(review.pending),
                quorum=review.quorum,
                approvals=[a.actor for a in review.approvals],
                due_at=review.due_at,
                round=review.round,
            )
        )
    out += [
        SideDecision(
            kind=SideDecisionKind.WAIVER,
            ref=w.id,
            pending=list(w.pending),
            quorum=w.quorum,
            approvals=[a.actor for a in w.approvals],
            due_at=w.expires_at,
        )
        for w in waivers
        if w.status == WaiverStatus.PENDING
    ]
    return out


def registry_row(run: Run) -> RegistryRow:
    state, inp, gate = run.state, run.inp, run.state.gate
    return RegistryRow(
        workflow_id=run.workflow_id,
        key=inp.key,
        title=inp.title,
        risk_tier=inp.risk_tier.value,
        stage=state.stage.value,
        closed=state.closed,
        business_owner=inp.owners.business_owner,
        owners=inp.owners.model_dump(mode="json"),
        pending_approvers=pending(run),
        gate=gate.gate.value if gate else None,
        quorum=gate.quorum if gate else None,
        approvals=_approvers(run),
        due_at=gate.due_at if gate else None,
        round=state.round,
        updated_at=state.updated_at,
        # the last fact already in the ledger (those still queued follow in the next turn), so
        # the read model never claims more than the ledger holds and verify compares like
        # with like
        event_id=state.event_id - len(state.outbox.ledger),
        side_decisions=side_decisions(state.override, state.waivers),
    )


__all__ = [
    "VIEW_CHANGES",
    "VIEW_EVIDENCE",
    "VIEW_INCIDENTS",
    "SearchValues",
    "deputy_lines",
    "details",
    "gate_card",
    "gate_notice_text",
    "pending",
    "registry_row",
    "required_evidence",
    "search_values",
    "side_decisions",
    "view",
    "waived_evidence",
]
