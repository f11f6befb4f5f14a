"""The typed payloads of monitoring facts (``workflows/events.py``), against what the run writes.

``incident_resolved``, ``runtime_reported``, ``trigger_fired`` and ``trigger_satisfied`` are
driven through the pure modules (no Temporal server). Each payload the run records with its
kind's model is byte for byte the one it recorded before the model existed (the flat dict of
the writer's own fields), every field written is a declared field, and ``parse_payload`` reads
the stored payload back as the model.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import pytest

from tests.workflows.helpers import make_input
from tests.workflows.test_pure_modules import T0, to_live
from workflows import live, outbox, transitions, triggers
from workflows.events import (
    EventBody,
    Extras,
    IncidentResolved,
    RuntimeReported,
    TriggerFired,
    TriggerSatisfied,
    extras_as,
    extras_model,
    parse_payload,
    payload_of,
)
from workflows.model import (
    BundleArtifact,
    EventKind,
    ReportIncident,
    ReportRuntime,
    Severity,
    Stage,
    TriggerAction,
    TriggerRule,
)
from workflows.state import ReleaseState, Run

TYPED = {
    EventKind.INCIDENT_RESOLVED: IncidentResolved,
    EventKind.RUNTIME_REPORTED: RuntimeReported,
    EventKind.TRIGGER_FIRED: TriggerFired,
    EventKind.TRIGGER_SATISFIED: TriggerSatisfied,
}
DRIFT = TriggerRule(
    name="drift-revalidation",
    label="drift",
    value="true",
    action=TriggerAction.REQUIRE_MATERIAL_CHANGE,
    deadline_days=14,
)
REPEATED = TriggerRule(
    name="repeated-incidents",
    min_severity=Severity.SEV2,
    count=2,
    within_days=30.5,  # a float window; DRIFT's is the default 30 (JSON keeps both as they are)
    action=TriggerAction.OPEN_REVIEW,
)


def artifact(name: str, content: str) -> BundleArtifact:
    return BundleArtifact(name=name, sha256=hashlib.sha256(content.encode()).hexdigest())


BUNDLE = [artifact("model", "llm@1"), artifact("prompt", "triage claims")]
DRIFTED = [artifact("model", "llm@2"), artifact("prompt", "triage claims")]


def live_run() -> Run:
    inp = make_input("low", key="payloads")
    rules = inp.policy.live.model_copy(update={"triggers": [DRIFT, REPEATED]})
    inp = inp.model_copy(
        update={"bundle": BUNDLE, "policy": inp.policy.model_copy(update={"live": rules})}
    )
    run = Run(inp, ReleaseState.fresh(inp, T0), f"usecase-{inp.key}")
    transitions.start(run, T0)
    to_live(run)
    return run


def drift(run: Run, n: int) -> None:
    labels = {"alertname": "ModelDrift", "drift": "true"}
    cmd = ReportIncident(
        actor="signal:alertmanager",
        severity=Severity.SEV3,
        summary="prediction drift",
        fingerprint=f"drift-{n}",
        labels=labels,
    )
    live.report_incident(run, cmd, T0)


def monitor(run: Run) -> None:
    """Every writer of the four kinds, each variant once."""
    deploy = "signal:deploy"
    live.report_runtime(run, ReportRuntime(actor=deploy, bundle=BUNDLE), T0)  # matches
    live.report_runtime(run, ReportRuntime(actor=deploy, bundle=DRIFTED), T0)  # mismatch
    live.report_runtime(run, ReportRuntime(actor=deploy, bundle=BUNDLE), T0)  # resolves it
    drift(run, 1)  # fires DRIFT (a deadline)
    triggers.on_material_change(run, T0)  # ... met in time
    drift(run, 2)  # fires DRIFT again
    for summary in ("slow answers", "wrong answers"):  # the second sev2 fires REPEATED
        live.report_incident(
            run, ReportIncident(actor="olga", severity=Severity.SEV2, summary=summary), T0
        )
    assert triggers.deadline_passed(run, T0 + timedelta(days=15))  # DRIFT's deadline, missed


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch) -> tuple[Run, list[tuple[EventKind, dict[str, Any]]]]:
    """A live run after ``monitor``, and the (kind, extras) its writers handed the outbox."""
    run = live_run()
    handed: list[tuple[EventKind, dict[str, Any]]] = []
    record = outbox.record

    def recording(run: Run, kind: EventKind, *args: Any, **kwargs: Any) -> None:
        handed.append((kind, dict(kwargs.get("extras") or {})))
        record(run, kind, *args, **kwargs)

    monkeypatch.setattr(outbox, "record", recording)
    monitor(run)
    return run, handed


def test_every_variant_is_written(written: tuple[Run, list[Any]]) -> None:
    run, _ = written
    stored = [
        (r.kind, parse_payload(r.kind, r.payload)[1])
        for r in run.state.outbox.ledger
        if r.kind in TYPED
    ]
    runtime = [extras_as(RuntimeReported, e) for k, e in stored if k == EventKind.RUNTIME_REPORTED]
    assert [r.matches for r in runtime] == [True, False, True]
    assert runtime[1].changed == ["model"]
    assert runtime[1].approved_digest == runtime[0].bundle_digest != runtime[1].bundle_digest
    (resolved,) = [
        extras_as(IncidentResolved, e) for k, e in stored if k == EventKind.INCIDENT_RESOLVED
    ]
    assert resolved.fingerprint == f"bundle:{runtime[1].bundle_digest}"
    assert resolved.incident == run.state.incidents[0].id
    fired = [extras_as(TriggerFired, e) for k, e in stored if k == EventKind.TRIGGER_FIRED]
    assert [(f.trigger, f.action) for f in fired] == [
        (DRIFT.name, TriggerAction.REQUIRE_MATERIAL_CHANGE),
        (DRIFT.name, TriggerAction.REQUIRE_MATERIAL_CHANGE),
        (REPEATED.name, TriggerAction.OPEN_REVIEW),
        (DRIFT.name, "suspend"),
    ]
    assert fired[0].deadline == (T0 + timedelta(days=14)).isoformat()
    assert fired[0].within_days == 30
    assert isinstance(fired[0].within_days, int)
    assert (fired[2].count, fired[2].within_days, fired[2].deadline) == (2, 30.5, None)
    assert fired[3].reason is not None
    assert "no material change" in fired[3].reason
    (satisfied,) = [
        extras_as(TriggerSatisfied, e) for k, e in stored if k == EventKind.TRIGGER_SATISFIED
    ]
    assert satisfied.trigger == DRIFT.name
    assert run.state.stage == Stage.SUSPENDED


def test_the_models_write_exactly_what_was_written_before(
    written: tuple[Run, list[tuple[EventKind, dict[str, Any]]]],
) -> None:
    run, handed = written
    typed = [(kind, extras) for kind, extras in handed if kind in TYPED]
    assert {kind for kind, _ in typed} == set(TYPED)
    body = EventBody(stage=Stage.LIVE)
    for kind, extras in typed:
        model = extras_model(kind)
        assert model is TYPED[kind]
        own = model.model_validate(extras)
        assert own.model_extra == {}, f"{kind}: fields written but not declared"
        before = payload_of(body, Extras.model_validate(extras))  # the untyped payload
        after = payload_of(body, own)
        assert json.dumps(after) == json.dumps(before), kind  # same keys, order and values
    # and what the ledger holds reads back as the same model, field for field
    for record in run.state.outbox.ledger:
        if record.kind in TYPED:
            _, own = parse_payload(record.kind, record.payload)
            assert isinstance(own, TYPED[record.kind])
            again = payload_of(EventBody(stage=record.payload["stage"]), own)
            assert json.dumps(again) == json.dumps(record.payload)


def test_what_older_runs_wrote_still_reads() -> None:
    """A field that does not parse reads as its default; the rest stay (``parse_payload``)."""
    _, own = parse_payload(
        EventKind.TRIGGER_FIRED, {"stage": "live", "trigger": "t", "action": "x", "count": "many"}
    )
    fired = extras_as(TriggerFired, own)
    assert (fired.trigger, fired.action, fired.count) == ("t", None, None)
    _, own = parse_payload(EventKind.RUNTIME_REPORTED, {"stage": "live", "matches": True})
    assert extras_as(RuntimeReported, own).matches is True
