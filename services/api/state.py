"""State responses: every body that is a run's state carries the ``ETag`` of its evidence.

The ETag is that of the evidence set an approval would bind to now
(``services.commands.evidence.state_etag``): an approver who reviewed this state approves
with ``If-Match: <ETag>``, and the approval binds to exactly what they saw.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import Header, Response

from services.commands.evidence import state_etag
from workflows.model import UseCaseView

View = TypeVar("View", bound=UseCaseView)

# the header an approval names what it saw with (a decision route's parameter)
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=1000,
        description="the ETag of the state whose evidence the approver reviewed",
    ),
]
SEEN_RESPONSES: dict[int | str, dict[str, Any]] = {
    412: {"description": "If-Match is not the current evidence's ETag (the current set inside)"},
    428: {"description": "an approval naming neither evidence_digests nor If-Match"},
}


def with_etag(response: Response, view: View) -> View:
    """``view``, with its ``ETag`` set on ``response``."""
    response.headers["ETag"] = state_etag(view)
    return view


__all__ = ["SEEN_RESPONSES", "IfMatch", "with_etag"]
