"""UseCaseRelease: one durable workflow per AI use case, from scoping to retirement.

The path is fixed by the risk tier's pinned policy:

    scoping ─▶ [scope_approval] ─▶ specification ─▶ implementation ─▶ validation
        ─▶ risk_signoff ─▶ ops_handoff ─▶ go_live ─▶ live ⇄ suspended ─▶ retired

This class is the Temporal shell around pure modules. Where to look:

- who may send a command or decide a gate: ``workflows/policy.py``;
- what a command does to the run: ``transitions`` (stages, gates ending, work commands),
  ``gates`` (seats, approvals, evidence binding) and ``live`` (incidents, stop-ship, changes);
- time (reminders, escalation, expiry, periodic review): ``clock``;
- what the world sees: ``presentation``; what is shipped afterwards: ``outbox``, and how it
  is shipped: ``shipping``; which code paths a run takes: ``versions``.

Every command is an Update whose validator runs ``policy.check_command`` (authorization, then
the run's state); a refused command never enters history. Handlers change ``ReleaseState``
synchronously and return the view after the change. The SDK runs an update's validator and its
synchronous handler in one step of the event loop, so the state a validator approved is the
state the handler changes (the 20-concurrent-approvals test holds a quorum to exactly 2 on
that). The run loop owns time and side effects: it fires deadlines and ships every recorded
fact to the ledger, hooks, notifications and the read model, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from workflows import (
        bounded,
        breakglass,
        clock,
        credentials,
        gates,
        ids,
        limits,
        live,
        policy,
        presentation,
        search,
        transitions,
        waivers,
    )
    from workflows.model import (
        GENERATION,
        AddEvidence,
        Approval,
        Cancel,
        ChangeOutcome,
        Channel,
        CommandName,
        CompleteStage,
        DecideWaiver,
        Gate,
        GateDecision,
        HistoryEvent,
        OverrideGate,
        RaiseChange,
        Refusal,
        RefusedAttempt,
        ReopenGate,
        ReportIncident,
        ReportRuntime,
        RequestWaiver,
        ResolveIncident,
        Resume,
        Retire,
        RunSignal,
        SetDeputies,
        Stage,
        Suspend,
        UseCaseInput,
        UseCaseOutcome,
        UseCaseView,
    )
    from workflows.shipping import Shipper
    from workflows.state import ReleaseState, Run
    from workflows.versions import (
        AUTHENTICATED_COMMANDS,
        BOUNDED_RUNS,
        BOUNDED_STATE,
        CodePaths,
    )


@dataclass
class _Timer:
    """The deadline timer a run keeps across commands: when it fires, and its task."""

    at: datetime
    task: asyncio.Task[None]


def _decide(run: Run, cmd: GateDecision, now: datetime) -> None:
    """A decision on the open gate, or on a break-glass override's retrospective review."""
    if cmd.gate == Gate.OVERRIDE_REVIEW:
        breakglass.decide(run, cmd, now)
    else:
        transitions.decide(run, cmd, now)


def _deputy_memo(state: ReleaseState) -> dict[str, list[str]]:
    return {role.value: [d.person for d in ds] for role, ds in state.deputies.items()}


def _refuse(exc: policy.PolicyViolation) -> ApplicationError:
    # a rate limit's refusal says when to try again (the API's Retry-After)
    details = [{"retry_after": exc.retry_after}] if exc.retry_after is not None else []
    return ApplicationError(exc.detail, *details, type=exc.refusal.value, non_retryable=True)


