"""The governed path through DBOS on PostgreSQL, against ReleaseGate over HTTP in the same sitting.

Drives N low-tier use cases through the same 8 calls as ``bench/gated_path.py`` two ways, C use
cases in flight at a time, in rounds whose order alternates:

- **http**: ReleaseGate over HTTP (the stack ``gated_path.py`` starts: Temporal dev server,
  worker, API, SQLite ledger);
- **dbos**: ``bench/dbos_app.py`` in this process on DBOS, its system database and its
  application tables in one PostgreSQL database made for the run (``--postgres-url`` names the
  server and an existing database to connect through; default ``$RELEASEGATE_TEST_POSTGRES_URL``
  or ``postgresql://postgres@127.0.0.1:5432/test``) and dropped afterwards.

Prints use cases/s and per-call p50/p99 of both, the CPU per use case of every process
(PostgreSQL: the backends of the run's database) and the ratio http / dbos (target ≥ 1.5).
Needs the benchmark extra (``pip install -e '.[bench]'``); without ``dbos`` it says so and
exits 0.

    .venv/bin/python bench/dbos_path.py [--n 100] [--concurrency 8] [--rounds 4] [--warmup 2C]
        [--postgres-url URL] [--temporal-address HOST:PORT] [--keep]

Exit status 1 when the ratio is below the target, 2 when a use case failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import run_on_stack  # noqa: E402
from bench.gated_path import (  # noqa: E402
    GATES,
    WORK_STAGES,
    HttpDriver,
    Phase,
    Recorder,
    Stack,
    Totals,
    command_line,
    cpu_seconds,
    digests_of,
    drained,
    drive,
    percentile,
    round_ratios,
    split,
)

TARGET_RATIO = 1.5  # http / dbos
DEFAULT_POSTGRES = os.environ.get(
    "RELEASEGATE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


class DbosDriver:
    """The 8 calls as DBOS workflows started and awaited from this process."""

    name = "dbos"

    async def _call(self, key: str, n: int, step: str, actor: str, evidence: list[str]) -> Any:
        from dbos import DBOS, SetWorkflowID

        from bench import dbos_app

        with SetWorkflowID(f"{key}-{n}"):  # one workflow per call: a repeat is the same one
            handle = await DBOS.start_workflow_async(dbos_app.command, key, step, actor, evidence)
        return await handle.get_result()

    async def run(self, key: str, n: int, rec: Recorder) -> str:
        await rec.time(self._call(key, 0, "create", "dana", []))
        for i, stage in enumerate(WORK_STAGES, start=1):
            evidence = digests_of(key) if stage == "validation" else []
            await rec.time(self._call(key, i, stage, "dana", evidence))
        state: dict[str, Any] = {}
        for i, (gate, actor) in enumerate(GATES, start=1 + len(WORK_STAGES)):
            state = await rec.time(self._call(key, i, gate, actor, []), decision=True)
        return str(state["stage"])


def postgres_cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


async def backends(engine: Any, database: str) -> list[int]:
    """The server processes serving the run's database (DBOS's pools and the app's)."""
    from sqlalchemy import text

    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": database}
        )
        return [int(r.pid) for r in rows]


