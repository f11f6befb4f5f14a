"""Live operation: incidents, stop-ship, resume, change requests and retirement.

Pure functions over the run, like ``transitions``; starting a change request's child run is I/O
and stays in the workflow, which calls ``raise_change`` for the bookkeeping first.
"""

from __future__ import annotations

from datetime import datetime

from workflows import bundles, gates, ids, outbox, policy, transitions, triggers
from workflows.activities import NotificationKind
from workflows.events import CHANGE_CLOSED_KIND
from workflows.model import (
    AddEvidence,
    ChangeInfo,
    ChangeOutcome,
    ChangeStatus,
    ChangeSummary,
    Channel,
    EventKind,
    Gate,
    GateOutcome,
    HookKind,
    Incident,
    IncidentKind,
    Materiality,
    RaiseChange,
    ReportIncident,
    ReportRuntime,
    ResolveIncident,
    Resume,
    Retire,
    RunOutcome,
    RuntimeSeen,
    SetDeputies,
    Stage,
    UseCaseInput,
)
from workflows.state import Run


def report_incident(
    run: Run, cmd: ReportIncident, now: datetime, kind: IncidentKind = IncidentKind.REPORTED
) -> None:
    """An incident is recorded; a sev1 suspends a live use case when the policy says so.

    An alert (``fingerprint``) opens one incident until it resolves: while that incident is
    open, the same fingerprint again (a repeated delivery, a grouped re-send, another API
    replica's retry) changes nothing, and the answer shows the incident it opened."""
    state = run.state
    if cmd.fingerprint is not None and cmd.fingerprint in state.alerts:
        return
    suspends = state.stage == Stage.LIVE and policy.sev1_suspends(run.policy, cmd.severity)
    incident = Incident(
        id=f"inc-{state.incidents_before + len(state.incidents) + 1}",
        severity=cmd.severity,
        summary=cmd.summary,
        reported_by=cmd.actor,
        at=now,
        suspended=suspends,
        kind=kind,
        fingerprint=cmd.fingerprint,
    )
    state.incidents.append(incident)
    extras: dict[str, object] = {"incident": incident.id, "severity": cmd.severity}
    if cmd.fingerprint is not None:  # an alert's: only then, so older facts stay as they were
        state.alerts[cmd.fingerprint] = incident.id
        extras |= {"fingerprint": cmd.fingerprint, "labels": cmd.labels or {}}
    if kind != IncidentKind.REPORTED:
        extras["incident_kind"] = kind.value
    outbox.record(
        run,
        EventKind.INCIDENT_REPORTED,
        now,
        actor=cmd.actor,
        channel=cmd.channel,
        comment=cmd.summary,
        extras=extras,
    )
    outbox.live_notice(
        run, f"{cmd.severity.value.upper()} incident {incident.id}: {cmd.summary}", now
    )
    if suspends:
        reason = f"{incident.id} ({cmd.severity.value}) suspends per policy {run.policy.version}"
        transitions.suspend(run, actor=cmd.actor, channel=Channel.SYSTEM, reason=reason, now=now)
    triggers.on_incident(run, incident, cmd.labels or {}, now)


def resolve_incident(run: Run, cmd: ResolveIncident, now: datetime) -> None:
    """An alert resolved: its open incident records when (once); anything else changes
    nothing (an alert never seen firing here, or resolved already)."""
    state = run.state
    incident_id = state.alerts.pop(cmd.fingerprint, None)
    if incident_id is None:
        return
    for incident in state.incidents:
        if incident.id == incident_id:
            incident.resolved_at = now
    outbox.record(
        run,
        EventKind.INCIDENT_RESOLVED,
        now,
        actor=cmd.actor,
        channel=cmd.channel,
        extras={"incident": incident_id, "fingerprint": cmd.fingerprint},
    )
    outbox.live_notice(run, f"incident {incident_id} resolved ({cmd.fingerprint})", now)
    outbox.publish(run)


def runtime_fingerprint(bundle_digest: str) -> str:
    """The alert identity of a running bundle that is not the approved one."""
    return f"bundle:{bundle_digest}"


