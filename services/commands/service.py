"""The one command layer: every front door (REST, Slack, the console) changes a run through here.

Each method builds the workflow's command model, pre-checks authorization with
``workflows.policy.check_actor`` from the run's pinned people (a fast "not eligible" before any
worker is woken), binds the caller's idempotency key to the request (a key reused with another
request is refused, nothing sent), and sends the Update whose id derives from that key. The
workflow's validator runs the same check and then the state check, and decides; its refusals
come back as ``CommandRefused`` carrying the ``Refusal``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from pydantic import BaseModel

from services import observability
from services.commands.errors import (
    CommandError,
    CommandRefused,
    EvidenceChangedSince,
    IdempotencyKeyReused,
    PreconditionRequired,
    ReplayUnresolved,
    RunNotFound,
)
from services.commands.evidence import (
    bound_digests,
    etag_matches,
    evidence_etag,
    evidence_fingerprint,
)
from services.commands.gateway import RunFacts, UseCaseGateway
from services.commands.idempotency import IdempotencyKeys
from services.commands.read_model import ReadModel
from services.commands.start import PinsCatalog, plan_start
from services.commands.storable import refuse_unstorable
from services.hook_targets import NO_HOOKS, HookAllowList
from workflows import policy
from workflows.ids import change_workflow_id, is_change_id, use_case_run_id
from workflows.model import (
    AddEvidence,
    BundleArtifact,
    Cancel,
    ChangeSummary,
    Channel,
    CommandName,
    CompleteStage,
    DecideWaiver,
    Decision,
    DeputiesIn,
    Evidence,
    Gate,
    GateDecision,
    HistoryEvent,
    Materiality,
    OverrideGate,
    RaiseChange,
    Refusal,
    ReopenGate,
    ReportIncident,
    ReportRuntime,
    RequestWaiver,
    ResolveIncident,
    Resume,
    Retire,
    RiskTier,
    Role,
    SetDeputies,
    Severity,
    Stage,
    Suspend,
    UseCaseCreate,
    UseCaseView,
    Waiver,
    WaiverRequirement,
    WaiverVerdict,
)


@dataclass(frozen=True)
class Sender:
    """Who sends a command, through which door, with which idempotency key (if any), and the
    digest of the request it came with (``services.commands.idempotency.request_sha256``):
    a key is bound to the first request it was sent with."""

    person_id: str
    channel: Channel
    idempotency_key: str | None = None
    request_sha256: str | None = None

    def update_id(self, command: CommandName) -> str:
        """The Update's id: the key scoped to (caller, command), so another caller's key, or
        the same key on another verb, never returns or suppresses this caller's result."""
        if self.idempotency_key is None:
            return str(uuid.uuid4())
        return f"{command.value}:{self.person_id}:{self.idempotency_key}"


@dataclass(frozen=True)
class RaisedChange:
    """A change request the caller raised: its id and its own run's state."""

    change_id: str
    view: UseCaseView


def workflow_id(use_case_id: str, change_id: str | None = None) -> str:
    """The run a path names: a use case (id or key), or one of its change requests.

    ``RunNotFound`` for a ``use_case_id`` that names no use case: a change request's run id
    is not a use case's, so it reaches a change only by its own path."""
    wid = use_case_run_id(use_case_id)
    if wid is None:
        raise RunNotFound(f"no use case '{use_case_id}'")
    if change_id is None:
        return wid
    if not is_change_id(change_id):
        raise RunNotFound(f"no change '{change_id}'")
    return change_workflow_id(wid, change_id)


def raised_by_update(parent: UseCaseView, update_id: str, actor: str) -> ChangeSummary | None:
    """The change a raise_change Update created, found by the Update's id the workflow records
    on it; for a workflow that records none, the caller's newest change."""
    for change in parent.changes:
        if change.update_id == update_id:
            return change
    unmarked = [c for c in parent.changes if c.update_id is None and c.raised_by == actor]
    return unmarked[-1] if unmarked else None


