"""The judging rules without a server, on ledger facts shaped as the workflow writes them: periodic
review overdue and caught up, a gate passed by break-glass, a broken chain, a run that closed
before a control fell due; and the pin's place in the workflow input (replay-safe)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.controls.catalog import load_catalog
from services.controls.evaluate import (
    OVERRIDE_KIND,
    ControlStatus,
    EvidenceFact,
    LedgerCheck,
    LedgerFact,
    RunFacts,
    evaluate,
)
from services.settings import PROJECT_ROOT
from tests.workflows.helpers import EXPECTED_PATH, make_input
from workflows.credentials import signed_bytes
from workflows.model import EuAiActMarker, PinnedCatalog, UseCaseInput

POLICY_FILE = PROJECT_ROOT / "config" / "policy.yaml"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LOW_PATH = EXPECTED_PATH["low"]
ROSTER = {
    "delivery_lead": ["dana"],
    "business_owner": ["bo"],
    "technical_owner": ["tom"],
    "operations_owner": ["olga"],
    "risk_approver": ["raj", "rita"],
    "escalation_owner": ["eve"],
    "stop_authority": ["bo", "olga", "tom"],
}


@pytest.fixture(scope="module")
def catalog() -> Any:
    from workflows.policy import load_policy

    return load_catalog(PROJECT_ROOT / "config" / "controls.yaml", load_policy(POLICY_FILE))


class Ledger:
    """Builds a run's ledger facts in order, one hour apart."""

    def __init__(self, tier: str = "low", path: list[str] | None = None) -> None:
        self.entries: list[LedgerFact] = []
        self.evidence: list[EvidenceFact] = []
        self.stage = "scoping"
        self.add(
            "run_started",
            "dana",
            title="T",
            risk_tier=tier,
            owners={"business_owner": "bo", "technical_owner": "tom", "operations_owner": "olga"},
            roster=ROSTER,
            path=path or LOW_PATH,
        )

    def add(self, kind: str, actor: str = "system", **payload: Any) -> LedgerFact:
        seq = len(self.entries) + 1
        fact = LedgerFact(
            seq, T0 + timedelta(hours=seq), kind, actor, {"stage": self.stage, **payload}
        )
        self.entries.append(fact)
        return fact

    def enter(self, stage: str) -> None:
        self.stage = stage
        self.add("stage_entered")

    def complete(self, stage: str, *kinds: str) -> None:
        fact = self.add("stage_completed", "dana")
        for kind in kinds:
            self.evidence.append(
                EvidenceFact(
                    kind,
                    f"{kind}.pdf",
                    "a" * 64,
                    "https://x/y",
                    stage,
                    1,
                    "dana",
                    fact.at,
                    fact.seq,
                )
            )

    def pass_gate(self, gate: str, *approvers: str) -> None:
        for person in approvers:
            self.add("decision", person, gate=gate, decision="approve")
        self.add("gate_passed", approvers[-1], gate=gate, approvers=list(approvers))

    def walk_low_to_risk_signoff(self) -> None:
        for stage in ("scoping", "specification", "implementation"):
            self.complete(stage)
            self.enter(LOW_PATH[LOW_PATH.index(stage) + 1])
        self.complete("validation", "evaluation_report")
        self.enter("risk_signoff")

    def walk_low_to_live(self) -> None:
        self.walk_low_to_risk_signoff()
        self.pass_gate("risk_signoff", "rita")
        self.enter("ops_handoff")
        self.pass_gate("ops_handoff", "olga")
        self.enter("go_live")
        self.pass_gate("go_live", "bo")
        self.enter("live")

    def facts(self, check: LedgerCheck | None = None) -> RunFacts:
        return RunFacts("usecase-t", self.entries, self.evidence, check)


def status(view: Any, control: str) -> tuple[str, str | None]:
    c = next(c for c in view.controls if c.id == control)
    return c.status.value, c.reason


def test_periodic_review_overdue_is_a_gap_until_it_passes(catalog: Any) -> None:
    run = Ledger()
    run.walk_low_to_live()
    view = evaluate(run.facts(), catalog, now=T0)
    assert status(view, "sr-11-7.annual-review")[0] == "satisfied"

    opened = run.add("gate_opened", gate="periodic_review")
    view = evaluate(run.facts(), catalog, now=T0)
    assert status(view, "sr-11-7.annual-review")[0] == "pending"

    escalated = run.add("gate_escalated", gate="periodic_review", to="eve", pending=["bo"])
    view = evaluate(run.facts(), catalog, now=T0)
    state, reason = status(view, "sr-11-7.annual-review")
    assert state == "gap"
    assert f"ledger seq {opened.seq}" in (reason or "")
    assert "overdue since" in (reason or "")
    assert f"ledger seq {escalated.seq}" in (reason or "")
    assert status(view, "nist-ai-rmf.manage-4.1")[0] == "gap"

    run.pass_gate("periodic_review", "bo", "rita")
    view = evaluate(run.facts(), catalog, now=T0)
    assert status(view, "sr-11-7.annual-review")[0] == "satisfied"
    review = next(c for c in view.controls if c.id == "sr-11-7.annual-review")
    assert sorted(d.actor for d in review.decisions) == ["bo", "rita"]


