"""Identifiers Slack echoes back to us: action ids, view callback ids, input block ids."""

from __future__ import annotations

from enum import StrEnum

from workflows.model import Decision

SLASH_COMMAND = "/releasegate"


class ActionId(StrEnum):
    """Buttons on a gate card."""

    APPROVE = "gate_approve"
    REQUEST_CHANGES = "gate_request_changes"
    REJECT = "gate_reject"

    @property
    def decision(self) -> Decision:
        return {
            ActionId.APPROVE: Decision.APPROVE,
            ActionId.REQUEST_CHANGES: Decision.REQUEST_CHANGES,
            ActionId.REJECT: Decision.REJECT,
        }[self]


class CallbackId(StrEnum):
    """Modals."""

    DECISION_COMMENT = "gate_decision_comment"
    START_USE_CASE = "start_use_case"


class InputId(StrEnum):
    """Input blocks (block id and element action id are the same string)."""

    COMMENT = "comment"
    KEY = "key"
    TITLE = "title"
    SUMMARY = "summary"
    RISK_TIER = "risk_tier"
    BUSINESS_OWNER = "business_owner"
    TECHNICAL_OWNER = "technical_owner"
    OPERATIONS_OWNER = "operations_owner"
    RISK_APPROVERS = "risk_approvers"
    ESCALATION_OWNER = "escalation_owner"
    STOP_AUTHORITY = "stop_authority"
    SLACK_CHANNEL = "slack_channel"


GATE_ACTIONS_BLOCK = "gate_actions"
CARD_EVENT_TYPE = "releasegate_gate_card"
