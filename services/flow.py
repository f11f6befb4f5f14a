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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from workflows.model import Decision, Gate, RiskTier, Stage
from workflows.policy import LoadedPolicy

# Ledger kinds the metrics read; the repository selects only these.
FLOW_KINDS: tuple[str, ...] = (
    "run_started",
    "stage_entered",
    "gate_opened",
    "decision",
    "gate_passed",
    "gate_expired",
    "gate_escalated",
    "suspended",
    "run_closed",
)

GATE_NAMES = frozenset(g.value for g in Gate)
# Stages whose time is not flow time: the live system and the terminal states.
NOT_FLOW_STAGES = frozenset(
    s.value for s in (Stage.LIVE, Stage.SUSPENDED, Stage.REJECTED, Stage.CANCELLED, Stage.RETIRED)
)
STAGE_ORDER: tuple[str, ...] = tuple(s.value for s in Stage if s.value not in NOT_FLOW_STAGES)
LIVE_GATE_NAMES = frozenset(
    g.value for g in (Gate.CHANGE_APPROVAL, Gate.RESUME_APPROVAL, Gate.PERIODIC_REVIEW)
)
GATE_ORDER: tuple[str, ...] = tuple(g.value for g in Gate)
DECISION_KEYS: tuple[str, ...] = tuple(d.value for d in Decision)

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
    definitions: dict[str, str] = Field(default_factory=lambda: dict(DEFINITIONS))
    run_rows: list[RunFlow] | None = None


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
    gate: str
    round: int
    opened_at: datetime
    escalated: bool = False


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _round_of(payload: Mapping[str, Any]) -> int:
    value = payload.get("round")
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


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
    started = next((e for e in rows if e.kind == "run_started"), None)
    if started is None or "change" in started.payload:
        return None
    now = as_utc(now)
    tier = _str(started.payload.get("risk_tier")) or (registry.risk_tier if registry else "")
    pinned = started.payload.get("policy")
    pinned = pinned if isinstance(pinned, Mapping) else {}
    policy_sha = _str(pinned.get("sha256")) or ""
    key = registry.key if registry else started.workflow_id.removeprefix("usecase-")
    title = _str(started.payload.get("title")) or (registry.title if registry else key)

    stages: list[StageVisit] = []
    gates: list[GateVisit] = []
    current_stage: StageVisit | None = None
    open_gate: _OpenGate | None = None
    first_scoping: datetime | None = None
    live_at: datetime | None = None
    outcome = "in_progress"
    rework = 0
    decisions = 0
    stage_name = registry.stage if registry else "scoping"

    def leave_stage(at: datetime) -> None:
        nonlocal current_stage
        if current_stage is not None:
            current_stage.left_at = at
            current_stage.hours = hours_between(current_stage.entered_at, at)
            stages.append(current_stage)
            current_stage = None

    def due_of(visit: _OpenGate) -> tuple[datetime | None, str | None]:
        sla = slas.get((policy_sha, tier, visit.gate))
        if sla is None:
            return None, None
        return visit.opened_at + timedelta(hours=sla), "policy"

    def close_gate(at: datetime, result: str, by: str | None) -> None:
        nonlocal open_gate
        if open_gate is None:
            return
        visit = open_gate
        open_gate = None
        due_at, source = due_of(visit)
        decided = result in ("passed", "changes_requested", "rejected")
        breached: bool | None = None
        if decided:
            if due_at is not None:
                breached = at > due_at
            else:
                # another policy version was pinned: the workflow escalates exactly at the due
                # time, so its gate_escalated entry is the ledger's own record of the breach
                source = "escalation"
                breached = visit.escalated
        gates.append(
            GateVisit(
                gate=visit.gate,
                round=visit.round,
                opened_at=visit.opened_at,
                closed_at=at,
                outcome=result,
                decided_by=by,
                wait_hours=hours_between(visit.opened_at, at) if decided else None,
                due_at=due_at,
                breached=breached,
                sla_source=source,
            )
        )

    for entry in rows:
        at = as_utc(entry.at)
        payload = entry.payload
        gate = _str(payload.get("gate"))
        if entry.kind == "stage_entered":
            stage = _str(payload.get("stage")) or ""
            stage_name = stage
            leave_stage(at)
            if open_gate is not None and open_gate.gate != stage:
                close_gate(at, "cancelled", None)  # defensive: a gate left without a verdict
            if stage == Stage.SCOPING and first_scoping is None:
                first_scoping = at
            if stage == Stage.LIVE:
                live_at = live_at or at
            if stage not in NOT_FLOW_STAGES:
                current_stage = StageVisit(stage=stage, round=_round_of(payload), entered_at=at)
            if stage in GATE_NAMES:
                open_gate = _OpenGate(stage, _round_of(payload), at)
        elif entry.kind == "gate_opened" and gate:
            open_gate = _OpenGate(gate, _round_of(payload), at)
        elif entry.kind == "gate_escalated" and open_gate is not None and gate == open_gate.gate:
            open_gate.escalated = True
        elif entry.kind == "decision":
            decisions += 1
            verdict = _str(payload.get("decision"))
            if verdict == Decision.REQUEST_CHANGES and gate not in LIVE_GATE_NAMES:
                rework += 1
            if open_gate is not None and gate == open_gate.gate:
                if verdict == Decision.REQUEST_CHANGES:
                    close_gate(at, "changes_requested", entry.actor)
                elif verdict == Decision.REJECT:
                    close_gate(at, "rejected", entry.actor)
        elif entry.kind == "gate_passed" and open_gate is not None and gate == open_gate.gate:
            close_gate(at, "passed", entry.actor)
        elif entry.kind == "gate_expired" and open_gate is not None and gate == open_gate.gate:
            close_gate(at, "expired", None)
        elif entry.kind == "suspended":
            close_gate(at, "cancelled", None)
        elif entry.kind == "run_closed":
            close_gate(at, "cancelled", None)
            leave_stage(at)
            outcome = _str(payload.get("outcome")) or "closed"
            stage_name = _str(payload.get("stage")) or stage_name

    if open_gate is not None:
        due_at, source = due_of(open_gate)
        if due_at is None and registry and registry.gate == open_gate.gate and registry.due_at:
            due_at, source = as_utc(registry.due_at), "registry"
        gates.append(
            GateVisit(
                gate=open_gate.gate,
                round=open_gate.round,
                opened_at=open_gate.opened_at,
                outcome="open",
                age_hours=hours_between(open_gate.opened_at, now),
                due_at=due_at,
                sla_source=source,
            )
        )
    if current_stage is not None:
        stages.append(current_stage)  # still open: no hours
    if outcome == "in_progress" and live_at is not None:
        outcome = "live"
    start = first_scoping or as_utc(started.at)
    stage_hours: dict[str, float] = defaultdict(float)
    for visit in stages:
        if visit.hours is not None:
            stage_hours[visit.stage] = round(stage_hours[visit.stage] + visit.hours, 6)
    return RunFlow(
        id=started.workflow_id,
        key=key,
        title=title,
        tier=tier,
        started_at=as_utc(started.at),
        stage=stage_name,
        outcome=outcome,
        reached_live=live_at is not None,
        live_at=live_at,
        lead_time_hours=hours_between(start, live_at) if live_at else None,
        rework_rounds=rework,
        decisions=decisions,
        policy_version=_str(pinned.get("version")),
        stage_hours=dict(stage_hours),
        stages=stages,
        gates=gates,
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
    rejected = outcomes["rejected"]
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
        cancelled=outcomes["cancelled"],
        in_progress=outcomes["in_progress"],
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
        run_rows=runs if detail else None,
    )


