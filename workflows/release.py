"""UseCaseRelease: one durable workflow per AI use case, from scoping to governed production.

The path is fixed by the risk tier's pinned policy:

    scoping ─▶ [scope_approval] ─▶ specification ─▶ implementation ─▶ validation
        ─▶ risk_signoff ─▶ ops_handoff ─▶ go_live ─▶ live

People move it. Work stages are completed, evidence is submitted and gates are decided through
Updates whose validators apply ``workflows.policy``; a refused command never enters history.
Gate decisions are also accepted as Signals (for ``temporal workflow signal`` and the Temporal
UI); an invalid signal changes nothing and is kept as a refused attempt.

Handlers change state synchronously and return the state after the change, so a caller always
sees the stage its command led to. The run loop owns the side effects: it ships every recorded
fact to the ledger and the read model through activities, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import policy, search
    from workflows.activities import (
        LEDGER_APPEND,
        NOTIFY,
        REGISTRY_SYNC,
        GateCard,
        LedgerBatch,
        LedgerRecord,
        MessageRef,
        Notification,
        NotificationKind,
        NotifyResult,
        RegistryRow,
    )
    from workflows.model import (
        TERMINAL_STAGES,
        WORK_STAGES,
        AddEvidence,
        Approval,
        Cancel,
        Channel,
        CompleteStage,
        Decision,
        Evidence,
        EvidenceRecord,
        Gate,
        GateDecision,
        HistoryEvent,
        OpenGate,
        PolicyRef,
        RefusedAttempt,
        Role,
        Stage,
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


def _refuse(exc: policy.PolicyViolation) -> ApplicationError:
    return ApplicationError(exc.detail, type=exc.refusal.value, non_retryable=True)


@workflow.defn
class UseCaseRelease:
    # ------------------------------------------------------------------ state

    @workflow.init
    def __init__(self, inp: UseCaseInput) -> None:
        self.inp = inp
        self.policy = inp.policy
        self.path = policy.stage_path(inp.policy.rules)
        now = workflow.now()
        self.started_at = now
        self.updated_at = now
        self.stage = Stage.SCOPING
        self.stage_entered_at = now
        self.round = 1
        self.closed = False
        self.outcome: str | None = None
        self.evidence: list[EvidenceRecord] = []
        self.gate: OpenGate | None = None
        self.validation_completed_by: str | None = None
        self.history: list[HistoryEvent] = []
        self.refused: list[RefusedAttempt] = []
        self.voided: list[Approval] = []
        self.event_id = 0
        self.outbox: list[LedgerRecord] = []
        self.read_model_stale = True
        self.notices: list[Notification] = []
        # posted gate cards per "gate:round", so later notices update them in place
        self.cards: dict[str, list[MessageRef]] = {}
        # Start here, not in run(): an update may be delivered before run() first executes.
        self._record(
            "run_started",
            actor=inp.owners.delivery_lead,
            channel=Channel.SYSTEM,
            payload={
                "title": inp.title,
                "risk_tier": inp.risk_tier.value,
                "owners": inp.owners.model_dump(mode="json"),
                "roster": {r.value: ids for r, ids in inp.roster.items()},
                "policy": {"version": self.policy.version, "sha256": self.policy.sha256},
                "path": [s.value for s in self.path],
            },
        )
        self._enter(Stage.SCOPING, actor=inp.owners.delivery_lead)


    @property
    def workflow_id(self) -> str:
        return workflow.info().workflow_id

    # ------------------------------------------------------------------ the run

    @workflow.run
    async def run(self, inp: UseCaseInput) -> UseCaseOutcome:
        # Everything that happens is driven by handlers; the loop ships what they recorded.
        while True:
            await workflow.wait_condition(
                lambda: bool(self.outbox or self.notices) or self.read_model_stale or self.closed
            )
            await self._flush()
            if self.closed and workflow.all_handlers_finished():
                await self._flush()
                break

        return UseCaseOutcome(
            key=inp.key, stage=self.stage, outcome=self.outcome or "", at=self.updated_at
        )

    # ------------------------------------------------------------------ commands (updates)

    @workflow.update
    def complete_stage(self, cmd: CompleteStage) -> UseCaseView:
        self._validate(policy.check_complete_stage, cmd)
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
        self._validate(policy.check_add_evidence, cmd)
        scope = self.gate.gate.value if self.gate else self.stage.value
        records = self._add_evidence_records(cmd.evidence, cmd.actor, scope=scope)
        self._record(
            "evidence_added", actor=cmd.actor, channel=cmd.channel, comment=cmd.comment,
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
            self._publish_gate()
            self._notify_gate(NotificationKind.GATE_UPDATED)
        return self.view()

    @add_evidence.validator
    def _validate_add_evidence(self, cmd: AddEvidence) -> None:
        self._validate(policy.check_add_evidence, cmd)

    @workflow.update
    def decide(self, cmd: GateDecision) -> UseCaseView:
        self._validate(policy.check_decision, cmd)
        self._check_counts(cmd)
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
    def cancel(self, cmd: Cancel) -> UseCaseView:
        self._validate(policy.check_cancel, cmd)
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
            if self._quorum_met():
                self._record(
                    "gate_passed",
                    actor=cmd.actor,
                    channel=Channel.SYSTEM,
                    gate=gate.gate,
                    payload={"approvers": [a.actor for a in gate.approvals]},
                )
                self._notify_gate(NotificationKind.GATE_CLOSED, outcome="passed", by=cmd.actor)
                self._enter(policy.next_stage(self.path, self.stage), actor=cmd.actor)
            else:
                self._publish_gate()
                self._notify_gate(NotificationKind.GATE_UPDATED)
        elif cmd.decision == Decision.REQUEST_CHANGES:
            self._notify_gate(
                NotificationKind.GATE_CLOSED,
                outcome="changes_requested",
                by=cmd.actor,
                comment=cmd.comment,
            )
            rule = self._rule(gate.gate)
            self.round += 1
            self._enter(rule.rework_stage, actor=cmd.actor)
        else:
            self._notify_gate(
                NotificationKind.GATE_CLOSED, outcome="rejected", by=cmd.actor, comment=cmd.comment
            )
            self._close(Stage.REJECTED, "rejected", actor=cmd.actor)

    def _enter(self, stage: Stage, *, actor: str) -> None:
        now = workflow.now()
        self.stage = stage
        self.stage_entered_at = now
        self.gate = None
        if policy.is_gate(stage):
            self._open_gate(Gate(stage.value), now)
        self._record("stage_entered", actor=actor, channel=Channel.SYSTEM)
        self._publish_gate()
        if self.gate is not None:
            self._notify_gate(NotificationKind.GATE_OPENED)

    def _open_gate(self, gate: Gate, now: datetime) -> None:
        rule = self._rule(gate)
        excluded = self._excluded(gate)
        self.gate = OpenGate(
            gate=gate,
            eligible=policy.eligible(rule, self.inp.roster, excluded),
            quorum=rule.quorum,
            approvals=[],
            opened_at=now,
            due_at=now + timedelta(hours=rule.sla_hours),
            round=self.round,
        )
        self._refresh_gate_evidence()

    def _close(self, stage: Stage, outcome: str, *, actor: str) -> None:
        self.stage = stage
        self.stage_entered_at = workflow.now()
        self.gate = None
        self.closed = True
        self.outcome = outcome
        self._record("run_closed", actor=actor, channel=Channel.SYSTEM, payload={"outcome": outcome})
        self._publish_gate()

    # ------------------------------------------------------------------ rules glue

    def _rule(self, gate: Gate):  # type: ignore[no-untyped-def]
        rule = policy.gate_rule(self.policy, gate)
        if rule is None:  # the pinned policy built the path, so this cannot happen
            raise ApplicationError(f"no rule for gate {gate.value}", non_retryable=True)
        return rule

    def _excluded(self, gate: Gate) -> set[str]:
        return policy.excluded_from_gate(
            gate, self.inp.roster, validation_completed_by=self.validation_completed_by
        )

    def _quorum_met(self) -> bool:
        assert self.gate is not None
        return policy.quorum_met(
            self._rule(self.gate.gate),
            self.inp.roster,
            self._excluded(self.gate.gate),
            [a.actor for a in self.gate.approvals],
        )

    def _check_counts(self, cmd: GateDecision) -> None:
        """An approval must fill an empty quorum seat; a person never counts twice."""
        if cmd.decision != Decision.APPROVE or self.gate is None:
            return
        if not policy.approval_counts(
            self._rule(self.gate.gate),
            self.inp.roster,
            self._excluded(self.gate.gate),
            [a.actor for a in self.gate.approvals],
            cmd.actor,
        ):
            raise _refuse(
                policy.PolicyViolation(
                    policy.Refusal.ALREADY_DECIDED,
                    f"the seats {cmd.actor} can fill on {self.gate.gate.value} are already taken",
                )
            )

    def _validate(self, check: Callable[[UseCaseView, object], None], cmd: object) -> None:
        try:
            check(self.view(), cmd)
        except policy.PolicyViolation as exc:
            raise _refuse(exc) from None

    def _refresh_gate_evidence(self) -> None:
        if self.gate is None:
            return
        self.gate.evidence_digests = policy.evidence_digests(self.evidence)
        self.gate.required_evidence = policy.missing_evidence(
            policy.required_kinds(self.policy, Stage(self.gate.gate.value)), self.evidence
        )

    def _add_evidence_records(
        self, items: list[Evidence], actor: str, *, scope: str
    ) -> list[EvidenceRecord]:
        now = workflow.now()
        records = [
            EvidenceRecord(**e.model_dump(), scope=scope, round=self.round, submitted_by=actor, at=now)
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
        )

    def _pending(self) -> list[str]:
        if self.gate is None:
            return []
        return policy.pending_approvers(
            self._rule(self.gate.gate),
            self.inp.roster,
            self._excluded(self.gate.gate),
            [a.actor for a in self.gate.approvals],
        )

    def _publish_gate(self) -> None:
        """Keep search attributes, current details and the read model in step with the state."""
        pending = self._pending()
        gate = self.gate
        workflow.upsert_search_attributes(
            [
                search.STAGE.value_set(self.stage.value),
                search.PENDING_APPROVERS.value_set(pending)
                if pending
                else search.PENDING_APPROVERS.value_unset(),
                search.GATE_DUE_AT.value_set(gate.due_at)
                if gate
                else search.GATE_DUE_AT.value_unset(),
            ]
        )
        lines = [f"**Stage:** {self.stage.value} · round {self.round}"]
        if gate is not None:
            approved = ", ".join(a.actor for a in gate.approvals) or "nobody yet"
            lines += [
                f"**Gate:** {gate.gate.value} — quorum {gate.quorum}, approved by {approved}",
                f"**Waiting on:** {', '.join(pending) or '—'}",
                f"**Due:** {gate.due_at.isoformat()}",
            ]
            if gate.required_evidence:
                lines.append(f"**Evidence missing:** {', '.join(gate.required_evidence)}")
        elif self.stage in WORK_STAGES:
            lines.append(
                f"**Waiting on:** {self.inp.owners.delivery_lead} or "
                f"{self.inp.owners.technical_owner} to complete {self.stage.value}"
            )
        elif self.stage in TERMINAL_STAGES:
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
        text = {
            NotificationKind.GATE_OPENED: f"{self.inp.title}: {gate.gate.value} waits on "
            f"{', '.join(pending) or 'nobody'} (quorum {gate.quorum}), due {gate.due_at:%Y-%m-%d %H:%M} UTC",
            NotificationKind.GATE_UPDATED: f"{self.inp.title}: {gate.gate.value} approved by "
            f"{', '.join(a.actor for a in gate.approvals) or 'nobody yet'}",
            NotificationKind.GATE_CLOSED: f"{self.inp.title}: {gate.gate.value} {outcome}"
            + (f" by {by}" if by else ""),
        }.get(kind, f"{self.inp.title}: {gate.gate.value}")
        self.notices.append(
            Notification(
                kind=kind,
                workflow_id=self.workflow_id,
                key=self.inp.key,
                title=self.inp.title,
                risk_tier=self.inp.risk_tier.value,
                stage=self.stage.value,
                round=gate.round,
                at=workflow.now(),
                text=text,
                gate=card,
                evidence=[
                    Evidence(**e.model_dump(include={"kind", "name", "uri", "sha256"}))
                    for e in self.evidence
                ],
                recipients=pending if kind == NotificationKind.GATE_OPENED else [],
                slack_channel=self.inp.slack_channel,
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
        items = [Evidence(**e.model_dump(include={"kind", "name", "uri", "sha256"})) for e in evidence or []]
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
        while self.notices:
            notice = self.notices.pop(0)
            card_key = f"{notice.gate.gate}:{notice.gate.round}" if notice.gate else None
            if notice.kind == NotificationKind.GATE_UPDATED and any(
                n.gate and f"{n.gate.gate}:{n.gate.round}" == card_key for n in self.notices
            ):
                continue  # a newer card for the same gate is queued: send only that one
            if card_key and notice.kind != NotificationKind.GATE_OPENED:
                notice.message_refs = list(self.cards.get(card_key, []))
            try:
                result: NotifyResult = await workflow.execute_activity(
                    NOTIFY,
                    notice,
                    result_type=NotifyResult,
                    start_to_close_timeout=NOTIFY_TIMEOUT,
                    retry_policy=NOTIFY_RETRY,
                    summary=f"notify: {notice.kind.value} {notice.gate.gate if notice.gate else ''}",
                )
            except ActivityError as err:
                workflow.logger.warning("notification %s not delivered: %s", notice.kind, err)
                continue
            if card_key and notice.kind == NotificationKind.GATE_OPENED:
                self.cards[card_key] = result.message_refs
        if self.read_model_stale:
            self.read_model_stale = False
            await workflow.execute_activity(
                REGISTRY_SYNC,
                self._registry_row(),
                start_to_close_timeout=STORE_TIMEOUT,
                retry_policy=STORE_RETRY,
                summary=f"read model: {self.stage.value}",
            )

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
            approvals=[a.actor for a in gate.approvals] if gate else [],
            due_at=gate.due_at if gate else None,
            round=self.round,
            updated_at=self.updated_at,
            event_id=self.event_id,
        )


__all__ = ["UseCaseRelease", "Role"]
