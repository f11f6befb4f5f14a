"""The lists that grow with a run's life, a page at a time: incidents, evidence, changes, history.

A run's state (``GET /v1/use-cases/{id}`` and every command's answer) carries only the latest
few of each beside their counts; these pages hold them all, read from the ledger
(``services.store.lists``) with no Temporal call. Need-to-know as for the ledger: a run the
caller may not read is a 404 (``ReadableRecord``). The pages follow the run by its ledger
writes, a moment after a command is answered.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.deps import DbSession, ReadableRecord
from services.api.problems import Problem
from services.api.schemas import ChangePage, EvidencePage, IncidentPage
from services.commands.service import CommandService
from services.store import lists
from workflows.model import EventKind, HistoryEvent

router = APIRouter(prefix="/v1/use-cases", tags=["lists"])

Limit = Annotated[int, Query(ge=1, le=lists.MAX_LIMIT, description="items per page")]
Cursor = Annotated[str | None, Query(max_length=500, description="the previous page's next_cursor")]
RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown use case, or one the caller may not read"},
    422: {"description": "A cursor this list did not hand out, or a limit out of range"},
    503: {"description": "The database is unreachable, or the run's ledger is blocked"},
}


async def _page(call: Any, session: AsyncSession, wid: str, limit: int, cursor: str | None) -> Any:
    try:
        return await call(session, wid, limit=limit, cursor=cursor)
    except lists.InvalidCursor as exc:
        raise Problem(422, f"cursor: {exc}", code="invalid-request") from None
    except lists.UnknownRun:
        raise Problem(404, f"no use case '{wid}'", code="not-found") from None


@router.get("/{use_case_id}/incidents", response_model=IncidentPage, responses=RESPONSES)
async def list_incidents(
    wid: ReadableRecord,
    session: DbSession,
    limit: Limit = lists.DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> IncidentPage:
    """Every incident reported on the use case, oldest first."""
    page = await _page(lists.incidents_page, session, wid, limit, cursor)
    return IncidentPage(items=page.items, next_cursor=page.next_cursor)


@router.get("/{use_case_id}/evidence", response_model=EvidencePage, responses=RESPONSES)
async def list_evidence(
    wid: ReadableRecord,
    session: DbSession,
    limit: Limit = lists.DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> EvidencePage:
    """Every evidence item of the use case's run, in the order submitted."""
    page = await _page(lists.evidence_page, session, wid, limit, cursor)
    return EvidencePage(items=page.items, next_cursor=page.next_cursor)


@router.get("/{use_case_id}/changes", response_model=ChangePage, responses=RESPONSES)
async def list_changes(
    wid: ReadableRecord,
    session: DbSession,
    limit: Limit = lists.DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> ChangePage:
    """Every change request of the use case in the order raised, each with its status."""
    page = await _page(lists.changes_page, session, wid, limit, cursor)
    return ChangePage(items=page.items, next_cursor=page.next_cursor)


async def whole_history(
    commands: CommandService, session: AsyncSession, wid: str
) -> list[HistoryEvent]:
    """A run's whole history, as ``GET …/history`` always answered. A run that continued as
    new holds only its latest events (``workflows.bounded``): the older ones are the ledger's."""
    events = await commands.history(wid)
    if not events or events[0].kind == EventKind.RUN_STARTED:
        return events
    # one fact, one event: the run's events are the last len(events) of its event_count
    first_held = (await commands.state(wid)).event_count - len(events) + 1
    return [*await lists.history_until(session, wid, first_held), *events]


async def history_page(
    session: AsyncSession, wid: str, limit: int | None, cursor: str | None, response: Response
) -> list[HistoryEvent]:
    """A page of a run's history from the ledger, in the shape of the whole history (a list);
    the next page's cursor is in ``X-Next-Cursor`` and a ``Link: <…>; rel="next"`` header."""
    page = await _page(lists.history_page, session, wid, limit or lists.DEFAULT_LIMIT, cursor)
    if page.next_cursor is not None:
        response.headers["X-Next-Cursor"] = page.next_cursor
        response.headers["Link"] = (
            f'<?limit={limit or lists.DEFAULT_LIMIT}&cursor={page.next_cursor}>; rel="next"'
        )
    items: list[HistoryEvent] = page.items
    return items


__all__ = ["Cursor", "history_page", "router", "whole_history"]