def report_runtime(run: Run, cmd: ReportRuntime, now: datetime) -> None:
    """The bundle that is running, as reported. The same report again changes nothing; one
    that matches the approved bundle is recorded (and resolves an open mismatch); one that
    does not opens an ``unauthorized_change`` incident, whose severity the policy names per
    tier (a sev1 suspends, with the rollback hook, as any sev1)."""
    state = run.state
    running = bundles.digest(cmd.bundle)
    expected = bundles.digest(bundles.approved(run))
    # both named: checked by policy.check_runtime (and a bundle is never empty)
    assert running is not None
    assert expected is not None
    if state.runtime is not None and state.runtime.bundle_digest == running:
        if state.runtime.matches == (running == expected):
            return
    matches = running == expected
    state.runtime = RuntimeSeen(bundle_digest=running, at=now, by=cmd.actor, matches=matches)
    changed = [] if matches else bundles.changed(bundles.approved(run), cmd.bundle)
    outbox.record(
        run,
        EventKind.RUNTIME_REPORTED,
        now,
        actor=cmd.actor,
        channel=cmd.channel,
        extras={
            "bundle_digest": running,
            "approved_digest": expected,
            "matches": matches,
            "changed": changed,
        },
    )
    if matches:
        for fingerprint in [f for f in state.alerts if f.startswith("bundle:")]:
            resolve = ResolveIncident(actor=cmd.actor, fingerprint=fingerprint, channel=cmd.channel)
            resolve_incident(run, resolve, now)
        outbox.publish(run)
        return
    severity = policy.unauthorized_change_severity(run.policy)
    summary = (
        f"unauthorized change: the running bundle {running[:12]} is not the approved "
        f"{expected[:12]} (changed: {', '.join(changed)})"
    )
    report = ReportIncident(
        actor=cmd.actor,
        severity=severity,
        summary=summary,
        channel=cmd.channel,
        fingerprint=runtime_fingerprint(running),
    )
    report_incident(run, report, now, kind=IncidentKind.UNAUTHORIZED_CHANGE)
    outbox.publish(run)


def resume(run: Run, cmd: Resume, now: datetime) -> None:
    outbox.record(
        run,
        EventKind.RESUME_REQUESTED,
        now,
        actor=cmd.actor,
        channel=cmd.channel,
        comment=cmd.reason,
    )
    transitions.open_beside(
        run, Gate.RESUME_APPROVAL, actor=cmd.actor, now=now, requested_by=cmd.actor
    )


def raise_change(
    run: Run,
    cmd: RaiseChange,
    now: datetime,
    *,
    update_id: str | None,
    hand_over_evidence: bool = False,
) -> tuple[ChangeInfo, UseCaseInput]:
    """Record a change request; returns what its child run is started with."""
    state, inp = run.state, run.inp
    number = state.changes_before + len(state.changes) + 1
    change = ids.change_id(number)
    info = ChangeInfo(
        parent_id=run.workflow_id,
        change_id=change,
        number=number,
        summary=cmd.summary,
        materiality=cmd.materiality,
        raised_by=cmd.actor,
        evidence=list(cmd.evidence) if hand_over_evidence else [],
    )
    state.changes.append(
        ChangeSummary(
            change_id=change,
            workflow_id=ids.change_workflow_id(run.workflow_id, change),
            number=number,
            summary=cmd.summary,
            materiality=cmd.materiality,
            raised_by=cmd.actor,
            status=ChangeStatus.OPEN,
            opened_at=now,
            update_id=update_id,
            bundle=list(cmd.bundle) if cmd.bundle is not None else None,
        )
    )
    outbox.record(
        run,
        EventKind.CHANGE_RAISED,
        now,
        actor=cmd.actor,
        channel=cmd.channel,
        comment=cmd.summary,
        extras={"change": change, "materiality": cmd.materiality},
    )
    child_input = inp.model_copy(
        update={
            "key": f"{inp.key}/{change}",
            "title": f"{inp.title} — {change}: {cmd.summary[:80]}",
            "summary": cmd.summary,
            "change": info,
            "carry": None,
            "state": None,
            "deputies": {r: list(ds) for r, ds in state.deputies.items()},
            "credential": None,
            # the change's gates approve the bundle it makes live
            "bundle": cmd.bundle if cmd.bundle is not None else bundles.approved(run),
        }
    )
    return info, child_input


