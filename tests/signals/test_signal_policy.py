"""The rules behind signals, bundles and triggers, as pure functions of workflows/policy.py,
workflows/bundles.py and workflows/triggers.py."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from tests.workflows.helpers import POLICY, ROOT, make_input
from workflows import bundles, policy, triggers
from workflows.model import (
    AlertSeverityRule,
    BundleArtifact,
    CommandName,
    LiveRule,
    Materiality,
    RaiseChange,
    Refusal,
    RiskTier,
    Severity,
    TriggerAction,
    TriggerRule,
)

SOURCE = "signal:alertmanager"


@pytest.mark.parametrize(
    "command",
    [
        CommandName.DECIDE,
        CommandName.SUSPEND,
        CommandName.RESUME,
        CommandName.RAISE_CHANGE,
        CommandName.RETIRE,
        CommandName.CANCEL,
        CommandName.OVERRIDE_GATE,
        CommandName.SET_DEPUTIES,
    ],
)
def test_a_signal_source_never_acts_as_a_person(command: CommandName) -> None:
    roster = make_input("high").roster
    with pytest.raises(policy.PolicyViolation) as info:
        policy.check_actor(command, roster, SOURCE)
    assert info.value.refusal == Refusal.NOT_ELIGIBLE


def test_a_signal_source_reports_resolves_and_says_what_runs() -> None:
    roster = make_input("high").roster
    for command in policy.SIGNAL_COMMANDS:
        policy.check_actor(command, roster, SOURCE)
    # a person outside the run's people may not resolve an alert or report what runs
    for command in (CommandName.RESOLVE_INCIDENT, CommandName.REPORT_RUNTIME):
        with pytest.raises(policy.PolicyViolation):
            policy.check_actor(command, roster, "priya")


def test_the_policy_names_the_sources_a_run_takes_signals_from() -> None:
    policy.check_signal_source(LiveRule(), SOURCE)  # unnamed: any authenticated source
    named = LiveRule(signal_sources=["alertmanager"])
    policy.check_signal_source(named, SOURCE)
    with pytest.raises(policy.PolicyViolation) as info:
        policy.check_signal_source(named, "signal:grafana")
    assert info.value.refusal == Refusal.NOT_ELIGIBLE


def test_alert_severity_from_labels() -> None:
    rule = AlertSeverityRule()
    assert policy.alert_severity(rule, {"severity": "critical"}) == Severity.SEV1
    assert policy.alert_severity(rule, {"severity": "Warning "}) == Severity.SEV3
    assert policy.alert_severity(rule, {"severity": "unheard-of"}) == Severity.SEV3
    assert policy.alert_severity(rule, {}) == Severity.SEV3
    own = AlertSeverityRule(label="priority", values={"P1": Severity.SEV1}, default=Severity.SEV4)
    assert policy.alert_severity(own, {"priority": "p1", "severity": "info"}) == Severity.SEV1
    assert policy.alert_severity(own, {"severity": "critical"}) == Severity.SEV4


def art(name: str, content: str) -> BundleArtifact:
    return BundleArtifact(name=name, sha256=hashlib.sha256(content.encode()).hexdigest())


def test_bundle_digest_is_order_free_and_changes_with_any_artifact() -> None:
    a = [art("model", "m1"), art("prompt", "p1")]
    assert bundles.digest(a) == bundles.digest(list(reversed(a)))
    assert bundles.digest(a) != bundles.digest([art("model", "m2"), art("prompt", "p1")])
    assert bundles.digest(None) is None
    assert bundles.changed(a, [art("model", "m1"), art("config", "c")]) == ["config", "prompt"]


def test_a_bundle_change_touching_a_material_artifact_is_never_minor() -> None:
    inp = make_input("low")
    view = make_view(inp, [art("model", "m1"), art("config", "c1")])
    minor_model = RaiseChange(
        actor="dana",
        summary="x",
        materiality=Materiality.MINOR,
        bundle=[art("model", "m2"), art("config", "c1")],
    )
    with pytest.raises(policy.PolicyViolation) as info:
        policy.check_bundle_change(inp.policy, view, minor_model)
    assert info.value.refusal == Refusal.INVALID
    policy.check_bundle_change(
        inp.policy, view, minor_model.model_copy(update={"materiality": Materiality.MATERIAL})
    )
    minor_config = minor_model.model_copy(
        update={"bundle": [art("model", "m1"), art("config", "c2")]}
    )
    policy.check_bundle_change(inp.policy, view, minor_config)


def make_view(inp, bundle):  # type: ignore[no-untyped-def]
    from tests.workflows.test_pure_modules import T0
    from workflows import presentation
    from workflows.state import ReleaseState, Run

    run = Run(inp.model_copy(update={"bundle": bundle}), ReleaseState.fresh(inp, T0), "wid")
    return presentation.view(run)


def test_unauthorized_change_severity_per_tier() -> None:
    assert policy.unauthorized_change_severity(POLICY.pin(RiskTier.HIGH)) == Severity.SEV1
    assert policy.unauthorized_change_severity(POLICY.pin(RiskTier.LOW)) == Severity.SEV2


def test_live_additions_unset_keep_a_pinned_policy_s_bytes() -> None:
    """Runs signed before these fields existed verify: unset, they are not in the dump."""
    assert set(LiveRule().model_dump()) == {"sev1_suspends", "gates", "hooks"}
    assert "bundle" not in make_input("low").model_dump()


def test_trigger_rules_load_from_the_policy_and_bad_ones_fail_at_load(tmp_path: Path) -> None:
    doc = yaml.safe_load((ROOT / "config" / "policy.yaml").read_text())
    doc["live"]["triggers"] = [
        {
            "name": "repeated",
            "min_severity": "sev2",
            "count": 3,
            "within_days": 30,
            "action": "open_review",
        },
        {
            "name": "drift",
            "label": "drift",
            "value": "true",
            "action": "require_material_change",
            "deadline_days": 14,
        },
    ]
    doc["live"]["alert_severity"] = {"label": "priority", "values": {"p1": "sev1"}}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    loaded = policy.load_policy(path)
    assert [t.action for t in loaded.pin(RiskTier.LOW).live.triggers or []] == [
        TriggerAction.OPEN_REVIEW,
        TriggerAction.REQUIRE_MATERIAL_CHANGE,
    ]
    doc["live"]["triggers"] = [{"name": "x", "label": "drift", "action": "require_material_change"}]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(policy.ConfigFileError, match="deadline_days"):
        policy.load_policy(path)


def test_what_a_trigger_counts() -> None:
    rule = TriggerRule(
        name="r", min_severity=Severity.SEV2, label="drift", action=TriggerAction.OPEN_REVIEW
    )
    assert triggers.matches(rule, Severity.SEV1, {"drift": "yes"})
    assert not triggers.matches(rule, Severity.SEV3, {"drift": "yes"})
    assert not triggers.matches(rule, Severity.SEV1, {})
