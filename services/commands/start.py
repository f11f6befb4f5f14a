"""Starting a run, as pure functions: owners, the workflow input, search attributes, details.

Shared by the gateway's start and the Slack start modal, so a request is judged the same way
whichever door it came through.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from temporalio.common import SearchAttributePair, TypedSearchAttributes

from services.commands.errors import CommandRefused, InvalidOwners
from services.commands.storable import refuse_unstorable
from services.hook_targets import NO_HOOKS, HookAllowList, HookTargetRefused
from workflows import policy, search
from workflows.ids import key_refusal, use_case_workflow_id
from workflows.model import (
    GENERATION,
    Deputies,
    Hooks,
    Owners,
    PinnedCatalog,
    PinnedPolicy,
    Refusal,
    Role,
    Stage,
    UseCaseCreate,
    UseCaseInput,
)


class PinsCatalog(Protocol):
    """The control catalog a start pins (``services.controls.catalog.LoadedCatalog``)."""

    def pin(self) -> PinnedCatalog: ...


@dataclass(frozen=True)
class StartPlan:
    """Everything a start sends to Temporal, decided before anything is sent."""

    workflow_id: str
    input: UseCaseInput
    request_sha256: str

    @property
    def roster(self) -> dict[Role, list[str]]:
        return self.input.roster


def request_digest(body: UseCaseCreate, delivery_lead: str) -> str:
    """What makes a repeated start "the same": the body and who asked."""
    dumped = body.model_dump(mode="json")
    for added in ("eu_ai_act", "bundle"):
        if dumped.get(added) is None:
            # a field added later: a body without it digests as it did before it existed
            dumped.pop(added, None)
    doc = {"delivery_lead": delivery_lead, "body": dumped}
    return hashlib.sha256(
        json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def owners_of(body: UseCaseCreate, delivery_lead: str) -> Owners:
    """The run's owners: the caller leads delivery; stop authority defaults per policy."""
    o = body.owners
    stop_authority = (
        list(o.stop_authority)
        if o.stop_authority
        else policy.default_stop_authority(o.business_owner, o.technical_owner, o.operations_owner)
    )
    return Owners(
        delivery_lead=delivery_lead,
        business_owner=o.business_owner,
        technical_owner=o.technical_owner,
        operations_owner=o.operations_owner,
        risk_approvers=list(o.risk_approvers),
        escalation_owner=o.escalation_owner,
        stop_authority=stop_authority,
    )


def staffed_roster(
    owners: Owners,
    pinned: PinnedPolicy,
    directory: policy.Directory,
    deputies: Deputies | None = None,
) -> dict[Role, list[str]]:
    """Role -> people, groups resolved; refused when a gate cannot be staffed under the tier's
    separation-of-duties rules (``InvalidOwners`` naming the gate and seat)."""
    try:
        roster = policy.resolve_roster(owners, directory)
        if pinned.break_glass is not None:
            # pinned like every group: who may break glass on this run is fixed at its start
            roster[Role.BREAK_GLASS] = sorted(directory.members(pinned.break_glass.group))
        in_force = policy.active_deputies(deputies or {}, datetime.now(UTC))
        policy.check_staffing(pinned, roster, in_force)
    except policy.PolicyViolation as exc:
        raise InvalidOwners(exc.detail) from None
    return roster


def named_deputies(body: UseCaseCreate, directory: policy.Directory) -> Deputies:
    """The deputies a start names, groups resolved (``InvalidOwners`` for unknown people)."""
    try:
        return policy.resolve_deputies(body.owners.deputies, directory)
    except policy.PolicyViolation as exc:
        raise InvalidOwners(exc.detail) from None


def check_key(key: str) -> None:
    """Refuse a key whose run id could alias another run's (``CommandRefused(INVALID)``
    naming ``key``): see ``workflows.ids``. Checked here as well as by the request model, so
    no door can start a run under an id another run owns."""
    reason = key_refusal(key)
    if reason is not None:
        raise CommandRefused(Refusal.INVALID, f"key: {reason}")


def check_hooks(hooks: Hooks | None, allowed: HookAllowList) -> None:
    """Refuse a hook URL the operator's allow-list does not cover (``CommandRefused(INVALID)``
    naming the field). Static: the worker resolves and checks the host again at each call."""
    if hooks is None:
        return
    for field, url in (("deploy_url", hooks.deploy_url), ("rollback_url", hooks.rollback_url)):
        if url is None:
            continue
        try:
            allowed.target(url)
        except HookTargetRefused as exc:
            raise CommandRefused(Refusal.INVALID, f"hooks.{field}: {exc}") from None


def plan_start(
    body: UseCaseCreate,
    delivery_lead: str,
    loaded_policy: policy.LoadedPolicy,
    directory: policy.Directory,
    *,
    allowed_hooks: HookAllowList = NO_HOOKS,
    catalog: PinsCatalog | None = None,
) -> StartPlan:
    check_key(body.key)
    refuse_unstorable(body)
    check_hooks(body.hooks, allowed_hooks)
    owners = owners_of(body, delivery_lead)
    pinned = loaded_policy.pin(body.risk_tier)
    digest = request_digest(body, delivery_lead)
    deputies = named_deputies(body, directory)
    inp = UseCaseInput(
        key=body.key,
        title=body.title,
        summary=body.summary,
        risk_tier=body.risk_tier,
        owners=owners,
        roster=staffed_roster(owners, pinned, directory, deputies),
        policy=pinned,
        slack_channel=body.slack_channel,
        request_sha256=digest,
        hooks=body.hooks,
        deputies=deputies,
        controls=catalog.pin() if catalog is not None else None,
        eu_ai_act=body.eu_ai_act,
        bundle=body.bundle,
        generation=GENERATION,
    )
    return StartPlan(use_case_workflow_id(body.key), inp, digest)


def facts_memo(plan: StartPlan) -> dict[str, Any]:
    """The memo the gateway reads back as ``RunFacts`` (what a run pinned at start)."""
    inp = plan.input
    return {
        "request_sha256": plan.request_sha256,
        "tier": inp.risk_tier.value,
        "policy_sha256": inp.policy.sha256,
        "roster": {r.value: ids for r, ids in inp.roster.items()},
        "deputies": {r.value: [d.person for d in ds] for r, ds in inp.deputies.items()},
    }


def search_attributes(inp: UseCaseInput) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(search.USE_CASE_KEY, inp.key),
            SearchAttributePair(search.STAGE, Stage.SCOPING.value),
            SearchAttributePair(search.RISK_TIER, inp.risk_tier.value),
            SearchAttributePair(search.BUSINESS_OWNER, inp.owners.business_owner),
        ]
    )


def static_summary(inp: UseCaseInput) -> str:
    return f"{inp.title} ({inp.key})"


def static_details(inp: UseCaseInput) -> str:
    """The Temporal UI's details panel: which use case, who owns it, which policy."""
    o = inp.owners
    return (
        f"**Use case:** {inp.title}  \n**Key:** {inp.key} · **Risk tier:** "
        f"{inp.risk_tier.value}  \n**Delivery lead:** {o.delivery_lead} · **Business "
        f"owner:** {o.business_owner} · **Technical owner:** {o.technical_owner}  \n"
        f"**Policy:** {inp.policy.version} ({inp.policy.sha256[:12]})\n\n{inp.summary}"
    )


__all__ = [
    "StartPlan",
    "check_hooks",
    "check_key",
    "facts_memo",
    "owners_of",
    "plan_start",
    "request_digest",
    "search_attributes",
    "staffed_roster",
    "static_details",
    "static_summary",
]
