"""Planning a start (pure): owners, staffing, and what goes to Temporal with the run."""

from __future__ import annotations

from typing import Any

import pytest

from services.commands.errors import CommandRefused, InvalidOwners
from services.commands.start import (
    facts_memo,
    owners_of,
    plan_start,
    request_digest,
    search_attributes,
    static_details,
)
from services.hook_targets import HookAllowList
from tests.workflows.helpers import DIRECTORY, POLICY
from workflows import search
from workflows.model import Refusal, Role, UseCaseCreate


def body(**over: Any) -> UseCaseCreate:
    doc: dict[str, Any] = {
        "key": "fraud-alerts",
        "title": "Fraud alerts",
        "summary": "Flags suspicious payments",
        "risk_tier": "high",
        "owners": {
            "business_owner": "bo",
            "technical_owner": "tom",
            "operations_owner": "olga",
            "risk_approvers": ["group:risk-committee"],
            "escalation_owner": "eve",
        },
    }
    doc.update(over)
    return UseCaseCreate.model_validate(doc)


def test_the_caller_leads_delivery_and_stop_authority_defaults_to_the_owners() -> None:
    owners = owners_of(body(), "dana")
    assert owners.delivery_lead == "dana"
    assert owners.stop_authority == ["bo", "tom", "olga"]


def test_a_plan_pins_the_policy_and_the_resolved_roster() -> None:
    plan = plan_start(body(), "dana", POLICY, DIRECTORY)
    assert plan.workflow_id == "usecase-fraud-alerts"
    assert plan.input.policy.sha256 == POLICY.sha256
    assert plan.roster[Role.RISK_APPROVER] == ["raj", "rita"]
    assert plan.request_sha256 == request_digest(body(), "dana") != request_digest(body(), "tom")
    memo = facts_memo(plan)
    assert memo["tier"] == "high"
    assert memo["roster"]["risk_approver"] == ["raj", "rita"]
    attributes = {p.key.name: p.value for p in search_attributes(plan.input)}
    assert attributes[search.USE_CASE_KEY.name] == "fraud-alerts"
    assert attributes[search.STAGE.name] == "scoping"
    assert "Fraud alerts" in static_details(plan.input)
    assert POLICY.sha256[:12] in static_details(plan.input)


def test_owners_that_leave_a_gate_unstaffed_are_refused_naming_it() -> None:
    owners = {
        "business_owner": "bo",
        "technical_owner": "tom",
        "operations_owner": "olga",
        "risk_approvers": ["rita", "tom"],
        "escalation_owner": "eve",
    }
    with pytest.raises(InvalidOwners, match="risk_signoff") as refused:
        plan_start(body(owners=owners), "dana", POLICY, DIRECTORY)
    assert refused.value.field is None  # a gate's staffing, no one field


@pytest.mark.parametrize(
    ("owners", "field"),
    [
        ({"escalation_owner": "nobody-here"}, "escalation_owner"),
        ({"risk_approvers": ["rita", "nobody-here"]}, "risk_approvers"),
        ({"risk_approvers": ["group:no-such-group"]}, "risk_approvers"),
    ],
)
def test_an_unknown_owner_is_refused_naming_its_field(owners: dict[str, Any], field: str) -> None:
    """The field a start form marks comes with the refusal (``InvalidOwners.field``)."""
    named = {**body().owners.model_dump(exclude_none=True), **owners}
    with pytest.raises(InvalidOwners) as refused:
        plan_start(body(owners=named), "dana", POLICY, DIRECTORY)
    assert refused.value.field == field


ALLOWED = HookAllowList.parse("deploy.example")


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("deploy_url", "http://127.0.0.1:1/deploy"),
        ("rollback_url", "http://169.254.169.254/latest/meta-data/"),
        ("deploy_url", "http://10.0.0.5/deploy"),
        ("deploy_url", "https://unlisted.example/deploy"),
    ],
)
def test_a_hook_url_the_allow_list_does_not_cover_is_refused_naming_the_field(
    field: str, url: str
) -> None:
    with pytest.raises(CommandRefused) as caught:
        plan_start(body(hooks={field: url}), "dana", POLICY, DIRECTORY, allowed_hooks=ALLOWED)
    assert caught.value.refusal == Refusal.INVALID
    assert caught.value.detail.startswith(f"hooks.{field}: ")


def test_a_hook_url_on_an_allowed_host_is_planned() -> None:
    hooks = {"deploy_url": "https://deploy.example/go", "rollback_url": "https://deploy.example/no"}
    plan = plan_start(body(hooks=hooks), "dana", POLICY, DIRECTORY, allowed_hooks=ALLOWED)
    assert plan.input.hooks is not None
    assert plan.input.hooks.deploy_url == "https://deploy.example/go"
    with pytest.raises(CommandRefused):  # no allow-list given: no hook at all
        plan_start(body(hooks=hooks), "dana", POLICY, DIRECTORY)
