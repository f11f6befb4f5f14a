"""CPU per command of the store step (``store.persist``), without Temporal.

Every governed command ends with one local activity, ``store.persist``: the command's ledger
records (hash chain, evidence, transparency-log leaves and run heads, a checkpoint when due)
and the read model's row with its side tables, in one transaction. This benchmark calls
``StoreActivities.persist`` directly, the way the worker's local activity does, with the
batches of the 8-command low-tier path that ``gated_path.py`` drives (their shapes as the
workflow builds them: start, four stage completions — the last with an evaluation report —
and three gate approvals, with the notices the worker logs). Each use case sends its 8
batches in order; ``--concurrency`` use cases are in flight at once.

    .venv/bin/python bench/store_persist.py [--n 200] [--concurrency 8] [--rounds 3]
        [--warmup 16] [--checkpoints on|off] [--max-group 16] [--database-url ADMIN_URL]

``--database-url`` runs on PostgreSQL instead of SQLite: a throwaway database made next to
the one the URL names, migrated, dropped afterwards (e.g.
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``). Reported per round and as medians:
CPU µs per command (``time.process_time``: every thread of this process, aiosqlite's
connection threads included; not the PostgreSQL server's), SQL statements per command (a
``before_cursor_execute`` listener: an executemany counts once), transactions per command,
and wall time. Afterwards every use case's chain, the transparency log and the read model
are verified; exit 2 when something is wrong, 1 when the median statements per command
exceed ``--target-statements`` (default 11: one command's transaction alone), 0 otherwise.
``--max-group 1`` turns group commit off (one transaction per command).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event, func, select  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker  # noqa: E402

from services.store.db import make_engine, make_sessionmaker, session_scope  # noqa: E402
from services.store.ledger import LedgerRepository  # noqa: E402
from services.store.migrate import upgrade_head  # noqa: E402
from services.store.models import (  # noqa: E402
    EvidenceItem,
    LedgerEntry,
    LedgerLog,  # noqa: E402
    LedgerRunHead,
    UseCase,
)
from services.store.tempdb import temporary_postgres_database  # noqa: E402
from services.store.transparency import LOG_ROW, TransparencyLogRepository  # noqa: E402
from services.tlog.checkpoints import CheckpointPolicy, DirectorySink  # noqa: E402
from services.tlog.merkle import Frontier  # noqa: E402
from services.tlog.note import NoteSigner, new_seed  # noqa: E402
from services.tlog.publish import Checkpointing, Publisher  # noqa: E402
from services.worker.activities import StoreActivities  # noqa: E402
from services.worker.notify import LogAdapter  # noqa: E402
from workflows.activities import StoreBatch  # noqa: E402

COMMANDS = 8  # per use case: the low-tier path of gated_path.py
EVENTS = 19  # ledger entries per use case
POLICY_VERSION = "2026.3"
POLICY_SHA = "631a27e80cde88188b92e04b10636e2a36c99f830ff2a639044cd3227e006920"
OWNERS = {
    "delivery_lead": "dana",
    "business_owner": "bo",
    "technical_owner": "tom",
    "operations_owner": "olga",
    "risk_approvers": ["group:risk-committee"],
    "escalation_owner": "eve",
    "stop_authority": ["bo", "tom", "olga"],
}
ROSTER = {
    "delivery_lead": ["dana"],
    "business_owner": ["bo"],
    "technical_owner": ["tom"],
    "operations_owner": ["olga"],
    "risk_approver": ["raj", "rita"],
    "escalation_owner": ["eve"],
    "stop_authority": ["bo", "olga", "tom"],
    "break_glass": ["eve", "sam"],
}
PATH = [
    "scoping",
    "specification",
    "implementation",
    "validation",
    "risk_signoff",
    "ops_handoff",
    "go_live",
    "live",
]
# (gate, approver, eligible, hours until due)
GATES = [("risk_signoff", "rita", ["raj", "rita"], 72), ("ops_handoff", "olga", ["olga"], 48)]
GATES.append(("go_live", "bo", ["bo"], 48))


# --------------------------------------------------------------------------- the batches


def use_case_batches(key: str, t0: datetime) -> list[StoreBatch]:
    """The 8 store batches of one low-tier use case taken to ``live``, as the workflow sends
    them (records, the read model's row as of them, the notices queued so far)."""
    wf = f"usecase-{key}"
    title = f"Bench use case {key}"
    digest = uuid.uuid5(uuid.NAMESPACE_URL, key).hex * 2
    report = {
        "kind": "evaluation_report",
        "name": "evaluation_report.pdf",
        "uri": f"https://docs.example.com/evaluation_report/{digest[:8]}",
        "sha256": digest,
    }
    batches: list[dict[str, Any]] = []
    seq = 0

    def rec(at: datetime, kind: str, actor: str, channel: str, payload: dict[str, Any],
            evidence: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
        nonlocal seq
        seq += 1
        return {
            "workflow_id": wf,
            "use_case_key": key,
            "event_id": seq,
            "at": at,
            "kind": kind,
            "actor": actor,
            "channel": channel,
            "payload": payload,
            "policy_version": POLICY_VERSION,
            "evidence": evidence or [],
        }

    def row(at: datetime, stage: str, gate: tuple[str, list[str], int] | None) -> dict[str, Any]:
        return {
            "workflow_id": wf,
            "key": key,
            "title": title,
            "risk_tier": "low",
            "stage": stage,
            "closed": False,
            "business_owner": "bo",
            "owners": OWNERS,
            "pending_approvers": gate[1] if gate else [],
            "gate": gate[0] if gate else None,
            "quorum": 1 if gate else None,
            "approvals": [],
            "due_at": at + timedelta(hours=gate[2]) if gate else None,
            "round": 1,
            "updated_at": at,
            "event_id": seq,
            "side_decisions": [],
        }

    def card(at: datetime, gate: str, eligible: list[str], hours: int,
             approver: str | None) -> dict[str, Any]:  # fmt: skip
        approval = {
            "actor": approver,
            "at": at,
            "channel": "api",
            "credential": None,
            "evidence_digests": [digest],
            "comment": "",
        }
        return {
            "gate": gate,
            "round": 1,
            "quorum": 1,
            "eligible": eligible,
            "pending": [] if approver else eligible,
            "approvals": [approval] if approver else [],
            "due_at": at + timedelta(hours=hours),
            "outcome": "passed" if approver else None,
            "decided_by": approver,
            "comment": "",
            "deputies": {},
            "exceptions": [],
        }

    def notice(at: datetime, kind: str, stage: str, text: str, gate: dict[str, Any],
               recipients: list[str]) -> dict[str, Any]:  # fmt: skip
        return {
            "kind": kind,
            "workflow_id": wf,
            "key": key,
            "title": title,
            "risk_tier": "low",
            "stage": stage,
            "round": 1,
            "at": at,
            "text": f"{title}: {text}",
            "gate": gate,
            "evidence": [report],
            "recipients": recipients,
        }

    at = t0
    started = {
        "stage": "scoping",
        "round": 1,
        "title": title,
        "risk_tier": "low",
        "owners": OWNERS,
        "roster": ROSTER,
        "policy": {"version": POLICY_VERSION, "sha256": POLICY_SHA},
        "path": PATH,
    }
    records = [
        rec(at, "run_started", "dana", "system", started),
        rec(at, "stage_entered", "dana", "system", {"stage": "scoping", "round": 1}),
    ]
    batches.append({"records": records, "row": row(at, "scoping", None)})
    for done, following in zip(PATH[:4], PATH[1:5], strict=True):
        at += timedelta(seconds=30)
        payload: dict[str, Any] = {"stage": done, "round": 1}
        evidence = None
        gate = None
        notices = []
        if done == "validation":
            payload["evidence"] = [report]
            evidence = [{**report, "scope": done, "round": 1, "submitted_by": "dana", "at": at}]
            name, _, eligible, hours = GATES[0]
            gate = (name, eligible, hours)
            waits = f"{name} waits on {', '.join(eligible)} (quorum 1)"
            notices.append(notice(at, "gate_opened", name, waits, card(at, *gate, None), eligible))
        records = [
            rec(at, "stage_completed", "dana", "api", payload, evidence),
            rec(at, "stage_entered", "dana", "system", {"stage": following, "round": 1}),
        ]
        batches.append({"records": records, "row": row(at, following, gate), "notices": notices})
    opened = at
    for n, (name, approver, eligible, hours) in enumerate(GATES):
        at += timedelta(seconds=30)
        following = PATH[5 + n]
        decision = {
            "stage": name,
            "round": 1,
            "gate": name,
            "decision": "approve",
            "evidence_digests": [digest],
            "quorum": 1,
        }
        passed = {"stage": name, "round": 1, "gate": name, "approvers": [approver]}
        records = [
            rec(at, "decision", approver, "api", decision),
            rec(at, "gate_passed", approver, "system", passed),
            rec(at, "stage_entered", approver, "system", {"stage": following, "round": 1}),
        ]
        closed = card(opened, name, eligible, hours, approver)
        notices = [notice(at, "gate_closed", name, f"{name} passed by {approver}", closed, [])]
        gate = None
        if n + 1 < len(GATES):
            next_name, _, next_eligible, next_hours = GATES[n + 1]
            gate = (next_name, next_eligible, next_hours)
            waits = f"{next_name} waits on {', '.join(next_eligible)} (quorum 1)"
            notices.append(
                notice(at, "gate_opened", next_name, waits, card(at, *gate, None), next_eligible)
            )
            opened = at
        batches.append({"records": records, "row": row(at, following, gate), "notices": notices})
    assert seq == EVENTS
    assert len(batches) == COMMANDS
    return [StoreBatch.model_validate(b) for b in batches]


# --------------------------------------------------------------------------- measuring


class Counter:
    """Statements and commits on the engine, from its events."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.statements = 0
        self.commits = 0
        event.listen(engine.sync_engine, "before_cursor_execute", self._statement)
        event.listen(engine.sync_engine, "commit", self._commit)

    def _statement(self, *_: Any) -> None:
        self.statements += 1

    def _commit(self, *_: Any) -> None:
        self.commits += 1


async def drive(
    store: StoreActivities, use_cases: list[list[StoreBatch]], concurrency: int
) -> None:
    queue = list(reversed(use_cases))

    async def one_at_a_time() -> None:
        while queue:
            for batch in queue.pop():
                await store.persist(batch)

    await asyncio.gather(*(one_at_a_time() for _ in range(concurrency)))


async def one_round(
    store: StoreActivities, counter: Counter, n: int, concurrency: int, t0: datetime
) -> tuple[float, float, float, float, float, list[str]]:
    """CPU µs (all, and of it in the kernel), statements and transactions per command, and
    wall seconds of one round."""
    keys = [f"bench-{uuid.uuid4().hex[:12]}" for _ in range(n)]
    use_cases = [use_case_batches(key, t0) for key in keys]
    statements, commits = counter.statements, counter.commits
    cpu, wall, times = time.process_time(), time.perf_counter(), os.times()
    await drive(store, use_cases, concurrency)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    system = os.times().system - times.system
    commands = n * COMMANDS
    return (
        cpu * 1e6 / commands,
        system * 1e6 / commands,
        (counter.statements - statements) / commands,
        (counter.commits - commits) / commands,
        wall,
        [f"usecase-{k}" for k in keys],
    )


async def verify(sessions: async_sessionmaker[AsyncSession], workflow_ids: list[str]) -> list[str]:
    """What is wrong with the store after the run (nothing: an empty list)."""
    problems = []
    async with session_scope(sessions) as session:
        ledger = LedgerRepository(session)
        for wf in workflow_ids:
            result = await ledger.verify(wf)
            if not result.ok or result.entries != EVENTS:
                problems.append(f"{wf}: chain {result}")
        rows = await session.execute(select(UseCase.workflow_id, UseCase.stage, UseCase.event_id))
        shown = {r.workflow_id: (r.stage, r.event_id) for r in rows}
        for wf in workflow_ids:
            if shown.get(wf) != ("live", EVENTS):
                problems.append(f"{wf}: read model shows {shown.get(wf)}")
        entries = await session.scalar(select(func.count()).select_from(LedgerEntry))
        evidence = await session.scalar(select(func.count()).select_from(EvidenceItem))
        heads = await session.scalar(select(func.count()).select_from(LedgerRunHead))
        tlog = TransparencyLogRepository(session)
        state = await session.get(LedgerLog, LOG_ROW)
        size = await tlog.size()
        if size != entries:
            problems.append(f"log size {size} != {entries} ledger entries")
        if heads != len(workflow_ids):
            problems.append(f"{heads} run heads for {len(workflow_ids)} runs")
        if evidence != len(workflow_ids):
            problems.append(f"{evidence} evidence rows for {len(workflow_ids)} runs")
        if state is not None:
            frontier = Frontier(size, [bytes.fromhex(n) for n in state.frontier])
            if (await tlog.tree(size)).root != frontier.root:
                problems.append("the stored leaves do not give the frontier's root")
    return problems


@contextlib.asynccontextmanager
async def database(admin_url: str | None, tmp: Path) -> AsyncIterator[str]:
    if admin_url is None:
        url = f"sqlite+aiosqlite:///{tmp / 'releasegate.db'}"
        await upgrade_head(url)
        yield url
        return
    async with temporary_postgres_database(admin_url, prefix="releasegate_bench") as url:
        await upgrade_head(url)
        yield url


async def main(args: argparse.Namespace) -> int:
    print("$ " + " ".join(shlex.quote(a) for a in [".venv/bin/python", *sys.argv]))  # noqa: T201
    t0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    with tempfile.TemporaryDirectory(prefix="releasegate-bench-") as directory:
        tmp = Path(directory)
        async with database(args.database_url, tmp) as url:
            engine = make_engine(url)
            sessions = make_sessionmaker(engine)
            checkpointing = None
            if args.checkpoints == "on":  # the worker's default policy
                policy = CheckpointPolicy(NoteSigner("bench.local/store", new_seed()))
                publisher = Publisher(sessions, DirectorySink(tmp / "checkpoints"))
                checkpointing = Checkpointing(policy, publisher)
            # the default worker: its log is its only notification channel
            store = StoreActivities(sessions, checkpointing, LogAdapter(), max_group=args.max_group)
            counter = Counter(engine)
            backend = engine.dialect.name
            runs: list[str] = []
            try:
                if args.warmup:
                    runs += (await one_round(store, counter, args.warmup, args.concurrency, t0))[-1]
                results = []
                for number in range(1, args.rounds + 1):
                    *figures, workflow_ids = await one_round(
                        store, counter, args.n, args.concurrency, t0
                    )
                    runs += workflow_ids
                    results.append(figures)
                    cpu, system, statements, commits, wall = figures
                    print(  # noqa: T201
                        f"round {number}: {cpu:6.0f} CPU µs/command ({system:5.0f} kernel)  "
                        f"{statements:5.2f} "
                        f"statements/command  {commits:4.2f} transactions/command  "
                        f"{wall:6.2f} s wall ({args.n * COMMANDS / wall:6.0f} commands/s)"
                    )
                problems = await verify(sessions, runs)
            finally:
                await engine.dispose()
    cpu, system, statements, commits, wall = (
        statistics.median(r[i] for r in results) for i in range(5)
    )
    print(  # noqa: T201
        f"\nstore.persist on {backend}, {args.n} use cases × {COMMANDS} commands per round, "
        f"{args.concurrency} at once, checkpoints {args.checkpoints}, groups of up to "
        f"{args.max_group}, median of {args.rounds}:\n"
        f"  CPU per command         {cpu:8.0f} µs ({system:.0f} µs of it in the kernel)\n"
        f"  statements per command  {statements:8.2f}\n"
        f"  transactions per command{commits:8.2f}\n"
        f"  wall per round          {wall:8.2f} s ({args.n * COMMANDS / wall:.0f} commands/s)"
    )
    if problems:
        for problem in problems[:20]:
            print(f"VERIFY FAILED: {problem}", file=sys.stderr)  # noqa: T201
        return 2
    print(f"  verified: {len(runs)} chains, the transparency log and the read model")  # noqa: T201
    return 0 if statements <= args.target_statements else 1


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="use cases per round")
    parser.add_argument("--concurrency", type=int, default=8, help="use cases in flight")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=16, help="untimed use cases first")
    parser.add_argument("--checkpoints", choices=("on", "off"), default="on")
    parser.add_argument(
        "--max-group", type=int, default=16, help="batches per transaction at most (1: none)"
    )
    parser.add_argument(
        "--database-url",
        help="PostgreSQL admin URL: a throwaway database is made next to it (default: SQLite)",
    )
    parser.add_argument("--target-statements", type=float, default=11.0)
    return parser.parse_args()


if __name__ == "__main__":
    # the notices the worker logs go nowhere here (as under a WARNING log level)
    logging.basicConfig(level=logging.WARNING)
    sys.exit(asyncio.run(main(parse())))