async def benchmark(args: argparse.Namespace, stack: Stack, db_url: str) -> int:
    import httpx
    from dbos import DBOS, DBOSConfig
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    from bench import dbos_app

    url = make_url(db_url)
    engine = create_async_engine(url, pool_size=args.concurrency, max_overflow=args.concurrency)
    async with engine.begin() as conn:
        from sqlalchemy import text

        for statement in dbos_app.DDL:
            await conn.execute(text(statement))
    dbos_app.configure(engine)
    config: DBOSConfig = {
        "name": "releasegate-bench",
        "system_database_url": url.set(drivername="postgresql").render_as_string(
            hide_password=False
        ),
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()
    limits = httpx.Limits(
        max_connections=args.concurrency * 2, max_keepalive_connections=args.concurrency * 2
    )
    try:
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=60.0, limits=limits) as http:
            drivers: dict[str, Any] = {"http": HttpDriver(http), "dbos": DbosDriver()}
            counter = iter(range(10**9))

            def keys(path: str, count: int) -> list[str]:
                return [f"d{stack.run_id}-{path[0]}{next(counter)}" for _ in range(count)]

            print(f"warm-up: {args.warmup} use cases per path …", flush=True)
            warm: list[str] = []
            for name in ("http", "dbos", "http", "dbos"):
                batch = keys(name, max(1, args.warmup // 2))
                await drive(drivers[name], batch, args.concurrency, Recorder())
                warm += batch if name == "http" else []
            await drained(stack.db_path, warm)

            totals = Totals()
            procs = ["bench", *stack.pids(), "postgres"]
            for r, count in enumerate(split(args.n, args.rounds)):
                order = ("http", "dbos") if r % 2 == 0 else ("dbos", "http")
                for position, name in enumerate(order):
                    pg = await backends(engine, str(url.database))
                    pids = {"bench": os.getpid(), **stack.pids()}
                    cpu0 = {n: cpu_seconds(p) for n, p in pids.items()} | {
                        "postgres": postgres_cpu(pg)
                    }
                    rec = Recorder()
                    batch = keys(name, count)
                    t0 = time.perf_counter()
                    await drive(drivers[name], batch, args.concurrency, rec)
                    wall = time.perf_counter() - t0
                    cpu = {n: cpu_seconds(p) - cpu0[n] for n, p in pids.items()} | {
                        "postgres": postgres_cpu(pg) - cpu0["postgres"]
                    }
                    drain = await drained(stack.db_path, batch if name == "http" else [])
                    phase = Phase(
                        name, r + 1, position, count, wall, drain, rec.decisions, rec.calls, cpu
                    )
                    totals.phases.append(phase)
                    print(
                        f"  round {r + 1} {name:<5} {count:>4} use cases in {wall:6.2f} s"
                        f" = {phase.rate:6.2f} wf/s  (call p50 {percentile(rec.calls, 50):6.1f}"
                        f" ms, p99 {percentile(rec.calls, 99):6.1f} ms)",
                        flush=True,
                    )
    finally:
        DBOS.destroy()
        await engine.dispose()
    return report(args, totals, procs)


def report(args: argparse.Namespace, totals: Totals, procs: list[str]) -> int:
    rates = {path: Totals.rate(totals.of(path)) for path in ("http", "dbos")}
    print(
        f"\ncommand: {command_line()}\n"
        f"N={args.n} use cases per path, concurrency {args.concurrency}, {args.rounds} rounds"
        " (alternating order), 8 calls per use case\n"
    )
    head = f"{'path':<8}{'wf/s':>8}{'wall s':>9}{'call p50':>10}{'call p99':>10}{'decide p50':>12}"
    print(f"{head}\n{'-' * len(head)}")
    for path in ("http", "dbos"):
        ph = totals.of(path)
        calls = [x for p in ph for x in p.call_ms]
        decide = [x for p in ph for x in p.decide_ms]
        print(
            f"{path:<8}{rates[path]:>8.2f}{sum(p.wall for p in ph):>9.2f}"
            f"{percentile(calls, 50):>8.1f}ms{percentile(calls, 99):>8.1f}ms"
            f"{percentile(decide, 50):>10.1f}ms"
        )
    cpu_head = f"{'CPU ms per use case':<20}" + "".join(f"{n:>10}" for n in [*procs, "total"])
    print(f"\n{cpu_head}\n{'-' * len(cpu_head)}")
    for path in ("http", "dbos"):
        ph = totals.of(path)
        count = sum(p.count for p in ph)
        per = [sum(p.cpu.get(n, 0.0) for p in ph) * 1000 / count for n in procs]
        print(f"{path:<20}" + "".join(f"{v:>10.0f}" for v in [*per, sum(per)]))
    print("(dbos runs in the bench process; postgres: the backends of the run's database)")
    rounds = round_ratios(totals, "http", "dbos")
    print(
        "\nper-round ratio http/dbos: "
        + "  ".join(f"{x:.2f}" for x in rounds)
        + f"  (median {statistics.median(rounds):.2f}, spread {min(rounds):.2f}–{max(rounds):.2f})"
    )
    ratio = rates["http"] / rates["dbos"]
    verdict = "met" if ratio >= TARGET_RATIO else "missed"
    print(f"ratio http/dbos = {ratio:.3f} (target ≥ {TARGET_RATIO}: {verdict})")
    print(f"command: {command_line()}")
    return 0 if ratio >= TARGET_RATIO else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100, help="timed use cases per path")
    parser.add_argument("--concurrency", type=int, default=8, help="use cases in flight")
    parser.add_argument("--rounds", type=int, default=4, help="timed rounds, order alternating")
    parser.add_argument("--warmup", type=int, help="untimed use cases per path (default 2 x C)")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES, help="server to use")
    parser.add_argument("--temporal-address", help="reuse this Temporal server (host:port)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.n < args.rounds or args.concurrency < 1:
        parser.error("--n must be at least --rounds, --concurrency at least 1")
    if args.warmup is None:
        args.warmup = 2 * args.concurrency
    return args


def main() -> int:
    if importlib.util.find_spec("dbos") is None:
        print("dbos is not installed: pip install -e '.[bench]' (benchmark skipped)")
        return 0
    from services.store.tempdb import temporary_postgres_database

    args = parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="releasegate-dbos-"))
    stack = Stack(tmp, args.temporal_address)

    async def run() -> int:
        async with temporary_postgres_database(args.postgres_url, prefix="rg_bench_dbos") as url:
            return await benchmark(args, stack, url)

    return run_on_stack(stack, tmp, args.keep, run)


if __name__ == "__main__":
    sys.exit(main())
