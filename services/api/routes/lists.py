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


def _list_route(path: str, read: Any, model: type[Any], doc: str) -> None:
    """``GET /{use_case_id}/<path>`` (operation ``list_<path>``): a page of ``read``."""

    async def endpoint(
        wid: ReadableRecord,
        session: DbSession,
        limit: Limit = lists.DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Any:
        page = await _page(read, session, wid, limit, cursor)
        return model(items=page.items, next_cursor=page.next_cursor)

    endpoint.__name__ = endpoint.__qualname__ = f"list_{path}"
    endpoint.__doc__ = doc
    router.add_api_route(
        f"/{{use_case_id}}/{path}",
        endpoint,
        methods=["GET"],
        response_model=model,
        responses=RESPONSES,
        name=endpoint.__name__,
    )


_list_route(
    "incidents",
    lists.incidents_page,
    IncidentPage,
    "Every incident reported on the use case, oldest first.",
)
_list_route(
    "evidence",
    lists.evidence_page,
    EvidencePage,
    "Every evidence item of the use case's run, in the order submitted.",
)
_list_route(
    "changes",
    lists.changes_page,
    ChangePage,
    "Every change request of the use case in the order raised, each with its status.",
)


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


HistoryLimit = Annotated[int | None, Query(ge=1, le=lists.MAX_LIMIT)]


async def history(
    commands: CommandService,
    session: AsyncSession,
    wid: str,
    limit: int | None,
    cursor: str | None,
    response: Response,
) -> list[HistoryEvent]:
    """``GET …/history`` of a use case or a change: the whole history, or with ``limit`` or
    ``cursor`` one page of it from the ledger."""
    if limit is None and cursor is None:
        return await whole_history(commands, session, wid)
    return await history_page(session, wid, limit, cursor, response)


__all__ = ["Cursor", "HistoryLimit", "history", "history_page", "router", "whole_history"]
