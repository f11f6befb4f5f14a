"""Process-wide resources (made once in the lifespan) and per-request dependencies."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.api.auth import authenticate
from services.api.oidc import looks_like_jwt
from services.api.problems import Problem
from services.commands.gateway import UseCaseGateway
from services.commands.idempotency import body_document, request_sha256
from services.commands.service import CommandService, Sender, workflow_id
from services.controls.catalog import LoadedCatalog
from services.settings import Settings
from services.store.models import IDEMPOTENCY_KEY_MAX
from services.store.registry import RegistryRepository
from workflows.ids import use_case_workflow_id
from workflows.model import Channel
from workflows.policy import Directory, LoadedPolicy, Person

IDEMPOTENCY_KEY = re.compile(rf"^[A-Za-z0-9._:@-]{{1,{IDEMPOTENCY_KEY_MAX}}}$")


@dataclass
class Resources:
    settings: Settings
    policy: LoadedPolicy
    directory: Directory
    gateway: UseCaseGateway
    commands: CommandService
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    catalog: LoadedCatalog | None = None  # the control catalog (config/controls.yaml)


# Dependencies that do no I/O are ``async def`` so FastAPI calls them inline instead of in a
# thread per request (measured: ~40% of the API's CPU for a refused decision).
async def resources(request: Request) -> Resources:
    res: Resources = request.app.state.resources
    return res


Res = Annotated[Resources, Depends(resources)]


async def commands(res: Res) -> CommandService:
    return res.commands


Commands = Annotated[CommandService, Depends(commands)]


async def current_person(request: Request, res: Res) -> Person:
    production = res.settings.env == "production"
    token = request.headers.get("authorization", "").partition(" ")[2].strip()
    if looks_like_jwt(token):
        # verifying may fetch the identity provider's keys (blocking I/O): keep it off the loop
        return await run_in_threadpool(authenticate, request, res.directory, production=production)
    return authenticate(request, res.directory, production=production)


CurrentPerson = Annotated[Person, Depends(current_person)]


async def api_sender(
    request: Request,
    person: CurrentPerson,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Sender:
    """The caller of a command: the token's person, the request's idempotency key, and the
    digest of the request the key is bound to (route, run, body as received, If-Match)."""
    if idempotency_key is None:
        return Sender(person.id, Channel.API)
    if not IDEMPOTENCY_KEY.match(idempotency_key):
        raise Problem(
            422,
            f"Idempotency-Key: 1-{IDEMPOTENCY_KEY_MAX} characters of A-Z a-z 0-9 . _ : @ -",
            code="invalid-request",
        )
    return Sender(person.id, Channel.API, idempotency_key, await request_digest(request))


async def request_digest(request: Request) -> str:
    """``request_sha256`` of this request. The run is named by its id whether the path spelled
    its key or its id, so both spellings are one request."""
    route = request.scope.get("route")
    template = getattr(route, "path_format", request.url.path)
    params = dict(request.path_params)
    if "use_case_id" in params:
        params["use_case_id"] = use_case_workflow_id(params["use_case_id"])
    # FastAPI has read the body for the route already; this is its cached copy
    body = body_document(await request.body())
    return request_sha256(
        f"{request.method} {template}", params, body, if_match=request.headers.get("if-match")
    )


ApiSender = Annotated[Sender, Depends(api_sender)]


async def db_session(res: Res) -> AsyncIterator[AsyncSession]:
    """One session per request: committed on success, rolled back on error."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    try:
        async with res.sessionmaker() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
    except (OperationalError, DBAPIError, OSError) as exc:
        raise Problem(
            503, f"the database is unreachable: {exc.__class__.__name__}", code="db-unavailable"
        ) from None


DbSession = Annotated[AsyncSession, Depends(db_session)]


# --------------------------------------------------------------------------- need-to-know reads
# Every read of one run names it through one of these, so a run the caller may not read answers
# exactly as an unknown one does (404), before anything of it is read.


async def readable_use_case(use_case_id: str, person: CurrentPerson, commands: Commands) -> str:
    """The use case's run id, once the caller may read it (its pinned roster, from Temporal)."""
    wid = workflow_id(use_case_id)
    await commands.readable(wid, person)
    return wid


async def readable_change(
    use_case_id: str, change_id: str, person: CurrentPerson, commands: Commands
) -> str:
    """A change request's run id, once the caller may read it (its use case's roster)."""
    wid = workflow_id(use_case_id, change_id)
    await commands.readable(wid, person)
    return wid


async def readable_record(
    use_case_id: str, person: CurrentPerson, commands: Commands, session: DbSession
) -> str:
    """The run id of a ledger read, once the caller may read it. The ledger answers from the
    store alone (long after Temporal forgot the run), so the roster is the registry's copy."""
    wid = use_case_workflow_id(use_case_id)
    roster = await RegistryRepository(session).roster(wid)
    if not commands.may_read(roster, person):
        raise Problem(404, f"no use case '{wid}'", code="not-found")
    return wid


ReadableUseCase = Annotated[str, Depends(readable_use_case)]
ReadableChange = Annotated[str, Depends(readable_change)]
ReadableRecord = Annotated[str, Depends(readable_record)]