@workflow.defn
class UseCaseRelease:
    @workflow.init
    def __init__(self, inp: UseCaseInput) -> None:
        # first of all: the run's code paths (its generation, or its patch markers)
        self.paths = CodePaths(inp.generation)
        self._timer: _Timer | None = None  # the deadline timer kept across commands
        wid = workflow.info().workflow_id
        # why this run was not started by a front door, the run itself, or its use case
        self.unauthenticated: str | None = None
        carried = inp.state or inp.carry  # ``carry``: what runs before ReleaseState handed on
        if self.paths.patched(AUTHENTICATED_COMMANDS):
            self.unauthenticated = self._start_refusal(inp, carried is not None)
        resumed = carried is not None and self.unauthenticated is None
        state = ReleaseState.model_validate(carried) if resumed else None
        started = (
            workflow.info().workflow_start_time
            if self.paths.start_at_start_event
            else workflow.now()
        )
        self.run_ = Run(inp, state or ReleaseState.fresh(inp, started), wid)
        self.ship = Shipper(self.run_, self.paths, self._should_continue_as_new)
        if resumed:
            self.run_.state.outbox.read_model_stale = True
            gates.ensure_seats(self.run_)
            return
        if self.unauthenticated is not None:
            workflow.logger.warning("refused to start %s: %s", wid, self.unauthenticated)
            return  # records nothing: the run fails at once
        # Start here, not in run(): an update may be delivered before run() first executes.
        transitions.start(self.run_, started)
        if inp.change is not None and inp.change.evidence:
            seed = AddEvidence(
                actor=inp.change.raised_by, evidence=inp.change.evidence, channel=Channel.SYSTEM
            )
            live.seed_evidence(self.run_, seed, started)
        self.ship.publish()

    @staticmethod
    def _start_refusal(inp: UseCaseInput, carried: bool) -> str | None:
        """None when the start is authentic: a front door signed it, the run itself handed its
        state on (continue-as-new), or its use case's run started it (a change request)."""
        info = workflow.info()
        if carried:
            if info.continued_run_id is None:
                return "a run's state is handed on only by continue-as-new"
            return None
        if inp.change is not None:
            parent = info.parent
            if parent is None or parent.workflow_id != inp.change.parent_id:
                return "a change request's run is started only by its use case's run"
            return None
        try:
            credentials.keyring().verify(
                info.workflow_id, credentials.START, inp, inp.credential, now=workflow.now()
            )
        except credentials.Unauthenticated as exc:
            return str(exc)
        return None

    @property
    def state_(self) -> ReleaseState:
        return self.run_.state

    # ------------------------------------------------------------------ the run

    @workflow.run
    async def run(self, inp: UseCaseInput) -> UseCaseOutcome:
        if self.unauthenticated is not None:
            raise ApplicationError(self.unauthenticated, type="unauthenticated", non_retryable=True)
        state = self.state_
        while True:
            await self._wait_for_work_or_deadline()
            clock.fire_due(self.run_, workflow.now())
            self.ship.publish()
            await self._flush()
            if state.closed:
                await workflow.wait_condition(workflow.all_handlers_finished)
                await self._flush()
                if not state.outbox.has_work():
                    break
            elif self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self.paths.patched(BOUNDED_RUNS):
                    # The outbox crosses with the state and the next run ships it: steady
                    # traffic that always leaves work never holds the hand-over back.
                    workflow.continue_as_new(self._next_run_input())
                await self._flush()
                if not state.outbox.has_work():
                    workflow.continue_as_new(self._next_run_input())
        outcome = state.outcome.value if state.outcome else ""
        return UseCaseOutcome(key=inp.key, stage=state.stage, outcome=outcome, at=state.updated_at)

    async def _flush(self) -> None:
        """Ship what handlers recorded (``workflows/shipping.py``)."""
        await self.ship.flush()

    async def _wait_for_work_or_deadline(self) -> None:
        """Sleep until a handler leaves work, the schedule changes, or the next deadline."""
        state = self.state_
        deadline = clock.next_deadline(self.run_)
        if deadline is not None and deadline[0] <= workflow.now():
            return
        if self.paths.steady_timer:
            await self._wait_on_steady_timer(deadline)
            return
        try:
            await workflow.wait_condition(
                lambda: (
                    state.outbox.has_work()
                    or state.closed
                    or clock.next_deadline(self.run_) != deadline
                ),
                timeout=(deadline[0] - workflow.now()) if deadline else None,
                timeout_summary=deadline[1] if deadline else None,
            )
        except TimeoutError:
            pass  # the deadline is due: the run loop fires it

    async def _wait_on_steady_timer(self, deadline: clock.Deadline | None) -> None:
        """The same wait on a timer kept across commands (generation 1).

        A command that leaves the next deadline where it was, or moves it later (a gate closes
        and the next opens, the run goes live), keeps the timer that is running: no timer is
        cancelled and started again per command. The timer may then fire before anything is
        due; the run loop finds nothing to do and arms the next. Only a deadline earlier than
        the running timer replaces it.
        """
        timer = self._timer
        if timer is not None and (timer.task.done() or (deadline and deadline[0] < timer.at)):
            if not timer.task.done():
                timer.task.cancel()
            self._timer = timer = None
        if timer is None and deadline is not None:
            wait = deadline[0] - workflow.now()
            task = asyncio.create_task(workflow.sleep(wait, summary=deadline[1]))
            self._timer = timer = _Timer(deadline[0], task)

        def woken() -> bool:
            if self.state_.outbox.has_work() or self.state_.closed:
                return True
            if timer is None:
                return clock.next_deadline(self.run_) is not None
            if timer.task.done():
                return True
            due = clock.next_deadline(self.run_)
            return due is not None and due[0] < timer.at

        await workflow.wait_condition(woken)

    def _should_continue_as_new(self) -> bool:
        if self.state_.stage not in (Stage.LIVE, Stage.SUSPENDED) or self.run_.change is not None:
            return False
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self.run_.inp.continue_as_new_after
        )

    def _next_run_input(self) -> UseCaseInput:
        state = self.state_
        if self.paths.patched(BOUNDED_STATE):
            # the lists that grow with the run's life cross cut to what the next run needs
            # (the ledger holds them all): the hand-over stays far below Temporal's limits
            state = bounded.handed_on(state, self.run_.policy.run_limits, workflow.now())
        state = state.model_copy(update={"runs": self.state_.runs + 1})
        # the next run starts on this code's generation, whatever this one started on
        return self.run_.inp.model_copy(
            update={"state": state.model_dump(mode="json"), "carry": None, "generation": GENERATION}
        )

    # ------------------------------------------------------------------ work stages and gates

    @workflow.update
    def complete_stage(self, cmd: CompleteStage) -> UseCaseView:
        return self._apply(transitions.complete_stage, cmd)

    @complete_stage.validator
    def _validate_complete_stage(self, cmd: CompleteStage) -> None:
        self._check(CommandName.COMPLETE_STAGE, cmd)

    @workflow.update
    def add_evidence(self, cmd: AddEvidence) -> UseCaseView:
        return self._apply(transitions.add_evidence, cmd)

    @add_evidence.validator
    def _validate_add_evidence(self, cmd: AddEvidence) -> None:
        self._check(CommandName.ADD_EVIDENCE, cmd)

    @workflow.update
    def decide(self, cmd: GateDecision) -> UseCaseView:
        return self._apply(_decide, cmd)

    @decide.validator
    def _validate_decide(self, cmd: GateDecision) -> None:
        self._check(CommandName.DECIDE, cmd)

    @workflow.signal
    def decide_signal(self, cmd: GateDecision) -> None:
        """The same decision as a Signal. Signals cannot be refused, so an invalid one is kept
        as a refused attempt and changes nothing else."""
        signed = cmd
        cmd = cmd.model_copy(update={"channel": Channel.SIGNAL})
        try:
            if self.paths.patched(AUTHENTICATED_COMMANDS):
                self._authenticate("decide_signal", signed)
            self._checked(CommandName.DECIDE, cmd)
        except policy.PolicyViolation as exc:
            if exc.refusal == Refusal.UNAUTHENTICATED:
                # the actor is only claimed: the ledger says so instead of naming them
                claimed = f"unverified:{cmd.actor}"[: limits.ACTOR_MAX]
                cmd = cmd.model_copy(update={"actor": claimed})
            transitions.refuse(self.run_, cmd, exc, workflow.now())
            return
        _decide(self.run_, cmd, workflow.now())
        self.ship.publish()

    @workflow.update
    def override_gate(self, cmd: OverrideGate) -> UseCaseView:
        """Break-glass: the policy's emergency group passes a stalled gate, on the record."""
        return self._apply(breakglass.override, cmd)

    @override_gate.validator
    def _validate_override_gate(self, cmd: OverrideGate) -> None:
        self._check(CommandName.OVERRIDE_GATE, cmd)

    @workflow.update
    def reopen_gate(self, cmd: ReopenGate) -> UseCaseView:
        return self._apply(transitions.reopen, cmd)

    @reopen_gate.validator
    def _validate_reopen_gate(self, cmd: ReopenGate) -> None:
        self._check(CommandName.REOPEN_GATE, cmd)

    @workflow.update
    def cancel(self, cmd: Cancel) -> UseCaseView:
        return self._apply(transitions.cancel, cmd)

    @cancel.validator
    def _validate_cancel(self, cmd: Cancel) -> None:
        self._check(CommandName.CANCEL, cmd)

    # ------------------------------------------------------------------ live operation

    @workflow.update
    def report_incident(self, cmd: ReportIncident) -> UseCaseView:
        return self._apply(live.report_incident, cmd)

    @report_incident.validator
    def _validate_report_incident(self, cmd: ReportIncident) -> None:
        self._check(CommandName.REPORT_INCIDENT, cmd)

    @workflow.update
    def resolve_incident(self, cmd: ResolveIncident) -> UseCaseView:
        """A monitoring source's alert resolved: its incident records when."""
        return self._apply(live.resolve_incident, cmd)

    @resolve_incident.validator
    def _validate_resolve_incident(self, cmd: ResolveIncident) -> None:
        self._check(CommandName.RESOLVE_INCIDENT, cmd)

    @workflow.update
    def report_runtime(self, cmd: ReportRuntime) -> UseCaseView:
        """The bundle that is running; one other than the approved is an incident."""
        return self._apply(live.report_runtime, cmd)

    @report_runtime.validator
    def _validate_report_runtime(self, cmd: ReportRuntime) -> None:
        self._check(CommandName.REPORT_RUNTIME, cmd)

    @workflow.update
    def suspend(self, cmd: Suspend) -> UseCaseView:
        """Stop-ship: the live version is pulled (rollback hook) until resume is approved."""

        def stop(run: Run, cmd: Suspend, now: Any) -> None:
            transitions.suspend(
                run, actor=cmd.actor, channel=cmd.channel, reason=cmd.reason, now=now
            )

        return self._apply(stop, cmd)

    @suspend.validator
    def _validate_suspend(self, cmd: Suspend) -> None:
        self._check(CommandName.SUSPEND, cmd)

    @workflow.update
    def resume(self, cmd: Resume) -> UseCaseView:
        return self._apply(live.resume, cmd)

    @resume.validator
    def _validate_resume(self, cmd: Resume) -> None:
        self._check(CommandName.RESUME, cmd)

    @workflow.update
    async def raise_change(self, cmd: RaiseChange) -> UseCaseView:
        """A change request runs as a child of this use case, with its own id and the same
        verbs; the live version keeps running until the change passes."""
        update = workflow.current_update_info()
        hand_over = self.paths.patched(AUTHENTICATED_COMMANDS)
        info, child_input = live.raise_change(
            self.run_,
            cmd,
            workflow.now(),
            update_id=update.id if update else None,
            hand_over_evidence=hand_over,
        )
        inp = self.run_.inp
        handle = await workflow.start_child_workflow(
            UseCaseRelease.run,
            child_input.model_copy(update={"generation": GENERATION}),
            id=ids.change_workflow_id(self.run_.workflow_id, info.change_id),
            task_queue=workflow.info().task_queue,
            parent_close_policy=ParentClosePolicy.ABANDON,
            memo={
                "facts": {
                    "tier": inp.risk_tier.value,
                    "policy_sha256": inp.policy.sha256,
                    "roster": {r.value: people for r, people in inp.roster.items()},
                    "request_sha256": "",
                    "change_raised_by": cmd.actor,
                    "deputies": _deputy_memo(self.state_),
                }
            },
            static_summary=f"{inp.title} — {info.change_id} ({cmd.materiality.value})",
            static_details=f"Change request {info.change_id} of {inp.key}: {cmd.summary}",
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(search.USE_CASE_KEY, inp.key),
                    SearchAttributePair(search.RISK_TIER, inp.risk_tier.value),
                    SearchAttributePair(search.BUSINESS_OWNER, inp.owners.business_owner),
                ]
            ),
        )
        if cmd.evidence and not hand_over:
            await handle.signal(
                UseCaseRelease.seed_evidence,
                AddEvidence(actor=cmd.actor, evidence=cmd.evidence, channel=cmd.channel),
            )
        return self._view()

    @raise_change.validator
    def _validate_raise_change(self, cmd: RaiseChange) -> None:
        self._check(CommandName.RAISE_CHANGE, cmd)

    @workflow.signal
    def seed_evidence(self, cmd: AddEvidence) -> None:
        """Evidence a change request was raised with, as runs before authenticated commands
        handed it over. Its sender cannot be verified: a run now takes it from its input."""
        if self.paths.refuses_run_signals:  # generation 1: kept as a refused attempt
            transitions.refuse_run_signal(
                self.run_,
                RunSignal.SEED_EVIDENCE,
                cmd.actor,
                "a change's evidence arrives with its start, never as a signal",
                workflow.now(),
            )
            return
        if self.paths.patched(AUTHENTICATED_COMMANDS):
            workflow.logger.warning("seed_evidence signal ignored: its sender is unverifiable")
            return
        live.seed_evidence(self.run_, cmd, workflow.now())
        self.ship.publish()

    @workflow.signal
    def change_finished(self, result: ChangeOutcome) -> None:
        """A change request's run reports how it ended. Anyone can send a signal, so the report
        is only a hint: the run loop asks Temporal how that change's run really ended."""
        if self.paths.patched(AUTHENTICATED_COMMANDS):
            self.state_.outbox.change_reports.append(result)
            return
        live.change_finished(self.run_, result, workflow.now())
        self.ship.publish()

    @workflow.update
    def retire(self, cmd: Retire) -> UseCaseView:
        return self._apply(live.retire, cmd)

    @retire.validator
    def _validate_retire(self, cmd: Retire) -> None:
        self._check(CommandName.RETIRE, cmd)

    @workflow.update
    def set_deputies(self, cmd: SetDeputies) -> UseCaseView:
        """The business owner names deputies for owner roles (delegation of authority)."""
        view = self._apply(live.set_deputies, cmd)
        # the command layer pre-checks deciders from the memo: keep its deputies current
        workflow.upsert_memo({"deputies": _deputy_memo(self.state_)})
        return view

    @set_deputies.validator
    def _validate_set_deputies(self, cmd: SetDeputies) -> None:
        self._check(CommandName.SET_DEPUTIES, cmd)

    # ------------------------------------------------------------------ governed exceptions

    @workflow.update
    def request_waiver(self, cmd: RequestWaiver) -> UseCaseView:
        """An exception to a policy requirement, asked for until a date; its grantors decide."""
        update = workflow.current_update_info()
        waivers.request(self.run_, cmd, workflow.now(), update_id=update.id if update else None)
        self.ship.publish()
        return self._view()

    @request_waiver.validator
    def _validate_request_waiver(self, cmd: RequestWaiver) -> None:
        self._check(CommandName.REQUEST_WAIVER, cmd)

    @workflow.update
    def decide_waiver(self, cmd: DecideWaiver) -> UseCaseView:
        """A grantor grants (a seat) or refuses (with a comment) a pending exception."""
        return self._apply(waivers.decide, cmd)

    @decide_waiver.validator
    def _validate_decide_waiver(self, cmd: DecideWaiver) -> None:
        self._check(CommandName.DECIDE_WAIVER, cmd)

    # ------------------------------------------------------------------ queries

    @workflow.query
    def state(self) -> UseCaseView:
        return self._view()

    @workflow.query
    def events(self) -> list[HistoryEvent]:
        return list(self.state_.history)

    @workflow.query
    def refused_attempts(self) -> list[RefusedAttempt]:
        return list(self.state_.refused)

    @workflow.query
    def voided_approvals(self) -> list[Approval]:
        return list(self.state_.voided)

    # ------------------------------------------------------------------ the shell

    def _view(self) -> UseCaseView:
        return presentation.view(self.run_)

    def view(self) -> UseCaseView:
        """The state as the API shows it (kept for tests that drive the class directly)."""
        return self._view()

    def _checked(self, command: CommandName, cmd: Any) -> None:
        """policy.check_command for this run, plus the seat check of an approval."""
        gate = getattr(cmd, "gate", None) if command == CommandName.DECIDE else None
        rule = policy.gate_rule(self.run_.policy, gate) if gate is not None else None
        policy.check_command(
            command,
            self._view(),
            cmd,
            self.run_.inp.roster,
            rule=rule,
            change_raised_by=self.run_.raised_by,
            pinned=self.run_.policy,
            deputies=self.run_.deputies_at(workflow.now()),
            reported=((i.reported_by, i.at) for i in self.state_.incidents),
            now=workflow.now(),
            open_alerts=self.state_.alerts,
        )
        if command == CommandName.DECIDE:
            gates.check_counts(self.run_, cmd)

    def _authenticate(self, signed_as: str, cmd: Any) -> None:
        """The command carries a front door's credential for exactly this run and command
        (and, for an Update, exactly this update id)."""
        if self.unauthenticated is not None:
            raise policy.PolicyViolation(Refusal.RUN_CLOSED, "the run was refused at its start")
        credential = getattr(cmd, "credential", None)
        try:
            credentials.keyring().verify(
                self.run_.workflow_id, signed_as, cmd, credential, now=workflow.now()
            )
        except credentials.Unauthenticated as exc:
            raise policy.PolicyViolation(Refusal.UNAUTHENTICATED, str(exc)) from None
        update = workflow.current_update_info()
        if update is not None and credential is not None and credential.scope != update.id:
            raise policy.PolicyViolation(
                Refusal.UNAUTHENTICATED, "the credential was issued for another command"
            )

    def _check(self, command: CommandName, cmd: Any) -> None:
        try:
            self._authenticate(command.value, cmd)
            self._checked(command, cmd)
        except policy.PolicyViolation as exc:
            raise _refuse(exc) from None

    def _apply(self, change: Callable[[Run, Any, Any], None], cmd: Any) -> UseCaseView:
        change(self.run_, cmd, workflow.now())
        self.ship.publish()
        return self._view()


__all__ = ["UseCaseRelease"]
