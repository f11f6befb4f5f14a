"""Issue 13: what a command answers (the view, which enters the run's history with every Update)
stays the same size however long the run lives, and the policy's per-run limits refuse the
floods that used to drown a run. Pure: the view and the checks, no Temporal server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.workflows.helpers import POLICY, make_input
from tests.workflows.test_pure_modules import new_run, to_live
from workflows import bounded, live, policy, presentation, transitions
from workflows.limits import TEXT_MAX, URI_MAX
from workflows.model import (
    AddEvidence,
    ChangeStatus,
    CommandName,
    Evidence,
    Gate,
    Materiality,
    RaiseChange,
    Refusal,
    ReportIncident,
    RunLimits,
    Severity,
    Stage,
)
from workflows.state import Outbox, Run

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
# what a view may weigh at most, however many incidents, evidence items and changes the run
# holds: the latest few of each at their longest, the digests of every evidence item the
# policy's cap allows, and the rest of the state
VIEW_BYTES_MAX = 160_000


def live_run() -> Run:
    run = new_run()
    to_live(run)
    assert run.state.stage == Stage.LIVE
    return run


def size(run: Run) -> int:
    return len(presentation.view(run).model_dump_json())


def long_evidence(i: int) -> Evidence:
    return Evidence(
        kind="monitoring_note",
        name=f"note-{i}".ljust(200, "n"),
        uri="https://docs.example.com/" + f"{i}-".ljust(URI_MAX - 30, "x"),
        sha256=f"{i:064x}",
    )


def test_the_view_stays_bounded_under_300_long_incidents() -> None:
    run = live_run()
    sizes = []
    for i in range(300):
        summary = f"incident {i} ".ljust(TEXT_MAX, "!")
        live.report_incident(
            run, ReportIncident(actor="olga", severity=Severity.SEV3, summary=summary), T0
        )
        sizes.append(size(run))
    view = presentation.view(run)
    assert view.incident_count == 300
    assert len(view.incidents) == presentation.VIEW_INCIDENTS
    assert [i.id for i in view.incidents] == [f"inc-{n}" for n in range(296, 301)]
    # constant once the latest few are full: the 300th answer weighs what the 10th did (but
    # for the digits of the counters)
    assert abs(sizes[-1] - sizes[9]) < 50
    assert max(sizes) < VIEW_BYTES_MAX
    # the whole run is far heavier than any answer it gives
    assert len(run.state.model_dump_json()) > 10 * max(sizes)


def test_the_view_stays_bounded_with_changes_and_evidence_at_the_cap() -> None:
    run = live_run()
    for i in range(40):
        summary = f"change {i} ".ljust(TEXT_MAX, "c")
        live.raise_change(
            run,
            RaiseChange(actor="dana", summary=summary, materiality=Materiality.MINOR),
            T0,
            update_id=f"u{i}",
        )
    # evidence up to the policy's cap, through a gate that accepts it (periodic review)
    transitions.open_beside(run, Gate.PERIODIC_REVIEW, actor="system", now=T0)
    cap = POLICY.pin(run.inp.risk_tier).run_limits.max_evidence_items
    held = len(run.state.evidence)
    for start in range(0, cap - held, 50):
        batch = [long_evidence(i) for i in range(start, min(start + 50, cap - held))]
        transitions.add_evidence(run, AddEvidence(actor="tom", evidence=batch), T0)
    view = presentation.view(run)
    assert view.evidence_count == cap
    assert len(view.evidence) == presentation.VIEW_EVIDENCE
    assert view.evidence[-1].name.startswith(f"note-{cap - held - 1}")
    assert len(view.evidence_digests) == cap  # the set an approval binds to stays whole
    assert view.change_count == 40
    assert view.open_change_count == 40
    assert [c.change_id for c in view.changes] == [f"change-{n}" for n in range(36, 41)]
    assert len(view.model_dump_json()) < VIEW_BYTES_MAX


def test_evidence_beyond_the_cap_is_refused() -> None:
    limits = RunLimits(max_evidence_items=3)
    policy.check_evidence_cap(limits, held=1, adding=2)
    with pytest.raises(policy.PolicyViolation) as exc:
        policy.check_evidence_cap(limits, held=2, adding=2)
    assert exc.value.refusal == Refusal.OVER_LIMIT
    assert "at most 3" in exc.value.detail
    add = AddEvidence(actor="tom", evidence=[long_evidence(1), long_evidence(2)])
    assert policy.evidence_in(CommandName.ADD_EVIDENCE, add) == 2
    assert policy.evidence_in(CommandName.DECIDE, add) == 0


def test_incidents_per_reporter_per_window() -> None:
    limits = RunLimits(max_incidents_per_reporter=3, incident_window_seconds=60)
    now = T0 + timedelta(seconds=100)
    reported = [
        ("olga", T0 + timedelta(seconds=30)),  # out of the window
        ("olga", T0 + timedelta(seconds=50)),
        ("olga", T0 + timedelta(seconds=70)),
        ("tom", T0 + timedelta(seconds=90)),
    ]
    policy.check_incident_rate(limits, reported, "olga", now)  # two in the window: fine
    reported.append(("olga", T0 + timedelta(seconds=95)))
    with pytest.raises(policy.PolicyViolation) as exc:
        policy.check_incident_rate(limits, reported, "olga", now)
    assert exc.value.refusal == Refusal.RATE_LIMITED
    # room again when the one at +50 s leaves the window, at +110 s
    assert exc.value.retry_after == 10
    policy.check_incident_rate(limits, reported, "tom", now)  # per reporter
    policy.check_incident_rate(limits, reported, "olga", now + timedelta(seconds=10))


def test_the_policy_states_its_limits_and_old_pins_get_the_defaults() -> None:
    pinned = POLICY.pin(make_input("low").risk_tier)
    assert pinned.limits == POLICY.document.limits
    assert pinned.run_limits.max_evidence_items >= 100
    # a run pinned before the section existed: its signed input never named limits
    old = pinned.model_copy(update={"limits": None})
    assert "limits" not in old.model_dump(mode="json")
    assert old.run_limits == RunLimits()


def test_continue_as_new_hands_on_a_bounded_state_and_numbering_goes_on() -> None:
    run = live_run()
    for i in range(300):
        at = T0 + timedelta(seconds=i)
        summary = f"incident {i} ".ljust(TEXT_MAX, "!")
        live.report_incident(
            run, ReportIncident(actor="olga", severity=Severity.SEV3, summary=summary), at
        )
    for i in range(12):
        live.raise_change(
            run,
            RaiseChange(actor="dana", summary=f"change {i}", materiality=Materiality.MINOR),
            T0,
            update_id=f"u{i}",
        )
    for change in run.state.changes[:10]:  # ten closed, two still open
        change.status = ChangeStatus.APPLIED
    run.state.outbox = Outbox()  # shipped meanwhile, as the run loop does
    limits = RunLimits(incident_window_seconds=30)
    now = T0 + timedelta(seconds=300)
    before = presentation.view(run)
    state = bounded.handed_on(run.state, limits, now)
    # far smaller than the 2 MB Temporal takes as the next run's input
    assert len(state.model_dump_json()) < 400_000 < len(run.state.model_dump_json())
    # the incidents the rate window still counts (the last 30 s), at least the latest few
    assert [i.id for i in state.incidents] == [f"inc-{n}" for n in range(272, 301)]
    # every open change, and the latest closed ones
    assert [c.change_id for c in state.changes] == [f"change-{n}" for n in range(6, 13)]
    assert len(state.history) == bounded.KEEP_HISTORY
    after = Run(run.inp, state, run.workflow_id)
    view = presentation.view(after)
    assert (view.incident_count, view.change_count) == (before.incident_count, 12)
    assert view.incidents == before.incidents
    live.report_incident(
        after, ReportIncident(actor="tom", severity=Severity.SEV4, summary="next"), now
    )
    info, _ = live.raise_change(
        after,
        RaiseChange(actor="dana", summary="next", materiality=Materiality.MINOR),
        now,
        update_id="u-next",
    )
    assert after.state.incidents[-1].id == "inc-301"
    assert info.change_id == "change-13"
    # the rate limit still sees the window
    with pytest.raises(policy.PolicyViolation):
        policy.check_incident_rate(
            RunLimits(max_incidents_per_reporter=29, incident_window_seconds=30),
            ((i.reported_by, i.at) for i in after.state.incidents),
            "olga",
            now,
        )
