"""UseCaseRelease: one durable workflow per AI use case, from scoping to retirement.

The path is fixed by the risk tier's pinned policy:

    scoping ─▶ [scope_approval] ─▶ specification ─▶ implementation ─▶ validation
        ─▶ risk_signoff ─▶ ops_handoff ─▶ go_live ─▶ live ⇄ suspended ─▶ retired

People move it. Work stages are completed, evidence is submitted and gates are decided through
Updates whose validators apply ``workflows.policy``; a refused command never enters history.
Gate decisions are also accepted as Signals (for ``temporal workflow signal`` and the Temporal
UI); an invalid signal changes nothing and is kept as a refused attempt.

Time is part of the model: every open gate has durable timers for its reminders, its escalation
at the SLA and an optional expiry (→ ``stalled``); a live use case opens a periodic review when
its tier's review period has passed. After go-live the run stays alive: incidents, stop-ship
(→ ``suspended``, rollback hook), resume through ``resume_approval``, change requests as child
runs of this same workflow, and retirement.

Handlers change state synchronously and return the state after the change, so a caller always
sees the stage its command led to. The SDK runs an update's validator and its synchronous
handler in one step of the workflow's event loop, so the state a validator approved is the state
the handler changes (the 20-concurrent-approvals test holds the quorum to exactly 2 on that).
The run loop owns time and side effects: it fires deadlines and ships every recorded fact to
the ledger, the read model, notifications and hooks, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from workflows import policy, search
    from workflows.activities import (
        HOOK_CALL,
        LEDGER_APPEND,
        NOTIFY,
        REGISTRY_SYNC,
        GateCard,
        HookRequest,
        HookResult,
        LedgerBatch,
        LedgerRecord,
        MessageRef,
        Notification,
        NotificationKind,
        NotifyResult,
        RegistryRow,
    )
    from workflows.model import (
        WORK_STAGES,
        AddEvidence,
        Approval,
        Cancel,
        ChangeInfo,
        ChangeOutcome,
        ChangeSummary,
        Channel,
        ClosedGate,
        CompleteStage,
        Decision,
        Evidence,
        EvidenceRecord,
        Gate,
        GateDecision,
        GateRule,
        HistoryEvent,
        Incident,
        OpenGate,
        PolicyRef,
        RaiseChange,
        RefusedAttempt,
        ReopenGate,
        ReportIncident,
        Resume,
        Retire,
        Stage,
        Suspend,
        UseCaseInput,
        UseCaseOutcome,
        UseCaseView,
    )

# Side effects retry until the store is back: losing a ledger entry is never an option.
STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
)
STORE_TIMEOUT = timedelta(seconds=30)
# Notifications are worth retrying for a while, but a dead chat service never blocks the run.
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
)
NOTIFY_TIMEOUT = timedelta(seconds=20)
HOOK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
    maximum_attempts=6,
)
HOOK_TIMEOUT = timedelta(seconds=30)
LIVE_GATES = (Gate.RESUME_APPROVAL, Gate.PERIODIC_REVIEW)


def _refuse(exc: policy.PolicyViolation) -> ApplicationError:
    return ApplicationError(exc.detail, type=exc.refusal.value, non_retryable=True)


class Carry(BaseModel):
    """Everything a live run hands to its next run at continue-as-new."""

    started_at: datetime
    updated_at: datetime
    stage: Stage
    stage_entered_at: datetime
    round: int
    evidence: list[EvidenceRecord]
    gate: OpenGate | None
    stalled_gate: Gate | None
    validation_completed_by: str | None
    history: list[HistoryEvent]
    refused: list[RefusedAttempt]
    voided: list[Approval]
    event_id: int
    cards: dict[str, list[MessageRef]]
    live_version: int
    live_since: datetime | None
    next_review_at: datetime | None
    incidents: list[Incident]
    changes: list[ChangeSummary]
    runs: int = Field(default=1)
    last_closed_gate: ClosedGate | None = None


@workflow.defn
class UseCaseRelease:
    # ------------------------------------------------------------------ state

    @workflow.init
    def __init__(self, inp: UseCaseInput) -> None:
        self.inp = inp
        self.policy = inp.policy
        self.change: ChangeInfo | None = inp.change
        self.path = (
            policy.change_path(inp.policy.rules, inp.change.materiality)
            if inp.change
            else policy.stage_path(inp.policy.rules)
        )
        now = workflow.now()
        self.started_at = now
        self.updated_at = now
        self.stage = self.path[0]
        self.stage_entered_at = now
        self.round = 1
        self.closed = False
        self.outcome: str | None = None
        self.evidence: list[EvidenceRecord] = []
        self.gate: OpenGate | None = None
        self.stalled_gate: Gate | None = None
        self.validation_completed_by: str | None = None
        self.history: list[HistoryEvent] = []
        self.refused: list[RefusedAttempt] = []
        self.voided: list[Approval] = []
        self.last_closed_gate: ClosedGate | None = None
        self.event_id = 0
        self.live_version = 0
        self.live_since: datetime | None = None
        self.next_review_at: datetime | None = None
        self.incidents: list[Incident] = []
        self.changes: list[ChangeSummary] = []
        self.runs = 1
        # what the run loop still has to ship
        self.outbox: list[LedgerRecord] = []
        self.read_model_stale = True
        self.notices: list[Notification] = []
        self.hooks: list[HookRequest] = []
        self.parent_report: ChangeOutcome | None = None
        self.cancel_runs: list[str] = []
        # posted gate cards per "gate:round", so later notices update them in place
        self.cards: dict[str, list[MessageRef]] = {}

        if inp.carry is not None:
            self._restore(Carry.model_validate(inp.carry))
            return
        # Start here, not in run(): an update may be delivered before run() first executes.
        self._record(
            "run_started",
            actor=inp.owners.delivery_lead if not inp.change else inp.change.raised_by,
            channel=Channel.SYSTEM,
            payload={
                "title": inp.title,
                "risk_tier": inp.risk_tier.value,
                "owners": inp.owners.model_dump(mode="json"),
                "roster": {r.value: ids for r, ids in inp.roster.items()},
                "policy": {"version": self.policy.version, "sha256": self.policy.sha256},
                "path": [s.value for s in self.path],
                **({"change": inp.change.model_dump(mode="json")} if inp.change else {}),
            },
        )
        self._enter(self.path[0], actor=self._starter)

    @property
    def _starter(self) -> str:
        return self.change.raised_by if self.change else self.inp.owners.delivery_lead

    @property
    def workflow_id(self) -> str:
        return workflow.info().workflow_id

    # ------------------------------------------------------------------ the run

    @workflow.run
    async def run(self, inp: UseCaseInput) -> UseCaseOutcome:
        while True:
            await self._wait_for_work_or_deadline()
            self._fire_deadlines()
            await self._flush()
            if self.closed:
                await workflow.wait_condition(workflow.all_handlers_finished)
                await self._flush()
                if not self._has_work():
                    break
            elif self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                await self._flush()
                if not self._has_work():
                    workflow.continue_as_new(self._carry_input())

        return UseCaseOutcome(
            key=inp.key, stage=self.stage, outcome=self.outcome or "", at=self.updated_at
        )

    async def _wait_for_work_or_deadline(self) -> None:
        """Sleep until a handler leaves work, the schedule changes, or the next deadline."""
        deadline = self._next_deadline()
        if deadline is not None and deadline[0] <= workflow.now():
            return
        try:
            await workflow.wait_condition(
                lambda: self._has_work() or self.closed or self._next_deadline() != deadline,
                timeout=(deadline[0] - workflow.now()) if deadline else None,
                timeout_summary=deadline[1] if deadline else None,
            )
        except TimeoutError:
            pass  # the deadline is due: the run loop fires it

    def _has_work(self) -> bool:
        return bool(
            self.outbox or self.notices or self.hooks or self.read_model_stale or self.parent_report
        )

    # ------------------------------------------------------------------ work stages and gates

    @workflow.update
    def complete_stage(self, cmd: CompleteStage) -> UseCaseView:
        stage = self.stage
        records = self._add_evidence_records(cmd.evidence, cmd.actor, scope=stage.value)
        if stage == Stage.VALIDATION:
            self.validation_completed_by = cmd.actor
        self._record(
            "stage_completed",
            actor=cmd.actor,
            channel=cmd.channel,
            comment=cmd.comment,
            evidence=records,
        )
        self._enter(policy.next_stage(self.path, stage), actor=cmd.actor)
        return self.view()

    @complete_stage.validator
    def _validate_complete_stage(self, cmd: CompleteStage) -> None:
        self._validate(policy.check_complete_stage, cmd)

    @workflow.update
    def add_evidence(self, cmd: AddEvidence) -> UseCaseView:
        scope = self.gate.gate.value if self.gate else self.stage.value
        records = self._add_evidence_records(cmd.evidence, cmd.actor, scope=scope)
        self._record(
            "evidence_added",
            actor=cmd.actor,
            channel=cmd.channel,
            comment=cmd.comment,
            evidence=records,
        )
        if self.gate is not None:
            self._refresh_gate_evidence()
            if self.gate.approvals:
                # Approvals are bound to the evidence they saw: new evidence voids them.
                voided = self.gate.approvals
                self.voided += voided
                self.gate.approvals = []
                self._record(
                    "approvals_voided",
                    actor=cmd.actor,
                    channel=cmd.channel,
                    gate=self.gate.gate,
                    payload={"voided": [a.actor for a in voided]},
                )
            self._publish()
            self._notify_gate(NotificationKind.GATE_UPDATED)
        return self.view()

    @add_evidence.validator
    def _validate_add_evidence(self, cmd: AddEvidence) -> None:
        self._validate(policy.check_add_evidence, cmd)

    @workflow.update
    def decide(self, cmd: GateDecision) -> UseCaseView:
        self._apply_decision(cmd)
        return self.view()

    @decide.validator
    def _validate_decide(self, cmd: GateDecision) -> None:
        self._validate(policy.check_decision, cmd)
        self._check_counts(cmd)

    @workflow.signal
    def decide_signal(self, cmd: GateDecision) -> None:
        """The same decision as a Signal. Signals cannot be refused, so an invalid one is kept
        as a refused attempt and changes nothing else."""
        cmd = cmd.model_copy(update={"channel": Channel.SIGNAL})
        try:
            self._validate(policy.check_decision, cmd)
            self._check_counts(cmd)
        except ApplicationError as err:
            self._refused(cmd, "decide", err)
            return
        self._apply_decision(cmd)

    @workflow.update
    def reopen_gate(self, cmd: ReopenGate) -> UseCaseView:
        """After a gate expired, the delivery lead opens it again (a fresh SLA, same round)."""
        gate = self.stalled_gate
        assert gate is not None
        self.stalled_gate = None
        self._record(
            "gate_reopened", actor=cmd.actor, channel=cmd.channel, gate=gate, comment=cmd.comment
        )
        self._enter(Stage(gate.value), actor=cmd.actor)
        return self.view()

    @reopen_gate.validator
    def _validate_reopen_gate(self, cmd: ReopenGate) -> None:
        self._validate(policy.check_reopen, cmd)

    @workflow.update
    def cancel(self, cmd: Cancel) -> UseCaseView:
        self._record("cancelled", actor=cmd.actor, channel=cmd.channel, comment=cmd.reason)
        if self.gate is not None:
            self._notify_gate(
                NotificationKind.GATE_CLOSED, outcome="cancelled", by=cmd.actor, comment=cmd.reason
            )
        self._close(Stage.CANCELLED, "cancelled", actor=cmd.actor)
        return self.view()

    @cancel.validator
    def _validate_cancel(self, cmd: Cancel) -> None:
        self._validate(policy.check_cancel, cmd)

    # ------------------------------------------------------------------ live operation

    @workflow.update
    def report_incident(self, cmd: ReportIncident) -> UseCaseView:
        suspends = self.stage == Stage.LIVE and policy.sev1_suspends(self.policy, cmd.severity)
        incident = Incident(
            id=f"inc-{len(self.incidents) + 1}",
            severity=cmd.severity,
            summary=cmd.summary,
            reported_by=cmd.actor,
            at=workflow.now(),
            suspended=suspends,
        )
        self.incidents.append(incident)
        self._record(
            "incident_reported",
            actor=cmd.actor,
            channel=cmd.channel,
            comment=cmd.summary,
            payload={"incident": incident.id, "severity": cmd.severity.value},
        )
        self._live_notice(f"{cmd.severity.value.upper()} incident {incident.id}: {cmd.summary}")
        if suspends:
            self._suspend(
                cmd.actor,
                Channel.SYSTEM,
                f"{incident.id} ({cmd.severity.value}) suspends per policy {self.policy.version}",
            )
        return self.view()

    @report_incident.validator
    def _validate_report_incident(self, cmd: ReportIncident) -> None:
        self._validate(policy.check_incident, cmd)

    @workflow.update
    def suspend(self, cmd: Suspend) -> UseCaseView:
        """Stop-ship: the live version is pulled (rollback hook) until resume is approved."""
        self._suspend(cmd.actor, cmd.channel, cmd.reason)
        return self.view()

    @suspend.validator
    def _validate_suspend(self, cmd: Suspend) -> None:
        self._validate(policy.check_suspend, cmd)

    @workflow.update
    def resume(self, cmd: Resume) -> UseCaseView:
        self._record("resume_requested", actor=cmd.actor, channel=cmd.channel, comment=cmd.reason)
        self._open_live_gate(Gate.RESUME_APPROVAL, actor=cmd.actor)
        return self.view()

    @resume.validator
    def _validate_resume(self, cmd: Resume) -> None:
        self._validate(policy.check_resume, cmd)

    @workflow.update
    async def raise_change(self, cmd: RaiseChange) -> UseCaseView:
        """A change request runs as a child of this use case, with its own id and the same
        verbs; the live version keeps running until the change passes."""
        number = len(self.changes) + 1
        change_id = f"change-{number}"
        child_id = f"{self.workflow_id}-{change_id}"
        info = ChangeInfo(
            parent_id=self.workflow_id,
            change_id=change_id,
            number=number,
            summary=cmd.summary,
            materiality=cmd.materiality,
            raised_by=cmd.actor,
        )
        self.changes.append(
            ChangeSummary(
                change_id=change_id,
                workflow_id=child_id,
                number=number,
                summary=cmd.summary,
                materiality=cmd.materiality,
                raised_by=cmd.actor,
                status="open",
                opened_at=workflow.now(),
            )
        )
        self._record(
            "change_raised",
            actor=cmd.actor,
            channel=cmd.channel,
            comment=cmd.summary,
            payload={"change": change_id, "materiality": cmd.materiality.value},
        )
        child_input = self.inp.model_copy(
            update={
                "key": f"{self.inp.key}/{change_id}",
                "title": f"{self.inp.title} — {change_id}: {cmd.summary[:80]}",
                "summary": cmd.summary,
                "change": info,
                "carry": None,
            }
        )
        handle = await workflow.start_child_workflow(
            UseCaseRelease.run,
            child_input,
            id=child_id,
            task_queue=workflow.info().task_queue,
            parent_close_policy=ParentClosePolicy.ABANDON,
            memo={
                "facts": {
                    "tier": self.inp.risk_tier.value,
                    "policy_sha256": self.policy.sha256,
                    "roster": {r.value: ids for r, ids in self.inp.roster.items()},
                    "request_sha256": "",
                    "change_raised_by": cmd.actor,
                }
            },
            static_summary=f"{self.inp.title} — {change_id} ({cmd.materiality.value})",
            static_details=f"Change request {change_id} of {self.inp.key}: {cmd.summary}",
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(search.USE_CASE_KEY, self.inp.key),
                    SearchAttributePair(search.RISK_TIER, self.inp.risk_tier.value),
                    SearchAttributePair(search.BUSINESS_OWNER, self.inp.owners.business_owner),
                ]
            ),
        )
        if cmd.evidence:
            await handle.signal(
                UseCaseRelease.seed_evidence,
                AddEvidence(actor=cmd.actor, evidence=cmd.evidence, channel=cmd.channel),
            )
        return self.view()

    @raise_change.validator
    def _validate_raise_change(self, cmd: RaiseChange) -> None:
        self._validate(policy.check_raise_change, cmd)

    @workflow.signal
    def seed_evidence(self, cmd: AddEvidence) -> None:
        """Evidence a change request was raised with (sent by the parent, never by people)."""
        if self.change is None or self.closed:
            return
        records = self._add_evidence_records(cmd.evidence, cmd.actor, scope=self.stage.value)
        self._record("evidence_added", actor=cmd.actor, channel=cmd.channel, evidence=records)
        if self.gate is not None:
            self._refresh_gate_evidence()
            self._publish()

    @workflow.signal
    def change_finished(self, result: ChangeOutcome) -> None:
        change = next((c for c in self.changes if c.change_id == result.change_id), None)
        if change is None or change.status != "open":
            return  # a repeated report changes nothing
        change.status = result.outcome
        change.closed_at = result.at
        if result.outcome == "applied" and not self.closed:
            self.live_version += 1
            self._record(
                "change_applied",
                actor=change.raised_by,
                channel=Channel.SYSTEM,
                comment=change.summary,
                payload={"change": change.change_id, "live_version": self.live_version},
            )
            self._call_hook(
                "deploy", {"live_version": self.live_version, "change": change.change_id}
            )
        else:
            self._record(
                f"change_{result.outcome}",
                actor=change.raised_by,
                channel=Channel.SYSTEM,
                payload={"change": change.change_id},
            )
        self._live_notice(f"{change.change_id} {result.outcome}: {change.summary}")
        self._publish()

    @workflow.update
    def retire(self, cmd: Retire) -> UseCaseView:
        if self.gate is not None:
            self._notify_gate(NotificationKind.GATE_CLOSED, outcome="cancelled", by=cmd.actor)
        self._record("retired", actor=cmd.actor, channel=cmd.channel, comment=cmd.reason)
        for change in self.changes:
            if change.status == "open":
                # a retired use case takes no changes: their runs are cancelled
                change.status = "cancelled"
                change.closed_at = workflow.now()
                self.cancel_runs.append(change.workflow_id)
                self._record(
                    "change_cancelled",
                    actor=cmd.actor,
                    channel=Channel.SYSTEM,
                    payload={"change": change.change_id, "reason": "use case retired"},
                )
        self._live_notice(f"retired by {cmd.actor}")
        self._close(Stage.RETIRED, "retired", actor=cmd.actor)
        return self.view()

    @retire.validator
    def _validate_retire(self, cmd: Retire) -> None:
        self._validate(policy.check_retire, cmd)

    # ------------------------------------------------------------------ queries

    @workflow.query
    def state(self) -> UseCaseView:
        return self.view()

    @workflow.query
    def events(self) -> list[HistoryEvent]:
        return list(self.history)

    @workflow.query
    def refused_attempts(self) -> list[RefusedAttempt]:
        return list(self.refused)

    @workflow.query
    def voided_approvals(self) -> list[Approval]:
        return list(self.voided)

    # ------------------------------------------------------------------ transitions

    def _apply_decision(self, cmd: GateDecision) -> None:
        assert self.gate is not None  # checked by policy.check_decision
        gate = self.gate
        self._record(
            "decision",
            actor=cmd.actor,
            channel=cmd.channel,
            gate=gate.gate,
            decision=cmd.decision,
            comment=cmd.comment,
            payload={"evidence_digests": gate.evidence_digests, "quorum": gate.quorum},
        )
        if cmd.decision == Decision.APPROVE:
            gate.approvals.append(
                Approval(
                    actor=cmd.actor,
                    at=workflow.now(),
                    channel=cmd.channel,
                    evidence_digests=list(gate.evidence_digests),
                    comment=cmd.comment,
                )
            )
            if not self._quorum_met():
                self._publish()
                self._notify_gate(NotificationKind.GATE_UPDATED)
                return
            self._record(
                "gate_passed",
                actor=cmd.actor,
                channel=Channel.SYSTEM,
                gate=gate.gate,
                payload={"approvers": [a.actor for a in gate.approvals]},
            )
            self._notify_gate(NotificationKind.GATE_CLOSED, outcome="passed", by=cmd.actor)
            self._closed_gate(gate, "passed")
            if gate.gate in LIVE_GATES:
                self._live_gate_passed(gate.gate, cmd.actor)
            else:
                self._enter(policy.next_stage(self.path, self.stage), actor=cmd.actor)
            return
        outcome = "changes_requested" if cmd.decision == Decision.REQUEST_CHANGES else "rejected"
        self._closed_gate(gate, outcome)
        self._notify_gate(
            NotificationKind.GATE_CLOSED, outcome=outcome, by=cmd.actor, comment=cmd.comment
        )
        if gate.gate in LIVE_GATES:
            self._live_gate_refused(gate.gate, cmd)
        elif cmd.decision == Decision.REQUEST_CHANGES:
            rule = self._rule(gate.gate)
            self.round += 1
            rework = rule.rework_stage if rule.rework_stage in self.path else self.path[0]
            self._enter(rework, actor=cmd.actor)
        else:
            self._close(Stage.REJECTED, "rejected", actor=cmd.actor)

    def _closed_gate(self, gate: OpenGate, outcome: str) -> None:
        self.last_closed_gate = ClosedGate(
            gate=gate.gate,
            round=gate.round,
            opened_at=gate.opened_at,
            closed_at=workflow.now(),
            outcome=outcome,
        )

    def _enter(self, stage: Stage, *, actor: str) -> None:
        now = workflow.now()
        self.stage = stage
        self.stage_entered_at = now
        self.gate = None
        if policy.is_gate(stage):
            self._open_gate(Gate(stage.value), now)
        self._record("stage_entered", actor=actor, channel=Channel.SYSTEM)
        if stage == Stage.LIVE:
            self._went_live(actor)
        self._publish()
        if self.gate is not None:
            self._notify_gate(NotificationKind.GATE_OPENED)

    def _went_live(self, actor: str) -> None:
        if self.change is not None:
            # a passed change request: its parent's live version becomes this one
            self._report_to_parent("applied")
            self._close(Stage.LIVE, "applied", actor=actor)
            return
        now = workflow.now()
        self.live_version += 1
        self.live_since = self.live_since or now
        self.next_review_at = now + timedelta(days=self.policy.rules.review_period_days)
        self._call_hook("deploy", {"live_version": self.live_version})

    def _open_gate(self, gate: Gate, now: datetime) -> None:
        rule = self._rule(gate)
        self.gate = OpenGate(
            gate=gate,
            eligible=policy.eligible(
                rule, self.inp.roster, self._excluded(gate), change_raised_by=self._raised_by
            ),
            quorum=rule.quorum,
            approvals=[],
            opened_at=now,
            due_at=now + timedelta(hours=rule.sla_hours),
            round=self.round,
            expires_at=now + timedelta(hours=rule.expire_after_hours)
            if rule.expire_after_hours
            else None,
        )
        self._refresh_gate_evidence()

    def _open_live_gate(self, gate: Gate, *, actor: str) -> None:
        """A live gate opens beside the stage (live or suspended), which does not change."""
        self._open_gate(gate, workflow.now())
        self._record("gate_opened", actor=actor, channel=Channel.SYSTEM, gate=gate)
        self._publish()
        self._notify_gate(NotificationKind.GATE_OPENED)

    def _live_gate_passed(self, gate: Gate, actor: str) -> None:
        self.gate = None
        if gate == Gate.RESUME_APPROVAL:
            self.stage = Stage.LIVE
            self.stage_entered_at = workflow.now()
            self._record("resumed", actor=actor, channel=Channel.SYSTEM)
            self._call_hook("deploy", {"live_version": self.live_version, "resumed": True})
        else:
            self.next_review_at = workflow.now() + timedelta(
                days=self.policy.rules.review_period_days
            )
        self._publish()

    def _live_gate_refused(self, gate: Gate, cmd: GateDecision) -> None:
        self.gate = None
        if gate == Gate.PERIODIC_REVIEW:
            self.next_review_at = workflow.now() + timedelta(
                days=self.policy.rules.review_period_days
            )
            if cmd.decision == Decision.REJECT and self.stage == Stage.LIVE:
                # a review that rejects the live system stops it
                self._suspend(cmd.actor, cmd.channel, f"periodic review rejected: {cmd.comment}")
                return
        self._publish()

    def _suspend(self, actor: str, channel: Channel, reason: str) -> None:
        self.stage = Stage.SUSPENDED
        self.stage_entered_at = workflow.now()
        if self.gate is not None:
            self._notify_gate(NotificationKind.GATE_CLOSED, outcome="cancelled", by=actor)
            self.gate = None
        self._record("suspended", actor=actor, channel=channel, comment=reason)
        self._call_hook("rollback", {"live_version": self.live_version, "reason": reason})
        self._live_notice(f"SUSPENDED by {actor}: {reason}")
        self._publish()

    def _close(self, stage: Stage, outcome: str, *, actor: str) -> None:
        self.stage = stage
        self.stage_entered_at = workflow.now()
        self.gate = None
        self.closed = True
        self.outcome = outcome
        self._record(
            "run_closed", actor=actor, channel=Channel.SYSTEM, payload={"outcome": outcome}
        )
        if self.change is not None and outcome != "applied":
            self._report_to_parent(outcome)
        self._publish()

    def _report_to_parent(self, outcome: str) -> None:
        assert self.change is not None
        self.parent_report = ChangeOutcome(
            change_id=self.change.change_id,
            outcome=outcome,
            at=workflow.now(),
            evidence=list(self.evidence),
        )

    # ------------------------------------------------------------------ time

    def _next_deadline(self) -> tuple[datetime, str] | None:
        """The earliest thing the clock still owes this run, with a summary for the UI."""
        if self.closed:
            return None
        options: list[tuple[datetime, str]] = []
        gate = self.gate
        if gate is not None:
            rule = self._rule(gate.gate)
            for hours in rule.remind_before_hours:
                at = gate.due_at - timedelta(hours=hours)
                if hours not in gate.reminded and at > gate.opened_at:
                    options.append((at, f"remind {gate.gate.value} ({hours:g}h before SLA)"))
            if gate.escalated_at is None:
                options.append((gate.due_at, f"escalate {gate.gate.value} at SLA"))
            if gate.expires_at is not None:
                options.append((gate.expires_at, f"expire {gate.gate.value}"))
        elif self.stage == Stage.LIVE and self.next_review_at is not None and not self.change:
            options.append((self.next_review_at, "periodic review due"))
        return min(options) if options else None

    def _fire_deadlines(self) -> None:
        """Do everything the clock owes now; each reminder or escalation happens once."""
        now = workflow.now()
        while (deadline := self._next_deadline()) is not None and deadline[0] <= now:
            gate = self.gate
            if gate is None:
                self._open_live_gate(Gate.PERIODIC_REVIEW, actor="system")
                continue
            rule = self._rule(gate.gate)
            due_reminders = [
                h
                for h in rule.remind_before_hours
                if h not in gate.reminded
                and gate.due_at - timedelta(hours=h) <= now
                and gate.due_at - timedelta(hours=h) > gate.opened_at
            ]
            if due_reminders:
                gate.reminded += due_reminders
                self._record(
                    "reminder_sent",
                    actor="system",
                    channel=Channel.SYSTEM,
                    gate=gate.gate,
                    payload={"hours_before_sla": due_reminders, "to": self._pending()},
                )
                self._notify_gate(NotificationKind.REMINDER)
                continue
            if gate.escalated_at is None and gate.due_at <= now:
                gate.escalated_at = now
                to = self.inp.owners.escalation_owner
                self._record(
                    "gate_escalated",
                    actor="system",
                    channel=Channel.SYSTEM,
                    gate=gate.gate,
                    payload={"to": to, "pending": self._pending()},
                )
                self._notify_gate(NotificationKind.ESCALATION)
                self._publish()
                continue
            if gate.expires_at is not None and gate.expires_at <= now:
                self._record("gate_expired", actor="system", channel=Channel.SYSTEM, gate=gate.gate)
                self._notify_gate(NotificationKind.GATE_CLOSED, outcome="expired")
                if gate.gate in LIVE_GATES:
                    self.gate = None
                    self._publish()
                else:
                    # never a silent approve: the run waits for the delivery lead
                    self.stalled_gate = gate.gate
                    self.gate = None
                    self.stage = Stage.STALLED
                    self.stage_entered_at = now
                    self._record("stage_entered", actor="system", channel=Channel.SYSTEM)
                    self._publish()
                continue
            break  # nothing actually due (defensive: never spin)

    def _should_continue_as_new(self) -> bool:
        if self.stage not in (Stage.LIVE, Stage.SUSPENDED) or self.change is not None:
            return False
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self.inp.continue_as_new_after
        )

    def _carry_input(self) -> UseCaseInput:
        carry = Carry(
            started_at=self.started_at,
            updated_at=self.updated_at,
            stage=self.stage,
            stage_entered_at=self.stage_entered_at,
            round=self.round,
            evidence=self.evidence,
            gate=self.gate,
            stalled_gate=self.stalled_gate,
            validation_completed_by=self.validation_completed_by,
            history=self.history,
            refused=self.refused,
            voided=self.voided,
            event_id=self.event_id,
            cards=self.cards,
            live_version=self.live_version,
            live_since=self.live_since,
            next_review_at=self.next_review_at,
            incidents=self.incidents,
            changes=self.changes,
            runs=self.runs + 1,
            last_closed_gate=self.last_closed_gate,
        )
        return self.inp.model_copy(update={"carry": carry.model_dump(mode="json")})

    def _restore(self, carry: Carry) -> None:
        for name in Carry.model_fields:
            setattr(self, name, getattr(carry, name))
        self.read_model_stale = True

    # ------------------------------------------------------------------ rules glue

    @property
    def _raised_by(self) -> str | None:
        return self.change.raised_by if self.change else None

    def _rule(self, gate: Gate) -> GateRule:
        rule = policy.gate_rule(self.policy, gate)
        if rule is None:  # the pinned policy built the path, so this cannot happen
            raise ApplicationError(f"no rule for gate {gate.value}", non_retryable=True)
        return rule

    def _excluded(self, gate: Gate) -> set[str]:
        return policy.excluded_from_gate(
            gate,
            self.inp.roster,
            validation_completed_by=self.validation_completed_by,
            change_raised_by=self._raised_by,
        )

    def _approvers(self) -> list[str]:
        return [a.actor for a in self.gate.approvals] if self.gate else []

    def _quorum_met(self) -> bool:
        assert self.gate is not None
        return policy.quorum_met(
            self._rule(self.gate.gate),
            self.inp.roster,
            self._excluded(self.gate.gate),
            self._approvers(),
            change_raised_by=self._raised_by,
        )

    def _check_counts(self, cmd: GateDecision) -> None:
        """An approval must fill an empty quorum seat; a person never counts twice."""
        if cmd.decision != Decision.APPROVE or self.gate is None:
            return
        if not policy.approval_counts(
            self._rule(self.gate.gate),
            self.inp.roster,
            self._excluded(self.gate.gate),
            self._approvers(),
            cmd.actor,
            change_raised_by=self._raised_by,
        ):
            raise _refuse(
                policy.PolicyViolation(
                    policy.Refusal.ALREADY_DECIDED,
                    f"the seats {cmd.actor} can fill on {self.gate.gate.value} are already taken",
                )
            )

    def _validate(self, check: Callable[[UseCaseView, Any], None], cmd: object) -> None:
        try:
            check(self.view(), cmd)
        except policy.PolicyViolation as exc:
            raise _refuse(exc) from None

    def _refresh_gate_evidence(self) -> None:
        if self.gate is None:
            return
        self.gate.evidence_digests = policy.evidence_digests(self.evidence)
        self.gate.required_evidence = policy.missing_evidence(
            self._rule(self.gate.gate).evidence, self.evidence
        )

    def _add_evidence_records(
        self, items: list[Evidence], actor: str, *, scope: str
    ) -> list[EvidenceRecord]:
        now = workflow.now()
        records = [
            EvidenceRecord(
                **e.model_dump(), scope=scope, round=self.round, submitted_by=actor, at=now
            )
            for e in items
        ]
        self.evidence += records
        return records

    # ------------------------------------------------------------------ what the world sees

    def view(self) -> UseCaseView:
        required: list[str] = []
        if self.gate is not None:
            required = list(self.gate.required_evidence)
        elif self.stage in WORK_STAGES:
            required = policy.missing_evidence(
                policy.required_kinds(self.policy, self.stage), self.evidence
            )
        return UseCaseView(
            id=self.workflow_id,
            key=self.inp.key,
            title=self.inp.title,
            summary=self.inp.summary,
            risk_tier=self.inp.risk_tier,
            stage=self.stage,
            closed=self.closed,
            outcome=self.outcome,
            round=self.round,
            owners=self.inp.owners,
            slack_channel=self.inp.slack_channel,
            open_gate=self.gate.model_copy(deep=True) if self.gate else None,
            required_evidence=required,
            evidence=list(self.evidence),
            policy=PolicyRef(version=self.policy.version, sha256=self.policy.sha256),
            stage_entered_at=self.stage_entered_at,
            started_at=self.started_at,
            updated_at=self.updated_at,
            event_count=self.event_id,
            live_version=self.live_version,
            live_since=self.live_since,
            next_review_at=self.next_review_at,
            stalled_gate=self.stalled_gate,
            last_closed_gate=self.last_closed_gate,
            incidents=list(self.incidents),
            changes=[c.model_copy() for c in self.changes],
            change=self.change,
        )

    def _pending(self) -> list[str]:
        if self.gate is None:
            return []
        return policy.pending_approvers(
            self._rule(self.gate.gate),
            self.inp.roster,
            self._excluded(self.gate.gate),
            self._approvers(),
            change_raised_by=self._raised_by,
        )

    def _publish(self) -> None:
        """Keep search attributes, current details and the read model in step with the state."""
        gate = self.gate
        pending = self._pending()
        waiting = list(pending)
        if gate is not None and gate.escalated_at is not None:
            waiting.append(self.inp.owners.escalation_owner)
        workflow.upsert_search_attributes(
            [
                search.STAGE.value_set(self.stage.value),
                search.PENDING_APPROVERS.value_set(sorted(set(waiting)))
                if waiting
                else search.PENDING_APPROVERS.value_unset(),
                search.GATE_DUE_AT.value_set(
                    gate.expires_at if gate.escalated_at and gate.expires_at else gate.due_at
                )
                if gate
                else search.GATE_DUE_AT.value_unset(),
            ]
        )
        lines = [f"**Stage:** {self.stage.value} · round {self.round}"]
        if self.change is not None:
            lines.append(
                f"**Change:** {self.change.change_id} ({self.change.materiality.value}) "
                f"of {self.change.parent_id}"
            )
        if gate is not None:
            approved = ", ".join(self._approvers()) or "nobody yet"
            lines += [
                f"**Gate:** {gate.gate.value} — quorum {gate.quorum}, approved by {approved}",
                f"**Waiting on:** {', '.join(pending) or '—'}",
                f"**Due:** {gate.due_at.isoformat()}"
                + (
                    f" (escalated to {self.inp.owners.escalation_owner})"
                    if gate.escalated_at
                    else ""
                ),
            ]
            if gate.required_evidence:
                lines.append(f"**Evidence missing:** {', '.join(gate.required_evidence)}")
        elif self.stage in WORK_STAGES:
            lines.append(
                f"**Waiting on:** {self.inp.owners.delivery_lead} or "
                f"{self.inp.owners.technical_owner} to complete {self.stage.value}"
            )
        elif self.stage == Stage.STALLED and self.stalled_gate:
            lines.append(
                f"**Expired:** {self.stalled_gate.value} — waiting on "
                f"{self.inp.owners.delivery_lead} to reopen or cancel"
            )
        elif self.stage in (Stage.LIVE, Stage.SUSPENDED) and not self.closed:
            lines.append(f"**Live version:** {self.live_version}")
            if self.next_review_at:
                lines.append(f"**Next review:** {self.next_review_at.isoformat()}")
        elif self.closed:
            lines.append(f"**Closed:** {self.outcome}")
        workflow.set_current_details("\n".join(lines))
        self.read_model_stale = True

    def _notify_gate(
        self,
        kind: NotificationKind,
        *,
        outcome: str | None = None,
        by: str | None = None,
        comment: str = "",
    ) -> None:
        """Queue a gate card: opened for the people it waits on, then updated in place."""
        gate = self.gate
        if gate is None:
            return
        pending = self._pending() if outcome is None else []
        card = GateCard(
            gate=gate.gate.value,
            round=gate.round,
            quorum=gate.quorum,
            eligible=list(gate.eligible),
            pending=pending,
            approvals=list(gate.approvals),
            due_at=gate.due_at,
            outcome=outcome,
            decided_by=by,
            comment=comment,
        )
        title, name = self.inp.title, gate.gate.value
        recipients: list[str] = []
        if kind == NotificationKind.GATE_OPENED:
            text = (
                f"{title}: {name} waits on {', '.join(pending) or 'nobody'} "
                f"(quorum {gate.quorum}), due {gate.due_at:%Y-%m-%d %H:%M} UTC"
            )
            recipients = pending
        elif kind == NotificationKind.GATE_UPDATED:
            text = f"{title}: {name} approved by {', '.join(self._approvers()) or 'nobody yet'}"
        elif kind == NotificationKind.REMINDER:
            text = f"Reminder — {title}: {name} is due {gate.due_at:%Y-%m-%d %H:%M} UTC"
            recipients = pending
        elif kind == NotificationKind.ESCALATION:
            text = (
                f"Escalation — {title}: {name} passed its SLA waiting on "
                f"{', '.join(pending) or 'nobody'}"
            )
            recipients = [self.inp.owners.escalation_owner]
        else:
            text = f"{title}: {name} {outcome}" + (f" by {by}" if by else "")
        self.notices.append(self._notice(kind, text, card=card, recipients=recipients))

    def _live_notice(self, text: str) -> None:
        owners = self.inp.owners
        recipients = sorted(
            {owners.business_owner, owners.technical_owner, owners.operations_owner}
        )
        self.notices.append(
            self._notice(
                NotificationKind.LIVE_EVENT, f"{self.inp.title}: {text}", recipients=recipients
            )
        )

    def _notice(
        self,
        kind: NotificationKind,
        text: str,
        *,
        card: GateCard | None = None,
        recipients: list[str] | None = None,
    ) -> Notification:
        return Notification(
            kind=kind,
            workflow_id=self.workflow_id,
            key=self.inp.key,
            title=self.inp.title,
            risk_tier=self.inp.risk_tier.value,
            stage=self.stage.value,
            round=card.round if card else self.round,
            at=workflow.now(),
            text=text,
            gate=card,
            evidence=[
                Evidence(**e.model_dump(include={"kind", "name", "uri", "sha256"}))
                for e in self.evidence
            ],
            recipients=recipients or [],
            slack_channel=self.inp.slack_channel,
        )

    def _call_hook(self, hook: str, payload: dict[str, Any]) -> None:
        hooks = self.inp.hooks
        url = getattr(hooks, f"{hook}_url", None) if hooks else None
        url = url or getattr(self.policy.live.hooks, f"{hook}_url", None)
        if not url:
            return
        self.hooks.append(
            HookRequest(
                workflow_id=self.workflow_id,
                use_case_key=self.inp.key,
                hook=hook,
                url=url,
                idempotency_key=f"{self.workflow_id}:{self.event_id}:{hook}",
                payload={"use_case": self.inp.key, "stage": self.stage.value, **payload},
            )
        )

    def _record(
        self,
        kind: str,
        *,
        actor: str,
        channel: Channel,
        gate: Gate | None = None,
        decision: Decision | None = None,
        comment: str = "",
        evidence: list[EvidenceRecord] | None = None,
        payload: dict[str, object] | None = None,
    ) -> None:
        """One fact: into the history the API shows, and into the outbox for the ledger."""
        now = workflow.now()
        self.updated_at = now
        self.event_id += 1
        items = [
            Evidence(**e.model_dump(include={"kind", "name", "uri", "sha256"}))
            for e in evidence or []
        ]
        self.history.append(
            HistoryEvent(
                at=now,
                stage=self.stage,
                kind=kind,
                actor=actor,
                channel=channel,
                decision=decision,
                gate=gate,
                comment=comment,
                evidence=items,
                round=self.round,
            )
        )
        body: dict[str, object] = {"stage": self.stage.value, "round": self.round}
        if gate is not None:
            body["gate"] = gate.value
        if decision is not None:
            body["decision"] = decision.value
        if comment:
            body["comment"] = comment
        if items:
            body["evidence"] = [e.model_dump(mode="json") for e in items]
        body.update(payload or {})
        self.outbox.append(
            LedgerRecord(
                workflow_id=self.workflow_id,
                use_case_key=self.inp.key,
                event_id=self.event_id,
                at=now,
                kind=kind,
                actor=actor,
                channel=channel,
                payload=body,
                policy_version=self.policy.version,
                evidence=list(evidence or []),
            )
        )

    def _refused(self, cmd: GateDecision, command: str, err: ApplicationError) -> None:
        refusal = policy.Refusal(err.type) if err.type else policy.Refusal.INVALID
        self.refused.append(
            RefusedAttempt(
                at=workflow.now(),
                actor=cmd.actor,
                channel=cmd.channel,
                command=command,
                refusal=refusal,
                detail=err.message,
            )
        )
        self._record(
            "refused",
            actor=cmd.actor,
            channel=cmd.channel,
            gate=cmd.gate,
            decision=cmd.decision,
            comment=cmd.comment,
            payload={"command": command, "refusal": refusal.value, "detail": err.message},
        )

    # ------------------------------------------------------------------ side effects

    async def _flush(self) -> None:
        """Ship what handlers recorded, in order: ledger, hooks, notifications, read model."""
        while self.outbox or self.hooks:
            while self.outbox:
                batch, self.outbox = self.outbox, []
                kinds = ", ".join(dict.fromkeys(r.kind for r in batch))
                await workflow.execute_activity(
                    LEDGER_APPEND,
                    LedgerBatch(records=batch),
                    start_to_close_timeout=STORE_TIMEOUT,
                    retry_policy=STORE_RETRY,
                    summary=f"ledger: {kinds} ({self.stage.value})",
                )
            if self.hooks:
                await self._call_hooks()
        await self._send_notices()
        while self.cancel_runs:
            run_id = self.cancel_runs.pop(0)
            await workflow.get_external_workflow_handle(run_id).cancel()
        if self.parent_report is not None and self.change is not None:
            report, self.parent_report = self.parent_report, None
            parent = workflow.get_external_workflow_handle(self.change.parent_id)
            await parent.signal(UseCaseRelease.change_finished, report)
        if self.read_model_stale:
            self.read_model_stale = False
            await workflow.execute_activity(
                REGISTRY_SYNC,
                self._registry_row(),
                start_to_close_timeout=STORE_TIMEOUT,
                retry_policy=STORE_RETRY,
                summary=f"read model: {self.stage.value}",
            )

    async def _call_hooks(self) -> None:
        while self.hooks:
            request = self.hooks.pop(0)
            try:
                result: HookResult = await workflow.execute_activity(
                    HOOK_CALL,
                    request,
                    result_type=HookResult,
                    start_to_close_timeout=HOOK_TIMEOUT,
                    retry_policy=HOOK_RETRY,
                    summary=f"{request.hook} hook: {request.url}",
                )
                self._record(
                    "hook_called",
                    actor="system",
                    channel=Channel.SYSTEM,
                    payload={
                        "hook": request.hook,
                        "url": request.url,
                        "status_code": result.status_code,
                        "ok": result.ok,
                    },
                )
            except ActivityError as err:
                self._record(
                    "hook_failed",
                    actor="system",
                    channel=Channel.SYSTEM,
                    payload={
                        "hook": request.hook,
                        "url": request.url,
                        "error": str(err.cause or err),
                    },
                )
                self._live_notice(f"{request.hook} hook failed: {err.cause or err}")

    async def _send_notices(self) -> None:
        while self.notices:
            notice = self.notices.pop(0)
            card_key = f"{notice.gate.gate}:{notice.gate.round}" if notice.gate else None
            if notice.kind == NotificationKind.GATE_UPDATED and any(
                n.gate and f"{n.gate.gate}:{n.gate.round}" == card_key for n in self.notices
            ):
                continue  # a newer card for the same gate is queued: send only that one
            if card_key and notice.kind in (
                NotificationKind.GATE_UPDATED,
                NotificationKind.GATE_CLOSED,
            ):
                notice.message_refs = list(self.cards.get(card_key, []))
            try:
                result: NotifyResult = await workflow.execute_activity(
                    NOTIFY,
                    notice,
                    result_type=NotifyResult,
                    start_to_close_timeout=NOTIFY_TIMEOUT,
                    retry_policy=NOTIFY_RETRY,
                    summary=f"notify: {notice.kind.value} "
                    f"{notice.gate.gate if notice.gate else notice.stage}",
                )
            except ActivityError as err:
                workflow.logger.warning("notification %s not delivered: %s", notice.kind, err)
                continue
            if card_key and notice.kind == NotificationKind.GATE_OPENED:
                self.cards[card_key] = result.message_refs

    def _registry_row(self) -> RegistryRow:
        gate = self.gate
        return RegistryRow(
            workflow_id=self.workflow_id,
            key=self.inp.key,
            title=self.inp.title,
            risk_tier=self.inp.risk_tier.value,
            stage=self.stage.value,
            closed=self.closed,
            business_owner=self.inp.owners.business_owner,
            owners=self.inp.owners.model_dump(mode="json"),
            pending_approvers=self._pending(),
            gate=gate.gate.value if gate else None,
            quorum=gate.quorum if gate else None,
            approvals=self._approvers(),
            due_at=gate.due_at if gate else None,
            round=self.round,
            updated_at=self.updated_at,
            event_id=self.event_id,
        )


__all__ = ["Carry", "UseCaseRelease"]
