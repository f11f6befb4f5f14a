"""The custom search attributes every ReleaseGate run carries, defined once.

The workflow upserts them, the API and tests query them, and the launcher and the test
environment register exactly these names and types with the Temporal server.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from temporalio.common import SearchAttributeKey

USE_CASE_KEY: SearchAttributeKey[str] = SearchAttributeKey.for_keyword("UseCaseKey")
STAGE: SearchAttributeKey[str] = SearchAttributeKey.for_keyword("Stage")
RISK_TIER: SearchAttributeKey[str] = SearchAttributeKey.for_keyword("RiskTier")
BUSINESS_OWNER: SearchAttributeKey[str] = SearchAttributeKey.for_keyword("BusinessOwner")
PENDING_APPROVERS: SearchAttributeKey[Sequence[str]] = SearchAttributeKey.for_keyword_list(
    "PendingApprovers"
)
GATE_DUE_AT: SearchAttributeKey[datetime] = SearchAttributeKey.for_datetime("GateDueAt")

ALL: list[SearchAttributeKey[Any]] = [
    USE_CASE_KEY,
    STAGE,
    RISK_TIER,
    BUSINESS_OWNER,
    PENDING_APPROVERS,
    GATE_DUE_AT,
]
