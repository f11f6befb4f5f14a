"""Reading what people typed into our modals (pure: view state in, command or errors out).

Errors come back keyed by input block id, the shape Slack's ``response_action: errors`` takes,
so a bad submission is refused inside the modal before anything is acknowledged as done.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from services.commands.errors import InvalidOwners
from services.commands.start import owners_of, staffed_roster
from services.slack.actions import InputId
from workflows import policy
from workflows.ids import key_refusal
from workflows.model import UseCaseCreate

Errors = dict[str, str]


def _element(values: dict[str, Any], block: InputId) -> dict[str, Any]:
    found = values.get(block.value, {}).get(block.value)
    return found if isinstance(found, dict) else {}


def text_of(values: dict[str, Any], block: InputId) -> str:
    value = _element(values, block).get("value")
    return value.strip() if isinstance(value, str) else ""


def choice_of(values: dict[str, Any], block: InputId) -> str:
    element = _element(values, block)
    selected = element.get("selected_option")
    if isinstance(selected, dict):
        return str(selected.get("value", ""))
    return text_of(values, block)  # a plain text input stands in for very long lists


def choices_of(values: dict[str, Any], block: InputId) -> list[str]:
    element = _element(values, block)
    selected = element.get("selected_options")
    if isinstance(selected, list):
        return [str(o.get("value", "")) for o in selected if isinstance(o, dict)]
    return [part.strip() for part in text_of(values, block).split(",") if part.strip()]


def state_values(view: dict[str, Any]) -> dict[str, Any]:
    values = (view.get("state") or {}).get("values")
    return values if isinstance(values, dict) else {}


def comment_of(view: dict[str, Any]) -> str:
    return text_of(state_values(view), InputId.COMMENT)


_OWNER_FIELDS = {
    "business_owner": InputId.BUSINESS_OWNER,
    "technical_owner": InputId.TECHNICAL_OWNER,
    "operations_owner": InputId.OPERATIONS_OWNER,
    "risk_approvers": InputId.RISK_APPROVERS,
    "escalation_owner": InputId.ESCALATION_OWNER,
    "stop_authority": InputId.STOP_AUTHORITY,
}


_BLOCKS = {i.value for i in InputId}


def _block_for(loc: tuple[Any, ...]) -> str:
    """The input block a validation error belongs to (the key field when none fits)."""
    for name in (str(p) for p in loc):
        if name in _OWNER_FIELDS:
            return _OWNER_FIELDS[name].value
        if name in _BLOCKS:
            return name
    return InputId.KEY.value


def start_request(
    view: dict[str, Any],
    delivery_lead: str,
    directory: policy.Directory,
    loaded_policy: policy.LoadedPolicy,
) -> UseCaseCreate | Errors:
    """The start modal's submission as a ``UseCaseCreate``, or errors for the modal.

    The owners are checked with the same functions the command layer's start uses (everyone in
    the directory, every gate staffable after separation of duties), so a doomed request is
    refused in the modal instead of after Slack has closed it.
    """
    values = state_values(view)
    raw: dict[str, Any] = {
        "key": text_of(values, InputId.KEY),
        "title": text_of(values, InputId.TITLE),
        "summary": text_of(values, InputId.SUMMARY),
        "risk_tier": choice_of(values, InputId.RISK_TIER),
        "owners": {
            "business_owner": choice_of(values, InputId.BUSINESS_OWNER),
            "technical_owner": choice_of(values, InputId.TECHNICAL_OWNER),
            "operations_owner": choice_of(values, InputId.OPERATIONS_OWNER),
            "risk_approvers": choices_of(values, InputId.RISK_APPROVERS),
            "escalation_owner": choice_of(values, InputId.ESCALATION_OWNER),
            "stop_authority": choices_of(values, InputId.STOP_AUTHORITY) or None,
        },
    }
    channel = _element(values, InputId.SLACK_CHANNEL).get("selected_conversation")
    if isinstance(channel, str) and channel:
        raw["slack_channel"] = channel
    try:
        body = UseCaseCreate.model_validate(raw)
    except ValidationError as exc:
        errors: Errors = {}
        for err in exc.errors():
            errors.setdefault(_block_for(tuple(err.get("loc", ()))), str(err.get("msg", "")))
        return errors
    reason = key_refusal(body.key)  # the run id would alias another run's (workflows.ids)
    if reason is not None:
        return {InputId.KEY.value: f"key {reason}"}
    try:
        staffed_roster(owners_of(body, delivery_lead), loaded_policy.pin(body.risk_tier), directory)
    except InvalidOwners as exc:
        block = _OWNER_FIELDS.get(exc.field or "", InputId.RISK_APPROVERS).value
        return {block: exc.detail}
    return body