class CommandService:
    """One method per command, plus the reads the front doors share."""

    def __init__(
        self,
        gateway: UseCaseGateway,
        loaded_policy: policy.LoadedPolicy,
        directory: policy.Directory,
        *,
        allowed_hooks: HookAllowList = NO_HOOKS,
        idempotency_keys: IdempotencyKeys | None = None,
        catalog: PinsCatalog | None = None,
        read_model: ReadModel | None = None,
    ) -> None:
        self.gateway = gateway
        self.policy = loaded_policy
        self.directory = directory
        self.allowed_hooks = allowed_hooks  # RELEASEGATE_HOOK_ALLOWED_HOSTS
        # None: keys are not bound to requests (Temporal's Update id dedup alone)
        self.idempotency_keys = idempotency_keys
        # the control catalog every start pins (None: runs start without one)
        self.catalog = catalog
        # where a command's answer is shown at once (read-your-writes; None: only the
        # workflow's own sync updates the read model)
        self.read_model = read_model

    async def _reflected(self, view: UseCaseView) -> UseCaseView:
        """``view``, a command's answer, after the read model shows it: the caller's next
        list or inbox read reflects the command."""
        if self.read_model is not None:
            await self.read_model.reflect(view)
        return view

    # ------------------------------------------------------------------ need-to-know

    def may_read(
        self, roster: Mapping[Role, list[str]] | Mapping[str, list[str]], person: policy.Person
    ) -> bool:
        """Whether ``person`` may read a run of ``roster`` (the memo's, or the store's copy):
        one of its people, or a member of a policy reader group (``policy.may_read``)."""
        # only who is on the roster counts, never under which role, so str keys do as well
        pinned = cast(policy.Roster, roster)
        return policy.may_read(pinned, person.id, person.groups, self.policy.document.readers)

    def reads_every_run(self, person: policy.Person) -> bool:
        """A member of a reader group: every run is visible, whoever its people are."""
        return self.may_read({}, person)

    async def readable(self, wid: str, person: policy.Person) -> RunFacts:
        """The run's pinned facts when ``person`` may read it. A run they may not read is
        ``RunNotFound`` with the very words of an unknown one, so nothing tells them apart."""
        facts = await self.gateway.facts(wid)
        if not self.may_read(facts.people, person):
            facts = await self.gateway.facts(wid, fresh=True)  # a deputy named since
            if not self.may_read(facts.people, person):
                raise RunNotFound(f"no use case '{wid}'")
        return facts

    # ------------------------------------------------------------------ reads

    async def state(self, wid: str) -> UseCaseView:
        return await self.gateway.state(wid)

    async def history(self, wid: str) -> list[HistoryEvent]:
        return await self.gateway.history(wid)

    # ------------------------------------------------------------------ authorization

    async def authorize(
        self, wid: str, command: CommandName, person_id: str, *, gate: Gate | None = None
    ) -> None:
        """``CommandRefused(NOT_ELIGIBLE)`` when ``person_id`` may never send ``command`` to
        this run, judged from the people it pinned at start. The workflow judges again."""
        facts = await self.gateway.facts(wid)
        if not facts.roster:
            return  # a run whose memo pinned no roster: leave it to the workflow
        rule = None
        if command == CommandName.DECIDE:
            if gate is None:
                raise ValueError("a decision names its gate")
            if facts.policy_sha256 != self.policy.sha256 or not facts.tier:
                return  # this run pinned another policy version: leave it to the workflow
            rule = policy.gate_rule(self.policy.pin(RiskTier(facts.tier)), gate)
        try:
            self._check_actor(facts, command, person_id, rule)
        except policy.PolicyViolation as exc:
            if command != CommandName.DECIDE:
                raise CommandRefused(exc.refusal, exc.detail) from None
        else:
            return
        # Deputies change while a run lives and the cached facts may predate the change: a
        # refused decider is judged once more on the run's current memo before the answer.
        facts = await self.gateway.facts(wid, fresh=True)
        try:
            self._check_actor(facts, command, person_id, rule)
        except policy.PolicyViolation as exc:
            raise CommandRefused(exc.refusal, exc.detail) from None

    @staticmethod
    def _check_actor(
        facts: RunFacts, command: CommandName, person_id: str, rule: policy.GateRule | None
    ) -> None:
        policy.check_actor(
            command,
            facts.roster,
            person_id,
            rule=rule,
            change_raised_by=facts.change_raised_by,
            deputies=facts.deputies,
        )

    # ------------------------------------------------------------------ idempotency

    async def bind_key(self, sender: Sender, command: CommandName) -> None:
        """Bind the sender's idempotency key, scoped to (command, caller), to this request
        before anything is sent: ``IdempotencyKeyReused`` when it was bound to another one.
        The same request goes again, and Temporal answers its Update id with the first
        outcome. Race-safe: of concurrent requests with one key, exactly one digest binds."""
        if (
            self.idempotency_keys is None
            or sender.idempotency_key is None
            or sender.request_sha256 is None
        ):
            return
        bound = await self.idempotency_keys.bind(sender.update_id(command), sender.request_sha256)
        if bound != sender.request_sha256:
            raise _key_reused(command)

    async def _first_outcome(
        self, wid: str, sender: Sender, command: CommandName
    ) -> UseCaseView | None:
        """This very request's first answer, when it is a replay of one that was sent: its
        key is bound to the same request digest and the run remembers its Update."""
        if (
            self.idempotency_keys is None
            or sender.idempotency_key is None
            or sender.request_sha256 is None
        ):
            return None
        bound = await self.idempotency_keys.bound(sender.update_id(command))
        if bound is None:
            return None
        if bound != sender.request_sha256:
            raise _key_reused(command)
        return await self.gateway.outcome(wid, command, sender.update_id(command))

    async def _send(
        self,
        wid: str,
        sender: Sender,
        command: CommandName,
        cmd: BaseModel,
        *,
        gate: Gate | None = None,
        update_id: str | None = None,
    ) -> UseCaseView:
        await self.authorize(wid, command, sender.person_id, gate=gate)
        refuse_unstorable(cmd)
        await self.bind_key(sender, command)
        return await self._reflected(
            await self.gateway.execute(
                wid, command, cmd, update_id=update_id or sender.update_id(command)
            )
        )

    # ------------------------------------------------------------------ commands

    async def start(self, body: UseCaseCreate, sender: Sender) -> tuple[UseCaseView, bool]:
        """Start a run; the sender becomes its delivery lead. Returns (state, created)."""
        plan = plan_start(
            body,
            sender.person_id,
            self.policy,
            self.directory,
            allowed_hooks=self.allowed_hooks,
            catalog=self.catalog,
        )
        view, created = await self.gateway.start(plan)
        return await self._reflected(view), created

    async def complete_stage(
        self,
        wid: str,
        sender: Sender,
        stage: Stage,
        *,
        evidence: Sequence[Evidence] = (),
        comment: str = "",
    ) -> UseCaseView:
        cmd = CompleteStage(
            actor=sender.person_id,
            stage=stage,
            evidence=list(evidence),
            comment=comment,
            channel=sender.channel,
        )
        return await self._send(wid, sender, CommandName.COMPLETE_STAGE, cmd)

    async def add_evidence(
        self, wid: str, sender: Sender, evidence: Sequence[Evidence], *, comment: str = ""
    ) -> UseCaseView:
        cmd = AddEvidence(
            actor=sender.person_id, evidence=list(evidence), comment=comment, channel=sender.channel
        )
        return await self._send(wid, sender, CommandName.ADD_EVIDENCE, cmd)

    async def decide(
        self,
        wid: str,
        sender: Sender,
        gate: Gate,
        decision: Decision,
        *,
        comment: str = "",
        evidence_digests: Sequence[str] | None = None,
    ) -> UseCaseView:
        cmd = GateDecision(
            actor=sender.person_id,
            gate=gate,
            decision=decision,
            comment=comment,
            evidence_digests=None if evidence_digests is None else list(evidence_digests),
            channel=sender.channel,
        )
        try:
            view = await self._send(wid, sender, CommandName.DECIDE, cmd, gate=gate)
        except CommandError as exc:
            observability.record_refused_decision(cmd, exc.code)
            raise
        observability.record_accepted_decision(cmd, view)
        return view

    async def decide_as_seen(
        self,
        wid: str,
        sender: Sender,
        gate: Gate,
        decision: Decision,
        *,
        comment: str = "",
        evidence_digests: Sequence[str] | None = None,
        if_match: str | None = None,
    ) -> UseCaseView:
        """A decision whose approval names the evidence its approver saw: the digests, or the
        ``ETag`` of the state they reviewed (``If-Match``, resolved here to the digests it
        stands for). An approval naming neither is ``PreconditionRequired``; an ETag that is
        not the current evidence set's is ``EvidenceChangedSince`` (unless this very request
        was answered before: then its first answer). Both carry the current set; nothing is
        sent. The workflow compares the digests with the gate's again when it decides."""
        # "*" (any state at all) names no evidence
        etag_seen = None if if_match is None or if_match.strip() in ("", "*") else if_match
        if decision == Decision.APPROVE and (etag_seen is not None or evidence_digests is None):
            # eligibility first: the current evidence is told only to who may decide the gate
            await self.authorize(wid, CommandName.DECIDE, sender.person_id, gate=gate)
            current = bound_digests(await self.gateway.state(wid))
            etag = evidence_etag(current)
            if etag_seen is None:
                raise PreconditionRequired(
                    "an approval names the evidence its approver saw: send evidence_digests, "
                    "or If-Match with the ETag of the state you reviewed",
                    evidence_digests=current,
                    etag=etag,
                )
            if not etag_matches(etag_seen, etag):
                first = await self._first_outcome(wid, sender, CommandName.DECIDE)
                if first is not None:
                    return first
                raise EvidenceChangedSince(
                    "the evidence changed since the state you reviewed (If-Match); review the "
                    "current evidence and approve again",
                    evidence_digests=current,
                    etag=etag,
                )
            if evidence_digests is None:
                evidence_digests = current
        return await self.decide(
            wid, sender, gate, decision, comment=comment, evidence_digests=evidence_digests
        )

    async def override_gate(
        self, wid: str, sender: Sender, gate: Gate, *, justification: str
    ) -> UseCaseView:
        """Break-glass: pass a stalled ``gate`` now; the run opens its retrospective review."""
        cmd = OverrideGate(
            actor=sender.person_id, gate=gate, justification=justification, channel=sender.channel
        )
        return await self._send(wid, sender, CommandName.OVERRIDE_GATE, cmd)

    async def reopen_gate(
        self, wid: str, sender: Sender, gate: Gate, *, comment: str = ""
    ) -> UseCaseView:
        """Reopen ``gate`` after it expired; the workflow refuses when it is not the one."""
        cmd = ReopenGate(actor=sender.person_id, gate=gate, comment=comment, channel=sender.channel)
        return await self._send(wid, sender, CommandName.REOPEN_GATE, cmd)

    async def cancel(self, wid: str, sender: Sender, *, reason: str = "") -> UseCaseView:
        cmd = Cancel(actor=sender.person_id, reason=reason, channel=sender.channel)
        return await self._send(wid, sender, CommandName.CANCEL, cmd)

    async def report_incident(
        self, wid: str, sender: Sender, severity: Severity, summary: str
    ) -> UseCaseView:
        cmd = ReportIncident(
            actor=sender.person_id, severity=severity, summary=summary, channel=sender.channel
        )
        return await self._send(wid, sender, CommandName.REPORT_INCIDENT, cmd)

    async def report_alert(
        self,
        wid: str,
        sender: Sender,
        severity: Severity,
        summary: str,
        *,
        fingerprint: str,
        labels: Mapping[str, str],
        update_id: str,
    ) -> UseCaseView:
        """A monitoring source's firing alert: one incident per fingerprint until it resolves
        (the run answers a repeat with the incident it opened)."""
        cmd = ReportIncident(
            actor=sender.person_id,
            severity=severity,
            summary=summary,
            channel=sender.channel,
            fingerprint=fingerprint,
            labels=dict(labels),
        )
        return await self._send(wid, sender, CommandName.REPORT_INCIDENT, cmd, update_id=update_id)

    async def resolve_alert(
        self, wid: str, sender: Sender, fingerprint: str, *, update_id: str
    ) -> UseCaseView:
        """A monitoring source's alert resolved: its open incident records when."""
        cmd = ResolveIncident(
            actor=sender.person_id, fingerprint=fingerprint, channel=sender.channel
        )
        return await self._send(wid, sender, CommandName.RESOLVE_INCIDENT, cmd, update_id=update_id)

    async def report_runtime(
        self, wid: str, sender: Sender, bundle: Sequence[BundleArtifact]
    ) -> UseCaseView:
        """The bundle that is running; one other than the approved opens an incident."""
        cmd = ReportRuntime(actor=sender.person_id, bundle=list(bundle), channel=sender.channel)
        return await self._send(wid, sender, CommandName.REPORT_RUNTIME, cmd)

    async def suspend(self, wid: str, sender: Sender, reason: str) -> UseCaseView:
        cmd = Suspend(actor=sender.person_id, reason=reason, channel=sender.channel)
        return await self._send(wid, sender, CommandName.SUSPEND, cmd)

    async def resume(self, wid: str, sender: Sender, *, reason: str = "") -> UseCaseView:
        cmd = Resume(actor=sender.person_id, reason=reason, channel=sender.channel)
        return await self._send(wid, sender, CommandName.RESUME, cmd)

    async def raise_change(
        self,
        wid: str,
        sender: Sender,
        summary: str,
        materiality: Materiality,
        *,
        evidence: Sequence[Evidence] = (),
        bundle: Sequence[BundleArtifact] | None = None,
    ) -> RaisedChange:
        """Raise a change request (with the bundle it makes live, if it changes it); returns
        its id and its own run's state."""
        cmd = RaiseChange(
            actor=sender.person_id,
            summary=summary,
            materiality=materiality,
            evidence=list(evidence),
            channel=sender.channel,
            bundle=list(bundle) if bundle is not None else None,
        )
        update_id = sender.update_id(CommandName.RAISE_CHANGE)
        parent = await self._send(wid, sender, CommandName.RAISE_CHANGE, cmd, update_id=update_id)
        change = raised_by_update(parent, update_id, sender.person_id)
        if change is None:
            raise ReplayUnresolved(
                "this Idempotency-Key already answered a request whose change cannot be found; "
                "use a new key"
            )
        change_view = await self._reflected(await self.gateway.state(change.workflow_id))
        return RaisedChange(change.change_id, change_view)

    async def retire(self, wid: str, sender: Sender, *, reason: str = "") -> UseCaseView:
        cmd = Retire(actor=sender.person_id, reason=reason, channel=sender.channel)
        return await self._send(wid, sender, CommandName.RETIRE, cmd)

    async def set_deputies(
        self, wid: str, sender: Sender, deputies: DeputiesIn, *, comment: str = ""
    ) -> UseCaseView:
        """The business owner names deputies for owner roles (groups resolved now)."""
        await self.authorize(wid, CommandName.SET_DEPUTIES, sender.person_id)
        try:
            resolved = policy.resolve_deputies(deputies, self.directory)
        except policy.PolicyViolation as exc:
            raise CommandRefused(exc.refusal, exc.detail) from None
        cmd = SetDeputies(
            actor=sender.person_id, deputies=resolved, comment=comment, channel=sender.channel
        )
        refuse_unstorable(cmd)
        await self.bind_key(sender, CommandName.SET_DEPUTIES)
        view = await self._reflected(
            await self.gateway.execute(
                wid,
                CommandName.SET_DEPUTIES,
                cmd,
                update_id=sender.update_id(CommandName.SET_DEPUTIES),
            )
        )
        await self.gateway.facts(wid, fresh=True)  # this process's pre-checks see them at once
        return view

    # ------------------------------------------------------------------ governed exceptions

    async def waivers(self, wid: str) -> list[Waiver]:
        """The use case's exceptions: pending and granted ones, and the latest closed."""
        return list((await self.gateway.state(wid)).waivers)

    async def waiver(self, wid: str, waiver_id: str) -> Waiver:
        """One exception of the use case; ``RunNotFound`` for one it does not hold."""
        found = _waiver_in(await self.gateway.state(wid), waiver_id)
        if found is None:
            raise RunNotFound(f"no exception '{waiver_id}' on this use case")
        return found

    async def request_waiver(
        self,
        wid: str,
        sender: Sender,
        requirement: WaiverRequirement,
        *,
        justification: str,
        expires_at: datetime,
    ) -> Waiver:
        """Ask for an exception to ``requirement`` until ``expires_at``; returns it, pending."""
        cmd = RequestWaiver(
            actor=sender.person_id,
            requirement=requirement,
            justification=justification,
            expires_at=expires_at,
            channel=sender.channel,
        )
        update_id = sender.update_id(CommandName.REQUEST_WAIVER)
        view = await self._send(wid, sender, CommandName.REQUEST_WAIVER, cmd, update_id=update_id)
        mine = next((w for w in view.waivers if w.update_id == update_id), None)
        if mine is None:
            raise ReplayUnresolved(
                "this Idempotency-Key already answered a request whose exception cannot be "
                "found; use a new key"
            )
        return mine

    async def decide_waiver(
        self,
        wid: str,
        sender: Sender,
        waiver_id: str,
        decision: WaiverVerdict,
        *,
        comment: str = "",
    ) -> Waiver:
        """A grantor grants or refuses a pending exception; returns it after the decision.
        Not eligible (403) is answered before whether the run holds that exception (404)."""
        await self._authorize_grantor(wid, sender.person_id)
        if await self._first_outcome(wid, sender, CommandName.DECIDE_WAIVER) is None:
            await self.waiver(wid, waiver_id)  # RunNotFound for an exception it does not hold
        cmd = DecideWaiver(
            actor=sender.person_id,
            waiver_id=waiver_id,
            decision=decision,
            comment=comment,
            channel=sender.channel,
        )
        view = await self._send(wid, sender, CommandName.DECIDE_WAIVER, cmd)
        decided = _waiver_in(view, waiver_id)
        if decided is None:  # trimmed away by later exceptions closing (the ledger has it)
            raise RunNotFound(f"no exception '{waiver_id}' on this use case")
        return decided

    async def _authorize_grantor(self, wid: str, person_id: str) -> None:
        """``CommandRefused(NOT_ELIGIBLE)`` when ``person_id`` holds no grantor seat of the
        run's pinned policy (judged again on a fresh memo: deputies change)."""
        facts = await self.gateway.facts(wid)
        if not facts.roster or facts.policy_sha256 != self.policy.sha256 or not facts.tier:
            return  # another policy version: leave it to the workflow
        pinned = self.policy.pin(RiskTier(facts.tier))
        for fresh in (False, True):
            if fresh:
                facts = await self.gateway.facts(wid, fresh=True)
            try:
                policy.check_waiver_grantor(
                    pinned,
                    facts.roster,
                    person_id,
                    change_raised_by=facts.change_raised_by,
                    deputies=facts.deputies,
                )
            except policy.PolicyViolation as exc:
                if fresh:
                    raise CommandRefused(exc.refusal, exc.detail) from None
            else:
                return

    # ------------------------------------------------------------------ Slack cards

    async def approve_as_seen(
        self, wid: str, sender: Sender, gate: Gate, round_: int, fingerprint: str
    ) -> UseCaseView:
        """An approval from a card that showed ``gate`` in ``round_`` with evidence of
        ``fingerprint``: authorized first, then bound to the digests the card showed."""
        await self.authorize(wid, CommandName.DECIDE, sender.person_id, gate=gate)
        digests = await self.evidence_seen(wid, gate, round_, fingerprint)
        return await self.decide(wid, sender, gate, Decision.APPROVE, evidence_digests=digests)

    async def evidence_seen(
        self, wid: str, gate: Gate, round_: int, fingerprint: str
    ) -> list[str] | None:
        """The digests an approval binds to when its sender saw only their fingerprint.

        While ``gate`` is open in ``round_``: its current digests when they are what was seen,
        else ``EVIDENCE_CHANGED``; open in another round: ``GATE_NOT_OPEN``. When that gate is
        not open at all: None, and the decision goes as it is for the workflow to answer (a
        redelivered click gets its first answer back; anything else is refused).
        """
        view = await self.gateway.state(wid)
        open_gate = view.open_gate
        if view.closed or open_gate is None or open_gate.gate != gate:
            return None
        if open_gate.round != round_:
            raise CommandRefused(
                Refusal.GATE_NOT_OPEN,
                f"round {round_} of {gate.value} is over (round {open_gate.round} is open)",
            )
        if evidence_fingerprint(open_gate.evidence_digests) != fingerprint:
            raise CommandRefused(
                Refusal.EVIDENCE_CHANGED,
                "the evidence changed since it was reviewed; review the current evidence "
                "and approve again",
            )
        return list(open_gate.evidence_digests)


def _waiver_in(view: UseCaseView, waiver_id: str) -> Waiver | None:
    return next((w for w in view.waivers if w.id == waiver_id), None)


def _key_reused(command: CommandName) -> IdempotencyKeyReused:
    return IdempotencyKeyReused(
        f"this Idempotency-Key was already used for another {command.value} request (another "
        "body, path or If-Match); use a new key for a new request"
    )


__all__ = [
    "CommandService",
    "RaisedChange",
    "Sender",
    "raised_by_update",
    "workflow_id",
]
