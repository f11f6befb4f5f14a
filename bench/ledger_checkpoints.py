"""Ledger append throughput with transparency-log checkpoints on and off.

Appends R runs × E events through ``LedgerRepository.append`` — the worker's ledger activity
minus Temporal: batches of B records per run (the outbox ships a turn's facts together), C
runs appending at once, each append its own transaction — in three modes, in alternating
rounds so a shared machine's noise does not favour one:

- **off**: no signing (``RELEASEGATE_CHECKPOINTS=off``); leaves are still assigned, the
  Merkle log is part of every append;
- **on**: checkpoints every ``--every`` entries (the default 256), signed in the append
  transaction, published to a directory afterwards (its consistency proof computed from the
  stored leaves);
- **high-tier**: as ``on``, every run high-tier, a gate decision every ``--decision-every``
  events: a checkpoint at each one.

Prints entries/s per mode, its ratio to ``off``, and the checkpoints signed.

    .venv/bin/python bench/ledger_checkpoints.py [--runs 60] [--events 40] [--batch 4]
        [--concurrency 8] [--every 256] [--rounds 2] [--database-url URL]

``--database-url`` runs against an existing (empty, migrated) database, e.g. PostgreSQL;
otherwise a temporary SQLite file. Exit 1 when ``on`` is below ``--target`` × ``off``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker  # noqa: E402

from services.store.db import make_engine, make_sessionmaker, session_scope  # noqa: E402
from services.store.ledger import LedgerRepository  # noqa: E402
from services.store.migrate import upgrade_head  # noqa: E402
from services.tlog.checkpoints import CheckpointPolicy, DirectorySink  # noqa: E402
from services.tlog.note import NoteSigner, new_seed  # noqa: E402
from services.tlog.publish import Publisher  # noqa: E402
from workflows.activities import LedgerBatch, LedgerRecord  # noqa: E402
from workflows.ids import key_of, use_case_workflow_id  # noqa: E402
from workflows.model import Channel, EventKind  # noqa: E402

T0 = datetime(2026, 12, 1, tzinfo=UTC)
MODES = ("off", "on", "high-tier")


def records(workflow_id: str, events: int, tier: str, decision_every: int) -> list[LedgerRecord]:
    out = []
    for n in range(1, events + 1):
        kind = EventKind.RUN_STARTED if n == 1 else EventKind.STAGE_COMPLETED
        if n > 1 and n % decision_every == 0:
            kind = EventKind.DECISION
        payload = {"stage": "validation", "round": 1, "comment": f"event {n}"}
        if n == 1:
            payload.update(risk_tier=tier, title="bench", owners={"business_owner": "bo"})
        out.append(
            LedgerRecord(
                workflow_id=workflow_id,
                use_case_key=key_of(workflow_id),
                event_id=n,
                at=T0 + timedelta(seconds=n),
                kind=kind,
                actor="dana",
                channel=Channel.API,
                payload=payload,
                policy_version="2026.2",
            )
        )
    return out


async def one_mode(
    sessions: async_sessionmaker[AsyncSession],
    mode: str,
    args: argparse.Namespace,
    signer: NoteSigner,
    publisher: Publisher,
) -> tuple[float, int, int]:
    """Entries/s, entries written and checkpoints signed."""
    policy = None if mode == "off" else CheckpointPolicy(signer, every=args.every, seconds=3600)
    tier = "high" if mode == "high-tier" else "low"
    runs = [
        records(
            use_case_workflow_id(f"bench-{uuid.uuid4().hex[:12]}"),
            args.events,
            tier,
            args.decision_every,
        )
        for _ in range(args.runs)
    ]
    signed = 0
    queue: asyncio.Queue[list[LedgerRecord]] = asyncio.Queue()
    for run in runs:
        queue.put_nowait(run)

    async def drive() -> int:
        nonlocal signed
        written = 0
        while not queue.empty():
            run = queue.get_nowait()
            for start in range(0, len(run), args.batch):
                async with session_scope(sessions) as session:
                    ledger = LedgerRepository(session, policy)
                    written += await ledger.append(
                        LedgerBatch(records=run[start : start + args.batch])
                    )
                if ledger.signed is not None:
                    signed += 1
                    await publisher.publish(ledger.signed)
        return written

    began = time.perf_counter()
    written = sum(await asyncio.gather(*(drive() for _ in range(args.concurrency))))
    elapsed = time.perf_counter() - began
    return written / elapsed, written, signed


async def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="releasegate-bench-") as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'releasegate.db'}"
        if not args.database_url:
            await upgrade_head(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        # one log, one key, one directory: the modes take turns on the same tree
        signer = NoteSigner("bench.local/ledger", new_seed())
        publisher = Publisher(sessions, DirectorySink(Path(tmp) / "checkpoints"))
        if args.no_publish:
            publisher.publish = _skip  # type: ignore[method-assign]
        results: dict[str, list[float]] = {m: [] for m in MODES}
        checkpoints: dict[str, int] = dict.fromkeys(MODES, 0)
        try:
            await one_mode(sessions, "on", args, signer, publisher)  # warm-up, not timed
            for round_no in range(args.rounds):
                order = MODES if round_no % 2 == 0 else tuple(reversed(MODES))
                for mode in order:
                    rate, written, signed = await one_mode(sessions, mode, args, signer, publisher)
                    results[mode].append(rate)
                    checkpoints[mode] += signed
                    print(
                        f"round {round_no + 1} {mode:>9}: {rate:8.0f} entries/s "  # noqa: T201
                        f"({written} entries, {signed} checkpoints)"
                    )
        finally:
            await engine.dispose()
    base = statistics.median(results["off"])
    print(
        f"\nledger append, {args.runs} runs × {args.events} events, batches of {args.batch}, "  # noqa: T201
        f"{args.concurrency} at once, {'SQLite' if not args.database_url else url.split(':')[0]}"
    )
    for mode in MODES:
        rate = statistics.median(results[mode])
        print(
            f"  {mode:>9}: {rate:8.0f} entries/s  ({rate / base:5.2f} × off, "  # noqa: T201
            f"{checkpoints[mode]} checkpoints)"
        )
    ratio = statistics.median(results["on"]) / base
    return 0 if ratio >= args.target else 1


async def _skip(_: object) -> None:
    return None


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--every", type=int, default=256)
    parser.add_argument("--decision-every", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--target", type=float, default=0.8, help="min on/off ratio")
    parser.add_argument("--database-url", help="an empty, migrated database (default: SQLite)")
    parser.add_argument(
        "--no-publish", action="store_true", help="sign only (what the append transaction costs)"
    )
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
