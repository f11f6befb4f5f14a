"""Flow metrics of the release path, computed from ledger entries and registry rows.

Pure: no database, no clock, no files. The caller loads the entries (``services.api.routes.
metrics`` does, from the ledger), passes ``now`` and an SLA table built from the loaded policy,
and gets one ``FlowMetrics`` document. The definitions below are part of the API's contract;
``DEFINITIONS`` repeats them in every response so a report can print them.

Scope: use-case runs only. A change request's own run (its ``run_started`` names a ``change``)
has no scoping→live path and is left out. Durations are in hours.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from services.controls.coverage import ControlCoverage
from workflows.events import (
    EventBody,
    Extras,
    RunClosed,
    RunStarted,
    WaiverExpired,
    WaiverFact,
    extras_as,
    parse_payload,
)
from workflows.ids import key_of
from workflows.model import (
    GATE_STAGES,
    LIVE_POLICY_GATES,
    TERMINAL_STAGES,
    Decision,
    EventKind,
    Gate,
    GateOutcome,
    RiskTier,
    RunOutcome,
    Stage,
)
from workflows.policy import LoadedPolicy

# Ledger kinds the metrics read; the repository selects only these.
FLOW_KINDS: tuple[EventKind, ...] = (
    EventKind.RUN_STARTED,
    EventKind.STAGE_ENTERED,
    EventKind.GATE_OPENED,
    EventKind.DECISION,
    EventKind.GATE_PASSED,
    EventKind.GATE_EXPIRED,
    EventKind.GATE_ESCALATED,
    EventKind.SUSPENDED,
    EventKind.RUN_CLOSED,
    EventKind.WAIVER_REQUESTED,
    EventKind.WAIVER_GRANTED,
    EventKind.WAIVER_REFUSED,
    EventKind.WAIVER_EXPIRED,
)

# Stages whose time is not flow time: the live system and the terminal states.
NOT_FLOW_STAGES: frozenset[Stage] = frozenset(
    {Stage.LIVE, Stage.SUSPENDED, Stage.AWAITING_RESUME, *TERMINAL_STAGES}
)
STAGE_ORDER: tuple[str, ...] = tuple(s.value for s in Stage if s not in NOT_FLOW_STAGES)
GATE_ORDER: tuple[str, ...] = tuple(g.value for g in Gate)
# Gate visits that a decision ended: the only ones with a wait and an SLA verdict.
DECIDED: frozenset[GateOutcome] = frozenset(
    {GateOutcome.PASSED, GateOutcome.CHANGES_REQUESTED, GateOutcome.REJECTED}
)
# A gate visit's outcome is a ``GateOutcome`` once it ended; until then it is open.
VISIT_OPEN = "open"
# A run's outcome is its ``RunOutcome`` once it closed; until then in progress or live.
RUN_IN_PROGRESS = "in_progress"
RUN_LIVE = Stage.LIVE.value
RUN_CLOSED_WITHOUT_OUTCOME = "closed"  # an older or edited run_closed entry

DEFINITIONS: dict[str, str] = {
    "scope": "Use-case runs whose run_started entry lies in [since, until) and whose tier "
    "matches; change-request runs are excluded. Durations are hours.",
    "lead_time": "First stage_entered(scoping) to first stage_entered(live), for runs that "
    "reached live.",
    "stage_time": "One sample per completed stage visit: stage_entered to the next "
    "stage_entered (or run_closed). Visits still open are not sampled; live, suspended and "
    "terminal stages are not flow stages.",
    "gate_wait": "One sample per gate visit closed by a decision: the gate's stage_entered "
    "(gate_opened for live gates) to gate_passed, or to the request_changes/reject decision "
    "that closed it. Expired, cancelled and open visits are not sampled.",
    "percentiles": "Linear interpolation between closest ranks (numpy's default): "
    "p = v[floor(r)] + (v[ceil(r)] - v[floor(r)]) * (r - floor(r)), r = (n - 1) * q.",
    "rework_rounds": "Per run, the number of request_changes decisions on release gates (its "
    "final round minus one).",
    "rejection_rate": "Runs closed rejected / runs that got a governance outcome (reached live "
    "or were rejected). Cancelled and in-progress runs are not counted.",
    "expiry_rate": "Gate visits ended by gate_expired / gate visits that ended by a decision "
    "or by expiry.",
    "sla_breach_rate": "Decided gate visits closed after their due time / decided gate visits "
    "with a known due time. Due time = gate opened + sla_hours of that gate in the run's "
    "pinned policy, read from the policy file when its sha256 equals the pin in run_started. "
    "For runs pinned to another policy version, a gate_escalated entry in the visit (the "
    "workflow escalates exactly at the due time) marks the breach.",
    "decisions_per_approver": "Decision entries per actor (approve, request_changes, reject), "
    "refused attempts excluded.",
    "waivers": "Governed exceptions of the runs in scope, from their waiver_* entries: "
    "requested, granted (its seats filled), refused, expired (granted, then ended at its "
    "expiry), lapsed (reached its expiry before it was granted), in_force (granted and not yet "
    "expired); granted_by_kind counts grants per requirement kind (evidence, sla, "
    "periodic_review); grant_wait_hours is waiver_requested to waiver_granted.",
    "controls": "Live use cases (stage live or suspended, not closed) the caller may read, "
    "whatever their start, judged against the control catalog from their ledger: per framework, "
    "those at least one of its controls applies to, those with at least one gap under it, and "
    "the gap controls summed.",
}


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class FlowEntry:
    """The part of a ledger entry the metrics read."""

    workflow_id: str
    seq: int
    at: datetime
    kind: str
    actor: str
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class RegistryInfo:
    """The part of a registry row the metrics read (title, tier and the open gate's due time)."""

    workflow_id: str
    key: str
    title: str
    risk_tier: str
    stage: str
    closed: bool
    gate: str | None = None
    due_at: datetime | None = None


# (policy sha256, tier, gate) → SLA hours
SlaTable = Mapping[tuple[str, str, str], float]


def sla_table(*policies: LoadedPolicy) -> dict[tuple[str, str, str], float]:
    """The SLA of every gate of every tier of the given (already loaded) policies."""
    table: dict[tuple[str, str, str], float] = {}
    for loaded in policies:
        for tier, rules in loaded.document.tiers.items():
            for rule in [*rules.gates, *loaded.document.live.gates]:
                table[(loaded.sha256, tier.value, rule.gate.value)] = rule.sla_hours
    return table


# --------------------------------------------------------------------------- outputs


class Stats(BaseModel):
    count: int
    mean: float | None = None
    min: float | None = None
    p25: float | None = None
    p50: float | None = None
    p75: float | None = None
    p90: float | None = None
    max: float | None = None


class Rate(BaseModel):
    numerator: int
    denominator: int
    rate: float | None = None


class StageVisit(BaseModel):
    stage: str
    round: int
    entered_at: datetime
    left_at: datetime | None = None
    hours: float | None = None  # None while the visit is open


class GateVisit(BaseModel):
    gate: str
    round: int
    opened_at: datetime
    closed_at: datetime | None = None
    # passed | changes_requested | rejected | expired | cancelled | open
    outcome: str
    decided_by: str | None = None
    wait_hours: float | None = None  # decided visits only
    age_hours: float | None = None  # open visits: how long it has waited so far
    due_at: datetime | None = None
    breached: bool | None = None  # None when the due time is unknown or the visit is undecided
    sla_source: str | None = None  # policy | escalation | registry


class RunWaivers(BaseModel):
    """One run's governed exceptions, counted from its ledger."""

    requested: int = 0
    granted: int = 0
    refused: int = 0
    expired: int = 0
    lapsed: int = 0
    in_force: int = 0
    granted_by_kind: dict[str, int] = Field(default_factory=dict)
    grant_wait_hours: list[float] = Field(default_factory=list)


class WaiverFlow(BaseModel):
    """Governed exceptions over the runs in scope (``DEFINITIONS['waivers']``)."""

    requested: int = 0
    granted: int = 0
    refused: int = 0
    expired: int = 0
    lapsed: int = 0
    in_force: int = 0
    runs_with_exceptions: int = 0
    granted_by_kind: dict[str, int] = Field(default_factory=dict)
    grant_wait_hours: Stats = Field(default_factory=lambda: Stats(count=0))


class RunFlow(BaseModel):
    id: str
    key: str
    title: str
    tier: str
    started_at: datetime
    stage: str
    outcome: str  # in_progress | live | rejected | cancelled | retired
    reached_live: bool
    live_at: datetime | None = None
    lead_time_hours: float | None = None
    rework_rounds: int
    decisions: int
    policy_version: str | None = None
    stage_hours: dict[str, float] = Field(default_factory=dict)
    stages: list[StageVisit] = Field(default_factory=list)
    gates: list[GateVisit] = Field(default_factory=list)
    waivers: RunWaivers = Field(default_factory=RunWaivers)


class StageFlow(BaseModel):
    stage: str
    hours: Stats
    open: int


class GateFlow(BaseModel):
    gate: str
    visits: int
    passed: int
    changes_requested: int
    rejected: int
    expired: int
    cancelled: int
    open: int
    wait_hours: Stats
    sla_breach: Rate
    expiry: Rate


class ReworkFlow(BaseModel):
    total: int
    mean: float | None = None
    max: int = 0
    runs_with_rework: int = 0
    # rounds of rework → number of runs
    distribution: dict[str, int] = Field(default_factory=dict)


class TierFlow(BaseModel):
    tier: str
    runs: int
    reached_live: int
    rejected: int
    cancelled: int
    in_progress: int
    rejection: Rate
    rework_total: int
    rework_mean: float | None = None
    lead_time_hours: Stats


class ApproverFlow(BaseModel):
    actor: str
    approve: int = 0
    request_changes: int = 0
    reject: int = 0
    total: int = 0


class FlowRates(BaseModel):
    rejection: Rate
    expiry: Rate
    sla_breach: Rate


class FlowMetrics(BaseModel):
    generated_at: datetime
    since: datetime | None = None
    until: datetime | None = None
    tier: str | None = None
    runs: int
    reached_live: int
    rejected: int
    cancelled: int
    in_progress: int
    lead_time_hours: Stats
    stages: list[StageFlow]
    gates: list[GateFlow]
    rework: ReworkFlow
    rates: FlowRates
    by_tier: list[TierFlow]
    approvers: list[ApproverFlow]
    waivers: WaiverFlow = Field(default_factory=WaiverFlow)
    definitions: dict[str, str] = Field(default_factory=lambda: dict(DEFINITIONS))
    run_rows: list[RunFlow] | None = None
    # open control gaps of the live use cases, per framework (``services.controls``); filled by
    # the route from the catalog, None where no catalog is loaded
    controls: ControlCoverage | None = None


# --------------------------------------------------------------------------- arithmetic


def hours_between(start: datetime, end: datetime) -> float:
    # rounded so that float noise never shows up in a report or an equality check
    return round((end - start).total_seconds() / 3600.0, 6)


def human_hours(value: float | None) -> str:
    """A duration in hours for people: seconds, minutes, hours or days, whichever reads best."""
    if value is None:
        return "–"
    if value < 1 / 60:
        return f"{value * 3600:.0f} s"
    if value < 1:
        return f"{value * 60:.0f} min"
    if value < 48:
        return f"{value:.1f} h"
    return f"{value / 24:.1f} d"


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks on already sorted values."""
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q
    low, high = math.floor(rank), math.ceil(rank)
    value = ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
    return round(value, 6)


def summarize(values: Iterable[float]) -> Stats:
    ordered = sorted(values)
    if not ordered:
        return Stats(count=0)
    return Stats(
        count=len(ordered),
        mean=round(sum(ordered) / len(ordered), 6),
        min=ordered[0],
        p25=percentile(ordered, 0.25),
        p50=percentile(ordered, 0.50),
        p75=percentile(ordered, 0.75),
        p90=percentile(ordered, 0.90),
        max=ordered[-1],
    )


def rate(numerator: int, denominator: int) -> Rate:
    return Rate(
        numerator=numerator,
        denominator=denominator,
        rate=round(numerator / denominator, 6) if denominator else None,
    )


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --------------------------------------------------------------------------- one run


@dataclass
class _OpenGate:
    gate: Gate
    round: int
    opened_at: datetime
    escalated: bool = False


@dataclass
class _Step:
    """One ledger entry as the walk reads it: when, by whom, and its typed payload."""

    at: datetime
    actor: str
    body: EventBody
    extras: Extras


@dataclass
class _RunWalk:
    """A run's ledger replayed entry by entry: stage visits and gate visits as they close.

    Each ``on_*`` method handles one ledger kind (``_STEPS``); ``finish`` adds what is still
    open at ``now`` and sums the run up.
    """

    slas: SlaTable
    policy_sha: str
    tier: str
    stage_name: str
    stages: list[StageVisit] = field(default_factory=list)
    gates: list[GateVisit] = field(default_factory=list)
    current_stage: StageVisit | None = None
    open_gate: _OpenGate | None = None
    first_scoping: datetime | None = None
    live_at: datetime | None = None
    outcome: str = RUN_IN_PROGRESS
    rework: int = 0
    decisions: int = 0
    waivers: RunWaivers = field(default_factory=RunWaivers)
    # exception id -> (requested at, requirement kind)
    asked: dict[str, tuple[datetime, str]] = field(default_factory=dict)

    # ------------------------------------------------------------------ visits

    def leave_stage(self, at: datetime) -> None:
        visit, self.current_stage = self.current_stage, None
        if visit is not None:
            visit.left_at = at
            visit.hours = hours_between(visit.entered_at, at)
            self.stages.append(visit)

    def due_of(self, visit: _OpenGate) -> tuple[datetime | None, str | None]:
        sla = self.slas.get((self.policy_sha, self.tier, visit.gate.value))
        if sla is None:
            return None, None
        return visit.opened_at + timedelta(hours=sla), "policy"

    def is_open(self, gate: Gate | None) -> bool:
        return self.open_gate is not None and gate == self.open_gate.gate

    def close_gate(self, at: datetime, result: GateOutcome, by: str | None = None) -> None:
        visit, self.open_gate = self.open_gate, None
        if visit is None:
            return
        due_at, source = self.due_of(visit)
        decided = result in DECIDED
        breached: bool | None = None
        if decided:
            if due_at is not None:
                breached = at > due_at
            else:
                # another policy version was pinned: the workflow escalates exactly at the due
                # time, so its gate_escalated entry is the ledger's own record of the breach
                source = "escalation"
                breached = visit.escalated
        self.gates.append(
            GateVisit(
                gate=visit.gate.value,
                round=visit.round,
                opened_at=visit.opened_at,
                closed_at=at,
                outcome=result.value,
                decided_by=by,
                wait_hours=hours_between(visit.opened_at, at) if decided else None,
                due_at=due_at,
                breached=breached,
                sla_source=source,
            )
        )

    # ------------------------------------------------------------------ ledger kinds

    def on_stage_entered(self, step: _Step) -> None:
        # a stage the payload does not name (edited, or from an unknown version) ends the
        # current visits without starting one
        stage = step.body.stage if "stage" in step.body.model_fields_set else None
        self.stage_name = stage.value if stage is not None else ""
        self.leave_stage(step.at)
        if self.open_gate is not None and (
            stage is None or self.open_gate.gate.value != stage.value
        ):
            self.close_gate(step.at, GateOutcome.CANCELLED)  # defensive: left without a verdict
        if stage is None:
            return
        if stage is Stage.SCOPING and self.first_scoping is None:
            self.first_scoping = step.at
        if stage is Stage.LIVE:
            self.live_at = self.live_at or step.at
        if stage not in NOT_FLOW_STAGES:
            self.current_stage = StageVisit(
                stage=stage.value, round=step.body.round, entered_at=step.at
            )
        if stage in GATE_STAGES:
            self.open_gate = _OpenGate(Gate(stage.value), step.body.round, step.at)

    def on_gate_opened(self, step: _Step) -> None:
        if step.body.gate is not None:
            self.open_gate = _OpenGate(step.body.gate, step.body.round, step.at)

    def on_gate_escalated(self, step: _Step) -> None:
        if self.open_gate is not None and self.is_open(step.body.gate):
            self.open_gate.escalated = True

    def on_decision(self, step: _Step) -> None:
        self.decisions += 1
        verdict = step.body.decision
        if verdict is Decision.REQUEST_CHANGES and step.body.gate not in LIVE_POLICY_GATES:
            self.rework += 1
        if not self.is_open(step.body.gate):
            return
        if verdict is Decision.REQUEST_CHANGES:
            self.close_gate(step.at, GateOutcome.CHANGES_REQUESTED, step.actor)
        elif verdict is Decision.REJECT:
            self.close_gate(step.at, GateOutcome.REJECTED, step.actor)

    def on_gate_passed(self, step: _Step) -> None:
        if self.is_open(step.body.gate):
            self.close_gate(step.at, GateOutcome.PASSED, step.actor)

    def on_gate_expired(self, step: _Step) -> None:
        if self.is_open(step.body.gate):
            self.close_gate(step.at, GateOutcome.EXPIRED)

    def on_suspended(self, step: _Step) -> None:
        self.close_gate(step.at, GateOutcome.CANCELLED)

    def on_run_closed(self, step: _Step) -> None:
        self.close_gate(step.at, GateOutcome.CANCELLED)
        self.leave_stage(step.at)
        outcome = extras_as(RunClosed, step.extras).outcome
        self.outcome = outcome.value if outcome is not None else RUN_CLOSED_WITHOUT_OUTCOME
        if "stage" in step.body.model_fields_set:
            self.stage_name = step.body.stage.value

    def on_waiver(self, step: _Step, kind: str) -> None:
        fact = extras_as(WaiverFact, step.extras)
        counts = self.waivers
        if kind == EventKind.WAIVER_REQUESTED:
            what = fact.requirement.kind.value if fact.requirement else ""
            self.asked[fact.waiver] = (step.at, what)
            counts.requested += 1
            return
        asked = self.asked.get(fact.waiver)
        if asked is None:
            return  # an entry for an exception this run never asked for
        if kind == EventKind.WAIVER_GRANTED:
            counts.granted += 1
            counts.in_force += 1
            counts.granted_by_kind[asked[1]] = counts.granted_by_kind.get(asked[1], 0) + 1
            counts.grant_wait_hours.append(hours_between(asked[0], step.at))
        elif kind == EventKind.WAIVER_REFUSED:
            counts.refused += 1
        elif kind == EventKind.WAIVER_EXPIRED:
            if extras_as(WaiverExpired, step.extras).was_granted:
                counts.expired += 1
                counts.in_force -= 1
            else:
                counts.lapsed += 1

    # ------------------------------------------------------------------ the end

    def finish(self, now: datetime, registry: RegistryInfo | None) -> None:
        """Record the visits still open at ``now``: a gate's age, a stage without hours."""
        if self.open_gate is not None:
            self.gates.append(self._still_open(self.open_gate, now, registry))
        if self.current_stage is not None:
            self.stages.append(self.current_stage)  # still open: no hours
        if self.outcome == RUN_IN_PROGRESS and self.live_at is not None:
            self.outcome = RUN_LIVE

    def _still_open(
        self, visit: _OpenGate, now: datetime, registry: RegistryInfo | None
    ) -> GateVisit:
        due_at, source = self.due_of(visit)
        if due_at is None and registry and registry.gate == visit.gate and registry.due_at:
            due_at, source = as_utc(registry.due_at), "registry"
        return GateVisit(
            gate=visit.gate.value,
            round=visit.round,
            opened_at=visit.opened_at,
            outcome=VISIT_OPEN,
            age_hours=hours_between(visit.opened_at, now),
            due_at=due_at,
            sla_source=source,
        )

    def stage_hours(self) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for visit in self.stages:
            if visit.hours is not None:
                totals[visit.stage] = round(totals[visit.stage] + visit.hours, 6)
        return dict(totals)


# keyed by the stored kind (an ``EventKind`` value); kinds not listed change nothing here
_STEPS: dict[str, Callable[[_RunWalk, _Step], None]] = {
    EventKind.STAGE_ENTERED: _RunWalk.on_stage_entered,
    EventKind.GATE_OPENED: _RunWalk.on_gate_opened,
    EventKind.GATE_ESCALATED: _RunWalk.on_gate_escalated,
    EventKind.DECISION: _RunWalk.on_decision,
    EventKind.GATE_PASSED: _RunWalk.on_gate_passed,
    EventKind.GATE_EXPIRED: _RunWalk.on_gate_expired,
    EventKind.SUSPENDED: _RunWalk.on_suspended,
    EventKind.RUN_CLOSED: _RunWalk.on_run_closed,
}


_WAIVER_KINDS = frozenset(
    {
        EventKind.WAIVER_REQUESTED,
        EventKind.WAIVER_GRANTED,
        EventKind.WAIVER_REFUSED,
        EventKind.WAIVER_EXPIRED,
    }
)


def _step(entry: FlowEntry) -> _Step:
    body, extras = parse_payload(entry.kind, entry.payload)
    return _Step(at=as_utc(entry.at), actor=entry.actor, body=body, extras=extras)


def run_flow(
    entries: Sequence[FlowEntry],
    registry: RegistryInfo | None,
    *,
    now: datetime,
    slas: SlaTable,
) -> RunFlow | None:
    """One run's flow from its entries (any order; sorted by seq here). None when the entries
    hold no run_started (nothing to anchor the run) or belong to a change request."""
    rows = sorted(entries, key=lambda e: e.seq)
    started = next((e for e in rows if e.kind == EventKind.RUN_STARTED), None)
    if started is None:
        return None
    start = extras_as(RunStarted, parse_payload(EventKind.RUN_STARTED, started.payload)[1])
    if "change" in start.model_fields_set:
        return None
    tier = start.risk_tier.value if start.risk_tier else (registry.risk_tier if registry else "")
    walk = _RunWalk(
        slas=slas,
        policy_sha=start.policy.sha256 if start.policy else "",
        tier=tier,
        stage_name=registry.stage if registry else Stage.SCOPING.value,
    )
    for entry in rows:
        if (handle := _STEPS.get(entry.kind)) is not None:
            handle(walk, _step(entry))
        elif entry.kind in _WAIVER_KINDS:
            walk.on_waiver(_step(entry), entry.kind)
    walk.finish(as_utc(now), registry)
    return _run_row(started, start, registry, walk)


def _run_row(
    started: FlowEntry, start: RunStarted, registry: RegistryInfo | None, walk: _RunWalk
) -> RunFlow:
    key = registry.key if registry else key_of(started.workflow_id)
    begin = walk.first_scoping or as_utc(started.at)
    return RunFlow(
        id=started.workflow_id,
        key=key,
        title=start.title or (registry.title if registry else key),
        tier=walk.tier,
        started_at=as_utc(started.at),
        stage=walk.stage_name,
        outcome=walk.outcome,
        reached_live=walk.live_at is not None,
        live_at=walk.live_at,
        lead_time_hours=hours_between(begin, walk.live_at) if walk.live_at else None,
        rework_rounds=walk.rework,
        decisions=walk.decisions,
        policy_version=start.policy.version if start.policy else None,
        stage_hours=walk.stage_hours(),
        stages=walk.stages,
        gates=walk.gates,
        waivers=walk.waivers,
    )


# --------------------------------------------------------------------------- all runs


def _in_scope(
    run: RunFlow, since: datetime | None, until: datetime | None, tier: str | None
) -> bool:
    if since is not None and run.started_at < as_utc(since):
        return False
    if until is not None and run.started_at >= as_utc(until):
        return False
    return tier is None or run.tier == tier


def _ordered(names: Iterable[str], order: Sequence[str]) -> list[str]:
    rank = {name: i for i, name in enumerate(order)}
    return sorted(set(names), key=lambda n: (rank.get(n, len(rank)), n))


def compute_flow(
    entries: Iterable[FlowEntry],
    registry: Iterable[RegistryInfo] = (),
    *,
    now: datetime,
    slas: SlaTable,
    since: datetime | None = None,
    until: datetime | None = None,
    tier: RiskTier | str | None = None,
    detail: bool = False,
) -> FlowMetrics:
    """Flow metrics over every run in ``entries`` that starts in [since, until) at ``tier``."""
    tier_value = tier.value if isinstance(tier, RiskTier) else tier
    by_run: dict[str, list[FlowEntry]] = defaultdict(list)
    for entry in entries:
        by_run[entry.workflow_id].append(entry)
    rows = {r.workflow_id: r for r in registry}
    runs: list[RunFlow] = []
    for workflow_id in sorted(by_run):
        run = run_flow(by_run[workflow_id], rows.get(workflow_id), now=now, slas=slas)
        if run is not None and _in_scope(run, since, until, tier_value):
            runs.append(run)
    runs.sort(key=lambda r: (r.started_at, r.id))

    stage_samples: dict[str, list[float]] = defaultdict(list)
    stage_open: Counter[str] = Counter()
    for run in runs:
        for visit in run.stages:
            if visit.hours is None:
                stage_open[visit.stage] += 1
            else:
                stage_samples[visit.stage].append(visit.hours)
    stages = [
        StageFlow(stage=name, hours=summarize(stage_samples[name]), open=stage_open[name])
        for name in _ordered([*stage_samples, *stage_open], STAGE_ORDER)
    ]

    visits_by_gate: dict[str, list[GateVisit]] = defaultdict(list)
    for run in runs:
        for gate_visit in run.gates:
            visits_by_gate[gate_visit.gate].append(gate_visit)
    gates = [
        _gate_flow(name, visits_by_gate[name]) for name in _ordered(visits_by_gate, GATE_ORDER)
    ]
    all_visits = [v for visits in visits_by_gate.values() for v in visits]

    outcomes = Counter(r.outcome for r in runs)
    reached_live = sum(r.reached_live for r in runs)
    rejected = outcomes[RunOutcome.REJECTED]
    rates = FlowRates(
        rejection=rate(rejected, reached_live + rejected),
        expiry=_expiry_rate(all_visits),
        sla_breach=_breach_rate(all_visits),
    )
    return FlowMetrics(
        generated_at=as_utc(now),
        since=as_utc(since) if since else None,
        until=as_utc(until) if until else None,
        tier=tier_value,
        runs=len(runs),
        reached_live=reached_live,
        rejected=rejected,
        cancelled=outcomes[RunOutcome.CANCELLED],
        in_progress=outcomes[RUN_IN_PROGRESS],
        lead_time_hours=summarize(r.lead_time_hours for r in runs if r.lead_time_hours is not None),
        stages=stages,
        gates=gates,
        rework=_rework(runs),
        rates=rates,
        by_tier=[
            _tier_flow(name, [r for r in runs if r.tier == name])
            for name in _ordered({r.tier for r in runs}, [t.value for t in RiskTier])
        ],
        approvers=_approvers(by_run, {r.id for r in runs}),
        waivers=_waiver_flow(runs),
        run_rows=runs if detail else None,
    )


def _waiver_flow(runs: Sequence[RunFlow]) -> WaiverFlow:
    out = WaiverFlow()
    waits: list[float] = []
    for run in runs:
        counts = run.waivers
        for name in ("requested", "granted", "refused", "expired", "lapsed", "in_force"):
            setattr(out, name, getattr(out, name) + getattr(counts, name))
        for kind, n in counts.granted_by_kind.items():
            out.granted_by_kind[kind] = out.granted_by_kind.get(kind, 0) + n
        waits += counts.grant_wait_hours
        out.runs_with_exceptions += 1 if counts.requested else 0
    out.grant_wait_hours = summarize(waits)
    return out


def _expiry_rate(visits: Sequence[GateVisit]) -> Rate:
    ended = [v for v in visits if v.outcome not in (VISIT_OPEN, GateOutcome.CANCELLED)]
    return rate(sum(v.outcome == GateOutcome.EXPIRED for v in ended), len(ended))


def _breach_rate(visits: Sequence[GateVisit]) -> Rate:
    known = [v for v in visits if v.breached is not None]
    return rate(sum(bool(v.breached) for v in known), len(known))


def _gate_flow(name: str, visits: Sequence[GateVisit]) -> GateFlow:
    counts = Counter(v.outcome for v in visits)
    return GateFlow(
        gate=name,
        visits=len(visits),
        passed=counts[GateOutcome.PASSED],
        changes_requested=counts[GateOutcome.CHANGES_REQUESTED],
        rejected=counts[GateOutcome.REJECTED],
        expired=counts[GateOutcome.EXPIRED],
        cancelled=counts[GateOutcome.CANCELLED],
        open=counts[VISIT_OPEN],
        wait_hours=summarize(v.wait_hours for v in visits if v.wait_hours is not None),
        sla_breach=_breach_rate(visits),
        expiry=_expiry_rate(visits),
    )


def _rework(runs: Sequence[RunFlow]) -> ReworkFlow:
    rounds = [r.rework_rounds for r in runs]
    distribution = Counter(rounds)
    return ReworkFlow(
        total=sum(rounds),
        mean=round(sum(rounds) / len(rounds), 6) if rounds else None,
        max=max(rounds, default=0),
        runs_with_rework=sum(1 for n in rounds if n > 0),
        distribution={str(k): distribution[k] for k in sorted(distribution)},
    )


def _tier_flow(name: str, runs: Sequence[RunFlow]) -> TierFlow:
    outcomes = Counter(r.outcome for r in runs)
    reached_live = sum(r.reached_live for r in runs)
    rejected = outcomes[RunOutcome.REJECTED]
    rework = [r.rework_rounds for r in runs]
    return TierFlow(
        tier=name,
        runs=len(runs),
        reached_live=reached_live,
        rejected=rejected,
        cancelled=outcomes[RunOutcome.CANCELLED],
        in_progress=outcomes[RUN_IN_PROGRESS],
        rejection=rate(rejected, reached_live + rejected),
        rework_total=sum(rework),
        rework_mean=round(sum(rework) / len(rework), 6) if rework else None,
        lead_time_hours=summarize(r.lead_time_hours for r in runs if r.lead_time_hours is not None),
    )


def _approvers(by_run: Mapping[str, Sequence[FlowEntry]], run_ids: set[str]) -> list[ApproverFlow]:
    table: dict[str, ApproverFlow] = {}
    for workflow_id in run_ids:
        for entry in by_run[workflow_id]:
            if entry.kind != EventKind.DECISION:
                continue
            verdict = parse_payload(entry.kind, entry.payload)[0].decision
            row = table.setdefault(entry.actor, ApproverFlow(actor=entry.actor))
            if verdict is not None:
                setattr(row, verdict.value, getattr(row, verdict.value) + 1)
            row.total += 1
    return sorted(table.values(), key=lambda a: (-a.total, a.actor))


__all__ = [
    "DEFINITIONS",
    "FLOW_KINDS",
    "RUN_IN_PROGRESS",
    "RUN_LIVE",
    "VISIT_OPEN",
    "FlowEntry",
    "FlowMetrics",
    "RegistryInfo",
    "RunFlow",
    "TierFlow",
    "WaiverFlow",
    "compute_flow",
    "run_flow",
    "sla_table",
    "summarize",
]
