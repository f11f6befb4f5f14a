"""Flow metrics on a fixture of runs with known timings, seeded straight into the ledger.

Every expected number below is worked out by hand from the timings in ``seed_runs``; the
SLAs are config/policy.yaml's (low/medium: risk_signoff 72h, ops_handoff and go_live 48h;
high: scope_approval 72h, risk_signoff 120h). Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.flow import FlowMetrics, compute_flow, sla_table
from services.settings import PROJECT_ROOT, Settings
from services.store.db import make_engine, make_sessionmaker, session_scope
from services.store.flow import FlowRepository
from services.store.ledger import LedgerRepository
from services.store.migrate import upgrade_head
from services.store.registry import RegistryRepository
from tests.harness import api_client
from tests.store.conftest import BACKENDS, fresh_database
from workflows.activities import LedgerBatch, LedgerRecord, RegistryRow
from workflows.model import Channel
from workflows.policy import load_policy

POLICY = load_policy(PROJECT_ROOT / "config" / "policy.yaml")
OLD_SHA = "ab" * 32  # a policy version the current file no longer is
T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 10, 11, 9, 0, tzinfo=UTC)


@dataclass
class Run:
    """Writes ledger records shaped like the workflow's, at hours after the run's start."""

    key: str
    tier: str
    start: datetime
    sha: str = POLICY.sha256
    change: bool = False
    stage: str = "scoping"
    round: int = 1
    records: list[LedgerRecord] = field(default_factory=list)

    @property
    def workflow_id(self) -> str:
        return f"usecase-{self.key}"

    def _add(self, kind: str, hours: float, actor: str = "system", **payload: Any) -> Run:
        self.records.append(
            LedgerRecord(
                workflow_id=self.workflow_id,
                use_case_key=self.key,
                event_id=len(self.records) + 1,
                at=self.start + timedelta(hours=hours),
                kind=kind,
                actor=actor,
                channel=Channel.SYSTEM if actor == "system" else Channel.API,
                payload={"stage": self.stage, "round": self.round, **payload},
                policy_version="2026.1" if self.sha == POLICY.sha256 else "2025.9",
            )
        )
        return self

    def started(self) -> Run:
        extra: dict[str, Any] = {"change": {"change_id": "change-1"}} if self.change else {}
        self._add(
            "run_started",
            0,
            "dana",
            title=f"Use case {self.key}",
            risk_tier=self.tier,
            policy={"version": "2026.1", "sha256": self.sha},
            **extra,
        )
        return self.enter(self.stage, 0)

    def enter(self, stage: str, hours: float) -> Run:
        self.stage = stage
        return self._add("stage_entered", hours)

    def decide(self, gate: str, actor: str, decision: str, hours: float) -> Run:
        return self._add("decision", hours, actor, gate=gate, decision=decision)

    def passed(self, gate: str, actor: str, hours: float, then: str) -> Run:
        self.decide(gate, actor, "approve", hours)
        # as the workflow records it: the approver who completed the quorum passes the gate
        self._add("gate_passed", hours, actor, gate=gate, approvers=[actor])
        return self.enter(then, hours)

    def rework(self, gate: str, actor: str, hours: float, back_to: str) -> Run:
        self.decide(gate, actor, "request_changes", hours)
        self.round += 1
        return self.enter(back_to, hours)

    def mark(self, kind: str, hours: float, **payload: Any) -> Run:
        return self._add(kind, hours, **payload)

    def close(self, outcome: str, hours: float, actor: str = "system") -> Run:
        self.stage = outcome
        return self._add("run_closed", hours, actor, outcome=outcome)


def seed_runs() -> list[Run]:
    day = timedelta(days=1)
    alpha = (  # low, straight to live; ops_handoff decided after its 48h SLA
        Run("alpha", "low", T0)
        .started()
        .enter("specification", 2)
        .enter("implementation", 6)
        .enter("validation", 16)
        .enter("risk_signoff", 20)
        .passed("risk_signoff", "rita", 30, then="ops_handoff")
        .passed("ops_handoff", "olga", 80, then="go_live")
        .passed("go_live", "bo", 82, then="live")
    )
    bravo = (  # low, one rework round; the second risk_signoff visit breaches its 72h SLA
        Run("bravo", "low", T0 + day)
        .started()
        .enter("specification", 1)
        .enter("implementation", 3)
        .enter("validation", 9)
        .enter("risk_signoff", 12)
        .rework("risk_signoff", "rita", 36, back_to="implementation")
        .enter("validation", 40)
        .enter("risk_signoff", 41)
        .mark("gate_escalated", 113, gate="risk_signoff")
        .passed("risk_signoff", "raj", 121, then="ops_handoff")
        .passed("ops_handoff", "olga", 125, then="go_live")
        .passed("go_live", "bo", 126, then="live")
    )
    charlie = (  # high, rejected at risk_signoff
        Run("charlie", "high", T0 + 2 * day)
        .started()
        .enter("scope_approval", 5)
        .decide("scope_approval", "bo", "approve", 6)
        .passed("scope_approval", "rita", 8, then="specification")
        .enter("implementation", 20)
        .enter("validation", 44)
        .enter("risk_signoff", 50)
        .decide("risk_signoff", "rita", "approve", 60)
        .decide("risk_signoff", "raj", "reject", 70)
        .close("rejected", 70, actor="raj")
    )
    delta = (  # medium, risk_signoff expired, reopened and still open at NOW
        Run("delta", "medium", T0 + 3 * day)
        .started()
        .enter("specification", 1)
        .enter("implementation", 2)
        .enter("validation", 3)
        .enter("risk_signoff", 4)
        .mark("gate_escalated", 76, gate="risk_signoff")
        .mark("gate_expired", 100, gate="risk_signoff")
        .enter("stalled", 100)
        .mark("gate_reopened", 110, gate="risk_signoff")
        .enter("risk_signoff", 110)
    )
    echo = (  # low, cancelled during scoping
        Run("echo", "low", T0 + 4 * day).started().mark("cancelled", 3).close("cancelled", 3)
    )
    hotel = (  # low, pinned to an older policy: breaches come from gate_escalated entries
        Run("hotel", "low", T0 + 4 * day + timedelta(hours=3), sha=OLD_SHA)
        .started()
        .enter("specification", 1)
        .enter("implementation", 2)
        .enter("validation", 3)
        .enter("risk_signoff", 4)
        .mark("gate_escalated", 76, gate="risk_signoff")
        .passed("risk_signoff", "rita", 80, then="ops_handoff")
        .passed("ops_handoff", "olga", 81, then="go_live")
        .passed("go_live", "bo", 82, then="live")
    )
    change = (  # a change request's own run: not part of the release-path metrics
        Run("alpha-change-1", "low", T0 + 5 * day, change=True, stage="change_approval")
        .started()
        .passed("change_approval", "tom", 1, then="live")
        .close("applied", 1)
    )
    return [alpha, bravo, charlie, delta, echo, hotel, change]


@pytest.fixture(scope="module", params=BACKENDS)
async def seeded(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A migrated database holding exactly the fixture runs."""
    async with fresh_database(str(request.param)) as url:
        await upgrade_head(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        for run in seed_runs():
            async with session_scope(sessions) as session:
                assert await LedgerRepository(session).append(LedgerBatch(records=run.records))
        async with session_scope(sessions) as session:
            # the read model of the open run: its gate's due time as the workflow published it
            await RegistryRepository(session).upsert(
                RegistryRow(
                    workflow_id="usecase-delta",
                    key="delta",
                    title="Delta from the registry",
                    risk_tier="medium",
                    stage="risk_signoff",
                    closed=False,
                    business_owner="bo",
                    owners={"business_owner": "bo"},
                    gate="risk_signoff",
                    quorum=1,
                    due_at=T0 + timedelta(days=3, hours=182),
                    updated_at=T0 + timedelta(days=3, hours=110),
                    event_id=12,
                )
            )
        await engine.dispose()
        yield url


async def metrics(url: str, **filters: Any) -> FlowMetrics:
    engine = make_engine(url)
    sessions: async_sessionmaker[AsyncSession] = make_sessionmaker(engine)
    try:
        async with session_scope(sessions) as session:
            repo = FlowRepository(session, visible_to=filters.pop("visible_to", None))
            since, until = filters.pop("since", None), filters.pop("until", None)
            return compute_flow(
                await repo.entries(since, until),
                await repo.registry(since, until),
                now=NOW,
                slas=sla_table(POLICY),
                since=since,
                until=until,
                **filters,
            )
    finally:
        await engine.dispose()


def stats(m: FlowMetrics, stage: str) -> dict[str, Any]:
    found = next(s for s in m.stages if s.stage == stage)
    return {"open": found.open, **found.hours.model_dump()}


async def test_run_counts_and_lead_time(seeded: str) -> None:
    m = await metrics(seeded, detail=True)
    assert (m.runs, m.reached_live, m.rejected, m.cancelled, m.in_progress) == (6, 3, 1, 1, 1)
    assert m.lead_time_hours.model_dump() == {
        "count": 3,
        "mean": 96.666667,
        "min": 82.0,
        "p25": 82.0,
        "p50": 82.0,
        "p75": 104.0,
        "p90": 117.2,
        "max": 126.0,
    }
    assert m.run_rows is not None
    rows = {r.key: r for r in m.run_rows}
    assert set(rows) == {"alpha", "bravo", "charlie", "delta", "echo", "hotel"}
    assert {k: r.outcome for k, r in rows.items()} == {
        "alpha": "live",
        "bravo": "live",
        "charlie": "rejected",
        "delta": "in_progress",
        "echo": "cancelled",
        "hotel": "live",
    }
    assert rows["bravo"].lead_time_hours == 126.0
    assert rows["bravo"].stage_hours == {
        "scoping": 1.0,
        "specification": 2.0,
        "implementation": 10.0,
        "validation": 4.0,
        "risk_signoff": 104.0,
        "ops_handoff": 4.0,
        "go_live": 1.0,
    }
    assert rows["delta"].stage == "risk_signoff"
    assert rows["delta"].title == "Use case delta"  # the ledger's own title wins


async def test_time_in_each_stage(seeded: str) -> None:
    m = await metrics(seeded)
    assert [s.stage for s in m.stages] == [
        "scoping",
        "scope_approval",
        "specification",
        "implementation",
        "validation",
        "risk_signoff",
        "ops_handoff",
        "go_live",
        "stalled",
    ]
    assert stats(m, "scoping") == {
        "open": 0,
        "count": 6,
        "mean": 2.166667,
        "min": 1.0,
        "p25": 1.0,
        "p50": 1.5,
        "p75": 2.75,
        "p90": 4.0,
        "max": 5.0,
    }
    assert stats(m, "specification") | {} == {
        "open": 0,
        "count": 5,
        "mean": 4.0,
        "min": 1.0,
        "p25": 1.0,
        "p50": 2.0,
        "p75": 4.0,
        "p90": 8.8,
        "max": 12.0,
    }
    implementation = stats(m, "implementation")
    assert (implementation["count"], implementation["mean"]) == (6, 7.666667)
    assert (implementation["p50"], implementation["p90"]) == (5.0, 17.0)
    validation = stats(m, "validation")
    assert (validation["count"], validation["p50"], validation["p90"]) == (6, 2.0, 5.0)
    # the reopened visit of delta is still open: counted as open, not sampled
    risk = stats(m, "risk_signoff")
    assert (risk["open"], risk["count"], risk["mean"]) == (1, 6, 51.0)
    assert (risk["p50"], risk["p90"], risk["max"]) == (50.0, 88.0, 96.0)
    assert stats(m, "stalled")["p50"] == 10.0
    assert stats(m, "scope_approval")["p50"] == 3.0
    ops = stats(m, "ops_handoff")
    assert (ops["count"], ops["mean"], ops["p50"], ops["p90"]) == (3, 18.333333, 4.0, 40.8)


async def test_gate_waits_and_sla(seeded: str) -> None:
    m = await metrics(seeded)
    gates = {g.gate: g for g in m.gates}
    assert list(gates) == ["scope_approval", "risk_signoff", "ops_handoff", "go_live"]

    risk = gates["risk_signoff"]
    assert (risk.visits, risk.passed, risk.changes_requested, risk.rejected) == (7, 3, 1, 1)
    assert (risk.expired, risk.cancelled, risk.open) == (1, 0, 1)
    assert risk.wait_hours.model_dump() == {
        "count": 5,
        "mean": 42.0,
        "min": 10.0,
        "p25": 20.0,
        "p50": 24.0,
        "p75": 76.0,
        "p90": 78.4,
        "max": 80.0,
    }
    # bravo round 2 (80h > 72h, by the policy) and hotel (escalated, older policy)
    assert risk.sla_breach.model_dump() == {"numerator": 2, "denominator": 5, "rate": 0.4}
    assert risk.expiry.model_dump() == {"numerator": 1, "denominator": 6, "rate": 0.166667}

    ops = gates["ops_handoff"]
    assert (ops.wait_hours.p50, ops.wait_hours.p90) == (4.0, 40.8)
    assert ops.sla_breach.model_dump() == {"numerator": 1, "denominator": 3, "rate": 0.333333}
    go_live = gates["go_live"]
    assert (go_live.wait_hours.p50, go_live.wait_hours.p90) == (1.0, 1.8)
    assert go_live.sla_breach.rate == 0.0
    assert gates["scope_approval"].wait_hours.p50 == 3.0

    assert m.rates.sla_breach.model_dump() == {"numerator": 3, "denominator": 12, "rate": 0.25}
    assert m.rates.expiry.model_dump() == {"numerator": 1, "denominator": 13, "rate": 0.076923}
    assert m.rates.rejection.model_dump() == {"numerator": 1, "denominator": 4, "rate": 0.25}


async def test_open_gate_due_time_and_sources(seeded: str) -> None:
    m = await metrics(seeded, detail=True)
    assert m.run_rows is not None
    rows = {r.key: r for r in m.run_rows}
    delta = rows["delta"].gates
    assert [(g.gate, g.outcome) for g in delta] == [
        ("risk_signoff", "expired"),
        ("risk_signoff", "open"),
    ]
    assert delta[1].age_hours == 58.0
    assert delta[1].due_at == T0 + timedelta(days=3, hours=182)
    hotel = rows["hotel"].gates
    assert [(g.gate, g.breached, g.sla_source) for g in hotel] == [
        ("risk_signoff", True, "escalation"),
        ("ops_handoff", False, "escalation"),
        ("go_live", False, "escalation"),
    ]
    alpha = rows["alpha"].gates
    assert [(g.gate, g.wait_hours, g.breached, g.sla_source) for g in alpha] == [
        ("risk_signoff", 10.0, False, "policy"),
        ("ops_handoff", 50.0, True, "policy"),
        ("go_live", 2.0, False, "policy"),
    ]


async def test_rework_tiers_and_approvers(seeded: str) -> None:
    m = await metrics(seeded)
    assert m.rework.model_dump() == {
        "total": 1,
        "mean": 0.166667,
        "max": 1,
        "runs_with_rework": 1,
        "distribution": {"0": 5, "1": 1},
    }
    tiers = {t.tier: t for t in m.by_tier}
    assert list(tiers) == ["low", "medium", "high"]
    low = tiers["low"]
    assert (low.runs, low.reached_live, low.cancelled, low.rework_total) == (4, 3, 1, 1)
    assert (low.rework_mean, low.rejection.rate) == (0.25, 0.0)
    assert (tiers["medium"].in_progress, tiers["medium"].rejection.rate) == (1, None)
    assert tiers["high"].rejection.model_dump() == {"numerator": 1, "denominator": 1, "rate": 1.0}
    assert [a.model_dump() for a in m.approvers] == [
        {"actor": "rita", "approve": 4, "request_changes": 1, "reject": 0, "total": 5},
        {"actor": "bo", "approve": 4, "request_changes": 0, "reject": 0, "total": 4},
        {"actor": "olga", "approve": 3, "request_changes": 0, "reject": 0, "total": 3},
        {"actor": "raj", "approve": 1, "request_changes": 0, "reject": 1, "total": 2},
    ]


async def test_filters_apply_to_the_run_start(seeded: str) -> None:
    window = await metrics(
        seeded, since=datetime(2026, 10, 2, tzinfo=UTC), until=datetime(2026, 10, 5, 9, tzinfo=UTC)
    )
    assert window.runs == 3  # bravo, charlie, delta; echo starts exactly at `until`
    assert (window.reached_live, window.rejected, window.in_progress) == (1, 1, 1)
    assert window.lead_time_hours.p50 == 126.0

    low = await metrics(seeded, tier="low")
    assert (low.runs, low.reached_live, low.cancelled) == (4, 3, 1)
    assert low.rates.rejection.model_dump() == {"numerator": 0, "denominator": 3, "rate": 0.0}
    assert [a.actor for a in low.approvers] == ["bo", "olga", "rita", "raj"]

    nothing = await metrics(seeded, since=datetime(2027, 1, 1, tzinfo=UTC))
    assert (nothing.runs, nothing.lead_time_hours.count, nothing.rates.rejection.rate) == (
        0,
        0,
        None,
    )


# --------------------------------------------------------------------------- the endpoint


@pytest.fixture(scope="module")
async def api(seeded: str) -> AsyncIterator[httpx.AsyncClient]:
    # The metrics never call Temporal: the client is lazy and points nowhere.
    settings = Settings(TEMPORAL_ADDRESS="127.0.0.1:9", RELEASEGATE_DATABASE_URL=seeded)
    async with api_client(settings) as client:
        yield client


# carla is in the compliance reader group: every run counts for her
AUTH = {"Authorization": "Bearer dev-carla"}


async def test_endpoint_serves_the_same_numbers(api: httpx.AsyncClient) -> None:
    r = await api.get("/v1/metrics/flow", headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["runs"] == 6
    assert body["lead_time_hours"]["p90"] == 117.2
    assert body["rates"]["sla_breach"] == {"numerator": 3, "denominator": 12, "rate": 0.25}
    assert body["run_rows"] is None
    assert set(body["definitions"]) >= {"lead_time", "gate_wait", "sla_breach_rate"}

    r = await api.get(
        "/v1/metrics/flow",
        params={"since": "2026-10-02", "until": "2026-10-05T09:00:00Z", "detail": "true"},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    assert sorted(row["key"] for row in r.json()["run_rows"]) == ["bravo", "charlie", "delta"]
    assert r.json()["since"] == "2026-10-02T00:00:00Z"

    r = await api.get("/v1/metrics/flow", params={"tier": "high"}, headers=AUTH)
    assert (r.json()["runs"], r.json()["rejected"]) == (1, 1)


async def test_flow_counts_only_the_runs_the_caller_may_read(
    api: httpx.AsyncClient, seeded: str
) -> None:
    """Need-to-know: bo is one of delta's people only (its registry roster); priya and eve
    are nobody's, and in no reader group."""
    r = await api.get(
        "/v1/metrics/flow", params={"detail": "true"}, headers={"Authorization": "Bearer dev-bo"}
    )
    assert r.status_code == 200, r.text
    assert [row["key"] for row in r.json()["run_rows"]] == ["delta"]
    assert r.json()["runs"] == 1
    for person in ("priya", "eve"):
        r = await api.get(
            "/v1/metrics/flow",
            params={"detail": "true"},
            headers={"Authorization": f"Bearer dev-{person}"},
        )
        assert r.status_code == 200, r.text
        assert (r.json()["runs"], r.json()["run_rows"], r.json()["approvers"]) == (0, [], [])
    assert (await metrics(seeded, visible_to="bo")).runs == 1
    assert (await metrics(seeded, visible_to=None)).runs == 6


@pytest.mark.parametrize(
    "params",
    [
        {"since": "last tuesday"},
        {"until": "2026-13-01"},
        {"since": "2026-10-05", "until": "2026-10-01"},
        {"tier": "extreme"},
        {"detail": "maybe"},
    ],
)
async def test_endpoint_refuses_bad_filters(api: httpx.AsyncClient, params: dict[str, str]) -> None:
    r = await api.get("/v1/metrics/flow", params=params, headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"]


async def test_endpoint_needs_a_person(api: httpx.AsyncClient) -> None:
    r = await api.get("/v1/metrics/flow")
    assert r.status_code == 401