def _expiry_rate(visits: Sequence[GateVisit]) -> Rate:
    ended = [v for v in visits if v.outcome not in ("open", "cancelled")]
    return rate(sum(v.outcome == "expired" for v in ended), len(ended))


def _breach_rate(visits: Sequence[GateVisit]) -> Rate:
    known = [v for v in visits if v.breached is not None]
    return rate(sum(bool(v.breached) for v in known), len(known))


def _gate_flow(name: str, visits: Sequence[GateVisit]) -> GateFlow:
    counts = Counter(v.outcome for v in visits)
    return GateFlow(
        gate=name,
        visits=len(visits),
        passed=counts["passed"],
        changes_requested=counts["changes_requested"],
        rejected=counts["rejected"],
        expired=counts["expired"],
        cancelled=counts["cancelled"],
        open=counts["open"],
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
    rework = [r.rework_rounds for r in runs]
    return TierFlow(
        tier=name,
        runs=len(runs),
        reached_live=reached_live,
        rejected=outcomes["rejected"],
        cancelled=outcomes["cancelled"],
        in_progress=outcomes["in_progress"],
        rejection=rate(outcomes["rejected"], reached_live + outcomes["rejected"]),
        rework_total=sum(rework),
        rework_mean=round(sum(rework) / len(rework), 6) if rework else None,
        lead_time_hours=summarize(r.lead_time_hours for r in runs if r.lead_time_hours is not None),
    )


def _approvers(by_run: Mapping[str, Sequence[FlowEntry]], run_ids: set[str]) -> list[ApproverFlow]:
    table: dict[str, ApproverFlow] = {}
    for workflow_id in run_ids:
        for entry in by_run[workflow_id]:
            if entry.kind != "decision":
                continue
            verdict = _str(entry.payload.get("decision"))
            row = table.setdefault(entry.actor, ApproverFlow(actor=entry.actor))
            if verdict in DECISION_KEYS:
                setattr(row, verdict, getattr(row, verdict) + 1)
            row.total += 1
    return sorted(table.values(), key=lambda a: (-a.total, a.actor))


__all__ = [
    "DEFINITIONS",
    "FLOW_KINDS",
    "FlowEntry",
    "FlowMetrics",
    "RegistryInfo",
    "RunFlow",
    "compute_flow",
    "run_flow",
    "sla_table",
    "summarize",
]