@pytest.mark.skipif(OVERRIDE_KIND is None, reason="the vocabulary has no break-glass override")
def test_gate_passed_by_override_is_a_gap(catalog: Any) -> None:
    assert OVERRIDE_KIND is not None
    run = Ledger()
    run.walk_low_to_risk_signoff()
    run.add(OVERRIDE_KIND, "boris", gate="risk_signoff")
    run.enter("ops_handoff")
    view = evaluate(run.facts(), catalog, now=T0)
    state, reason = status(view, "iso-42001.a.6.2.4")
    assert state == "gap"
    assert "break-glass override by boris" in (reason or "")
    assert "not by its seats" in (reason or "")


def test_approver_who_built_it_is_no_independent_challenge(catalog: Any) -> None:
    run = Ledger()
    run.walk_low_to_risk_signoff()
    run.pass_gate("risk_signoff", "tom")  # a ledger edited (or an older rule) lets tom sign
    run.enter("ops_handoff")
    view = evaluate(run.facts(), catalog, now=T0)
    state, reason = status(view, "sr-11-7.effective-challenge")
    assert state == "gap"
    assert "no approver of risk_signoff held risk_approver" in (reason or "")
    assert "tom approved risk_signoff but is" in (reason or "")
    assert "technical_owner" in (reason or "")


def test_broken_chain_and_missing_entries_are_gaps(catalog: Any) -> None:
    run = Ledger()
    run.walk_low_to_live()
    broken = LedgerCheck(ok=False, entries=9, first_bad_seq=4, reason="hash mismatch")
    assert status(evaluate(run.facts(broken), catalog, now=T0), "iso-42001.a.6.2.8") == (
        "gap",
        "the ledger does not verify at seq 4: hash mismatch",
    )
    del run.entries[5]
    state, reason = status(evaluate(run.facts(), catalog, now=T0), "iso-42001.a.6.2.8")
    assert state == "gap"
    assert "not contiguous: seq 6 is missing" in (reason or "")


def test_run_closed_before_a_control_fell_due(catalog: Any) -> None:
    run = Ledger()
    run.complete("scoping")
    run.enter("specification")
    run.stage = "cancelled"
    run.add("cancelled", "dana")
    run.add("run_closed", "dana", outcome="cancelled")
    view = evaluate(run.facts(), catalog, now=T0)
    assert view is not None
    assert view.closed
    state, reason = status(view, "iso-42001.a.6.2.4")
    assert state == "not_applicable"
    assert "closed (cancelled) before validation" in (reason or "")
    assert status(view, "nist-ai-rmf.govern-1.6")[0] == "satisfied"


def test_no_view_before_the_run_started_fact(catalog: Any) -> None:
    assert evaluate(RunFacts("usecase-x", []), catalog, now=T0) is None


def test_every_status_is_counted_per_framework(catalog: Any) -> None:
    run = Ledger(tier="high")
    view = evaluate(run.facts(), catalog, now=T0)
    assert view is not None
    for fw in view.frameworks:
        mine = [c for c in view.controls if c.framework == fw.id]
        assert fw.satisfied + fw.pending + fw.gap + fw.not_applicable == len(mine)
        assert fw.gap == sum(1 for c in mine if c.status == ControlStatus.GAP)


# --------------------------------------------------------------------------- replay safety


def test_input_without_pin_dumps_as_before() -> None:
    """Runs started before the catalog: their input, dumped for the start credential, holds no
    new keys, so a signature made then still verifies on replay."""
    inp = make_input("low")
    dumped = inp.model_dump(mode="json")
    assert "controls" not in dumped
    assert "eu_ai_act" not in dumped
    pinned = inp.model_copy(
        update={
            "controls": PinnedCatalog(version="2026.1", sha256="b" * 64),
            "eu_ai_act": EuAiActMarker(annex_iii=["5b"]),
        }
    )
    assert pinned.model_dump(mode="json")["controls"] == {"version": "2026.1", "sha256": "b" * 64}
    again = UseCaseInput.model_validate(dumped)
    assert again.controls is None
    args = {"scope": "s", "issued_at": T0, "kid": "k"}
    assert signed_bytes("w", "start", again, **args) == signed_bytes("w", "start", inp, **args)
    assert signed_bytes("w", "start", pinned, **args) != signed_bytes("w", "start", inp, **args)
