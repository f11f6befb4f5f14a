"""``idempotency_keys``: a scope is bound to the first request digest, race-safely, on both
backends; old bindings can be pruned."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.deps import IDEMPOTENCY_KEY
from services.commands.idempotency import StoredIdempotencyKeys
from services.commands.service import Sender
from services.store.db import session_scope
from services.store.idempotency import RETENTION, IdempotencyRepository
from services.store.models import IDEMPOTENCY_KEY_MAX, IDEMPOTENCY_SCOPE_MAX
from tests.store.factories import T0
from workflows import limits
from workflows.model import Channel, CommandName

Sessions = async_sessionmaker[AsyncSession]
A, B = "a" * 64, "b" * 64


async def test_the_first_digest_is_the_one_bound(sessionmaker: Sessions) -> None:
    keys = StoredIdempotencyKeys(sessionmaker)
    assert await keys.bound("decide:rita:k-1") is None
    assert await keys.bind("decide:rita:k-1", A) == A
    assert await keys.bind("decide:rita:k-1", A) == A  # the same request again
    assert await keys.bind("decide:rita:k-1", B) == A  # another request: still the first
    assert await keys.bound("decide:rita:k-1") == A
    # another scope (caller, command) is another binding
    assert await keys.bind("decide:raj:k-1", B) == B
    assert await keys.bind("cancel:rita:k-1", B) == B


async def test_concurrent_requests_with_one_key_bind_exactly_one_digest(
    sessionmaker: Sessions,
) -> None:
    keys = StoredIdempotencyKeys(sessionmaker)
    digests = [f"{n:064x}" for n in range(8)]
    bound = await asyncio.gather(*(keys.bind("decide:rita:race", d) for d in digests))
    assert len(set(bound)) == 1
    assert bound[0] in digests
    # exactly one request sees its own digest bound: that one proceeds, the rest are refused
    assert sum(b == d for b, d in zip(bound, digests, strict=True)) == 1


async def test_a_bind_waits_for_an_uncommitted_one_and_sees_it(sessionmaker: Sessions) -> None:
    """The second of two overlapping transactions neither fails nor binds its own digest: it
    waits for the first to commit and reads the first's digest."""
    async with sessionmaker() as first:
        assert await IdempotencyRepository(first).bind("decide:rita:overlap", A) == A
        second = asyncio.create_task(
            StoredIdempotencyKeys(sessionmaker).bind("decide:rita:overlap", B)
        )
        await asyncio.sleep(0.3)  # the second is now waiting on the first's row (or lock)
        await first.commit()
    assert await second == A


async def test_old_bindings_can_be_pruned(sessionmaker: Sessions) -> None:
    async with session_scope(sessionmaker) as session:
        repo = IdempotencyRepository(session)
        await repo.bind("decide:rita:old", A, at=T0)
        await repo.bind("decide:rita:new", B, at=T0 + RETENTION)
    async with session_scope(sessionmaker) as session:
        pruned = await IdempotencyRepository(session).prune(now=T0 + RETENTION + timedelta(hours=1))
    assert pruned == 1
    keys = StoredIdempotencyKeys(sessionmaker)
    assert await keys.bound("decide:rita:old") is None
    assert await keys.bound("decide:rita:new") == B


def test_the_longest_scope_fits_its_column() -> None:
    key = "k" * IDEMPOTENCY_KEY_MAX
    assert IDEMPOTENCY_KEY.match(key)
    assert not IDEMPOTENCY_KEY.match(key + "k")
    for command in CommandName:
        scope = Sender("p" * limits.PERSON_ID_MAX, Channel.API, key).update_id(command)
        assert len(scope) <= IDEMPOTENCY_SCOPE_MAX, command