def seed_evidence(run: Run, cmd: AddEvidence, now: datetime) -> None:
    """Evidence a change request was raised with (sent by its use case's run)."""
    state = run.state
    if run.change is None or state.closed:
        return
    records = transitions.add_evidence_records(
        run, cmd.evidence, cmd.actor, scope=state.stage.value, now=now
    )
    outbox.record(
        run, EventKind.EVIDENCE_ADDED, now, actor=cmd.actor, channel=cmd.channel, evidence=records
    )
    if state.gate is not None:
        gates.refresh_evidence(run)
        outbox.publish(run)


def change_finished(run: Run, result: ChangeOutcome, now: datetime) -> None:
    """A change request's run ended: an applied change becomes the live version."""
    state = run.state
    change = next((c for c in state.changes if c.change_id == result.change_id), None)
    if change is None or change.status != ChangeStatus.OPEN:
        return  # a repeated report changes nothing
    change.status = result.outcome
    change.closed_at = result.at
    if result.outcome == ChangeStatus.APPLIED and state.stage == Stage.SUSPENDED:
        # stop-ship holds: nothing is applied or deployed until resume is approved
        change.status = ChangeStatus.AWAITING_RESUME
        outbox.record(
            run,
            EventKind.CHANGE_AWAITING_RESUME,
            now,
            actor=change.raised_by,
            comment=change.summary,
            extras={"change": change.change_id},
        )
        outbox.live_notice(
            run, f"{change.change_id} passed; it is applied when the use case resumes", now
        )
        outbox.publish(run)
        return
    if result.outcome == ChangeStatus.APPLIED and not state.closed:
        transitions.apply_change(run, change, now)
        outbox.hook(
            run, HookKind.DEPLOY, {"live_version": state.live_version, "change": change.change_id}
        )
        if change.materiality == Materiality.MATERIAL:
            triggers.on_material_change(run, now)
    else:
        outbox.record(
            run,
            CHANGE_CLOSED_KIND[result.outcome],
            now,
            actor=change.raised_by,
            extras={"change": change.change_id},
        )
    outbox.live_notice(run, f"{change.change_id} {result.outcome.value}: {change.summary}", now)
    outbox.publish(run)


def set_deputies(run: Run, cmd: SetDeputies, now: datetime) -> None:
    """The business owner names deputies; an open gate's seats take them in at once."""
    run.state.deputies.update({role: list(ds) for role, ds in cmd.deputies.items()})
    outbox.record(
        run,
        EventKind.DEPUTIES_CHANGED,
        now,
        actor=cmd.actor,
        channel=cmd.channel,
        comment=cmd.comment,
        extras={
            "deputies": {
                r.value: [d.model_dump(mode="json") for d in ds]
                for r, ds in run.state.deputies.items()
            }
        },
    )
    if run.state.gate is not None:
        gates.reseat(run, now)
    outbox.publish(run)


def retire(run: Run, cmd: Retire, now: datetime) -> None:
    """The business owner retires the use case; its open change requests are cancelled."""
    state = run.state
    if state.gate is not None:
        outbox.gate_notice(
            run,
            NotificationKind.GATE_CLOSED,
            now,
            outcome=GateOutcome.CANCELLED,
            by=cmd.actor,
        )
    outbox.record(
        run, EventKind.RETIRED, now, actor=cmd.actor, channel=cmd.channel, comment=cmd.reason
    )
    for change in state.changes:
        if change.status in (ChangeStatus.OPEN, ChangeStatus.AWAITING_RESUME):
            if change.status == ChangeStatus.OPEN:
                state.outbox.cancel_runs.append(change.workflow_id)
            change.status = ChangeStatus.CANCELLED
            change.closed_at = now
            outbox.record(
                run,
                EventKind.CHANGE_CANCELLED,
                now,
                actor=cmd.actor,
                extras={"change": change.change_id, "reason": "use case retired"},
            )
    outbox.live_notice(run, f"retired by {cmd.actor}", now)
    transitions.close(run, Stage.RETIRED, RunOutcome.RETIRED, actor=cmd.actor, now=now)


__all__ = [
    "change_finished",
    "raise_change",
    "report_incident",
    "report_runtime",
    "resolve_incident",
    "resume",
    "retire",
    "seed_evidence",
]
