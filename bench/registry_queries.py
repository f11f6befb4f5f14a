"""Registry query latency at scale: list (filters, cursor) and the approvals inbox.

Seeds 100,000 registry rows with a realistic shape (about 30 people, three tiers, every
stage, ~15% waiting on approvers) into a throwaway SQLite file and a throwaway PostgreSQL
database, both migrated with the real Alembic revisions, then times each query through
``RegistryRepository`` (one session per call, as the API does) and prints p50/p99.

    .venv/bin/python bench/registry_queries.py [--rows 100000] [--iterations 300]
        [--postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432/test] [--skip-postgres]

Exit status 1 when any p99 exceeds the target (100 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker  # noqa: E402

from services.store.db import make_engine, make_sessionmaker, session_scope  # noqa: E402
from services.store.migrate import upgrade_head  # noqa: E402
from services.store.models import PendingApproval, RosterEntry, UseCase, UseCasePerson  # noqa: E402
from services.store.registry import (  # noqa: E402
    RegistryRepository,
    pending_of,
    people_of,
    roster_of,
)
from services.store.tempdb import (  # noqa: E402
    temporary_postgres_database,
    temporary_sqlite_database,
)
from workflows.activities import RegistryRow  # noqa: E402
from workflows.ids import use_case_workflow_id  # noqa: E402
from workflows.model import GATE_STAGES, TERMINAL_STAGES  # noqa: E402

TARGET_P99_MS = 100.0
PEOPLE = [f"person-{n:02d}" for n in range(1, 31)]
TIERS = {"low": 45, "medium": 35, "high": 20}
STAGE_WEIGHTS = {
    "scoping": 8,
    "specification": 7,
    "implementation": 12,
    "validation": 8,
    "scope_approval": 2,
    "risk_signoff": 4,
    "ops_handoff": 3,
    "go_live": 2,
    "live": 33,
    "stalled": 2,
    "suspended": 2,
    "rejected": 4,
    "cancelled": 7,
    "retired": 6,
}
CHUNK = 5_000


# --------------------------------------------------------------------------- data


def generate_rows(count: int, rng: random.Random) -> Iterator[RegistryRow]:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    stages, stage_weights = zip(*STAGE_WEIGHTS.items(), strict=True)
    tiers, tier_weights = zip(*TIERS.items(), strict=True)
    for n in range(count):
        stage = rng.choices(stages, stage_weights)[0]
        business, technical, operations, escalation, lead = rng.sample(PEOPLE, 5)
        gate: str | None = None
        if stage in GATE_STAGES:
            gate = stage
        elif stage == "live" and rng.random() < 0.12:
            gate = rng.choice(["change_approval", "periodic_review"])
        elif stage == "suspended" and rng.random() < 0.5:
            gate = "resume_approval"
        updated_at = now - timedelta(seconds=rng.uniform(0, 365 * 86400))
        yield RegistryRow(
            workflow_id=use_case_workflow_id(f"bench-{n:06d}"),
            key=f"bench-{n:06d}",
            title=f"Bench use case {n}",
            risk_tier=rng.choices(tiers, tier_weights)[0],
            stage=stage,
            closed=stage in TERMINAL_STAGES,
            business_owner=business,
            owners={
                "delivery_lead": lead,
                "business_owner": business,
                "technical_owner": technical,
                "operations_owner": operations,
                "risk_approvers": rng.sample(PEOPLE, rng.randint(1, 2)),
                "escalation_owner": escalation,
                "stop_authority": [business, technical, operations],
            },
            pending_approvers=rng.sample(PEOPLE, rng.randint(1, 3)) if gate else [],
            gate=gate,
            quorum=rng.randint(1, 2) if gate else None,
            approvals=[],
            due_at=updated_at + timedelta(days=rng.uniform(1, 10)) if gate else None,
            round=rng.randint(1, 3),
            updated_at=updated_at,
            event_id=rng.randint(1, 200),
        )


async def seed(engine: AsyncEngine, rows: list[RegistryRow]) -> None:
    """Bulk insert (executemany), the same rows and side-table rows ``upsert`` would write."""
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        async with engine.begin() as connection:
            await connection.execute(insert(UseCase), [r.model_dump() for r in chunk])
            await connection.execute(
                insert(UseCasePerson),
                [
                    {"workflow_id": r.workflow_id, "person_id": person, "role": role}
                    for r in chunk
                    for person, role in people_of(r)
                ],
            )
            # no ledger here: each run's roster is the people its owners block names
            await connection.execute(
                insert(RosterEntry),
                [
                    {"workflow_id": r.workflow_id, "person_id": person, "role": role}
                    for r in chunk
                    for person, role in roster_of(r, None)
                ],
            )
            pending = [
                {"workflow_id": r.workflow_id, "person_id": person}
                for r in chunk
                for person in pending_of(r)
            ]
            if pending:
                await connection.execute(insert(PendingApproval), pending)


# --------------------------------------------------------------------------- timing


@dataclass
class Timing:
    query: str
    samples_ms: list[float]

    @property
    def p50(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p99(self) -> float:
        return statistics.quantiles(self.samples_ms, n=100, method="inclusive")[98]


Query = Callable[[RegistryRepository, random.Random], Awaitable[Any]]


async def _page_two(repo: RegistryRepository, **filters: Any) -> Any:
    _, cursor = await repo.list(limit=50, **filters)
    assert cursor is not None
    started = time.perf_counter()
    await repo.list(limit=50, cursor=cursor, **filters)
    return time.perf_counter() - started  # only page 2 is timed


# "all": a member of a reader group (every run); "own": anyone else (the runs naming them)
QUERIES: dict[str, Query] = {
    "list all (no filter)": lambda repo, rng: repo.list(visible_to=None, limit=50),
    "list all stage=": lambda repo, rng: repo.list(
        visible_to=None, stage=rng.choice(list(STAGE_WEIGHTS)), limit=50
    ),
    "list all risk_tier=": lambda repo, rng: repo.list(
        visible_to=None, risk_tier=rng.choice(list(TIERS)), limit=50
    ),
    "list all owner=": lambda repo, rng: repo.list(
        visible_to=None, owner=rng.choice(PEOPLE), limit=50
    ),
    "list all stage= owner=": lambda repo, rng: repo.list(
        visible_to=None, stage=rng.choice(list(STAGE_WEIGHTS)), owner=rng.choice(PEOPLE), limit=50
    ),
    "list all page 2": lambda repo, rng: _page_two(repo, visible_to=None),
    "list all page 2 owner=": lambda repo, rng: _page_two(
        repo, visible_to=None, owner=rng.choice(PEOPLE)
    ),
    "list own (no filter)": lambda repo, rng: repo.list(visible_to=rng.choice(PEOPLE), limit=50),
    "list own stage=": lambda repo, rng: repo.list(
        visible_to=rng.choice(PEOPLE), stage=rng.choice(list(STAGE_WEIGHTS)), limit=50
    ),
    "list own owner=": lambda repo, rng: repo.list(
        visible_to=rng.choice(PEOPLE), owner=rng.choice(PEOPLE), limit=50
    ),
    "list own page 2": lambda repo, rng: _page_two(repo, visible_to=rng.choice(PEOPLE)),
    "inbox pending_for": lambda repo, rng: repo.pending_for(rng.choice(PEOPLE), limit=100),
}


async def time_queries(
    sessionmaker: async_sessionmaker[AsyncSession], iterations: int, rng: random.Random
) -> list[Timing]:
    timings = []
    for name, query in QUERIES.items():
        samples = []
        for i in range(iterations + 10):
            started = time.perf_counter()
            async with session_scope(sessionmaker) as session:
                inner = await query(RegistryRepository(session), rng)
            elapsed = time.perf_counter() - started
            if isinstance(inner, float):  # a query that timed its own interesting part
                elapsed = inner
            if i >= 10:  # first calls warm caches and the connection pool
                samples.append(elapsed * 1000)
        timings.append(Timing(name, samples))
    return timings


async def bench_backend(
    label: str,
    database: AbstractAsyncContextManager[str],
    rows: list[RegistryRow],
    iterations: int,
    analyze: bool,
) -> list[Timing]:
    async with database as url:
        await upgrade_head(url)
        engine = make_engine(url)
        try:
            started = time.perf_counter()
            await seed(engine, rows)
            seeded = time.perf_counter() - started
            if analyze:
                async with engine.begin() as connection:
                    await connection.execute(text("ANALYZE"))
            print(f"{label}: seeded {len(rows):,} rows in {seeded:.1f} s", flush=True)
            return await time_queries(make_sessionmaker(engine), iterations, random.Random(7))
        finally:
            await engine.dispose()


def report(label: str, timings: list[Timing]) -> bool:
    ok = True
    print(f"\n{label}")
    print(f"  {'query':<26} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for t in timings:
        flag = "" if t.p99 <= TARGET_P99_MS else f"  > {TARGET_P99_MS:.0f} ms target"
        ok = ok and not flag
        print(f"  {t.query:<26} {t.p50:8.2f} {t.p99:8.2f} {max(t.samples_ms):8.2f}{flag}")
    return ok


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "RELEASEGATE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
        help="an existing database to create the throwaway benchmark database from",
    )
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument(
        "--sqlite-analyze",
        action="store_true",
        help="run ANALYZE on SQLite too (the service never does; off by default)",
    )
    args = parser.parse_args()

    rng = random.Random(42)
    rows = list(generate_rows(args.rows, rng))
    waiting = sum(1 for r in rows if pending_of(r)) / len(rows)
    print(f"{len(rows):,} rows, {len(PEOPLE)} people, {waiting:.1%} waiting on approvers")

    ok = True
    sqlite_timings = await bench_backend(
        "SQLite",
        temporary_sqlite_database(prefix="releasegate-bench-"),
        rows,
        args.iterations,
        analyze=args.sqlite_analyze,
    )
    ok = report("SQLite (aiosqlite, WAL)", sqlite_timings) and ok
    if not args.skip_postgres:
        # PostgreSQL's autovacuum analyses a freshly loaded table shortly after the load;
        # ANALYZE here just does that without waiting for it
        pg_timings = await bench_backend(
            "PostgreSQL",
            temporary_postgres_database(args.postgres_url, prefix="releasegate_bench"),
            rows,
            args.iterations,
            analyze=True,
        )
        ok = report("PostgreSQL (asyncpg)", pg_timings) and ok
    print(f"\ntarget p99 <= {TARGET_P99_MS:.0f} ms: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
