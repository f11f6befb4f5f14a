"""Bounded history: one live use case driven through N commands, its history measured.

Takes one low-tier use case to ``live`` and sends it ``--commands`` commands (default 10,000)
one after another through the command layer on a Temporal client — the ``direct`` path of
``bench/gated_path.py``: the same pre-checks and the same Updates the API's routes send — in a
fixed mix: incidents (olga, tom, bo in turn; 60 %), minor change requests raised by dana
(20 %), evidence for an open change's ``change_approval`` gate (tom; 10 %), and that gate's
approval by the technical owner (10 %), which applies the change to the use case. Then it
reports, from Temporal:

- history bytes per command: the use case's history (every run of it, continue-as-new
  included) divided by the commands it took;
- how many times the use case continued as new;
- the largest history of any run (the use case's runs and its changes' runs), against the
  10 % of Temporal's 50 MB history limit that is the target;
- p50/p99 latency of the first and of the last thousand commands (flat is the target).

The policy is ``config/policy.yaml`` with the incident rate limit lifted (the benchmark is one
fast reporter rota; the limit is tested on its own). It starts what it needs like
``gated_path.py`` (``--temporal-address`` reuses a server, ``--keep`` keeps the logs).

    .venv/bin/python bench/bounded_run.py [--commands 10000] [--temporal-address H:P] [--keep]

Exit status 0 when every run's history stayed under 10 % of the limit and the last thousand's
p99 is at most twice the first thousand's; 1 when not; 2 when a command failed; 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import run_on_stack  # noqa: E402
from bench.gated_path import (  # noqa: E402
    GATES,
    OWNERS,
    WORK_STAGES,
    Stack,
    digests_of,
    evidence_for,
    percentile,
)
from services import command_keys  # noqa: E402
from services.commands.gateway import UseCaseGateway  # noqa: E402
from services.commands.service import CommandService, Sender  # noqa: E402
from services.temporal import connect  # noqa: E402
from workflows import ids  # noqa: E402
from workflows.model import (  # noqa: E402
    Channel,
    Decision,
    Evidence,
    Gate,
    Materiality,
    Severity,
    Stage,
    UseCaseCreate,
    UseCaseView,
)
from workflows.policy import load_directory, load_policy  # noqa: E402

HISTORY_LIMIT = 50 * 1024 * 1024  # Temporal's default history size limit (it terminates runs)
TARGET_SHARE = 0.10
WINDOW = 1000  # commands in the "first" and "last" latency windows
REPORTERS = ("olga", "tom", "bo")
# the mix, as a cycle of ten commands: I incident, C change raised, E evidence, A approval
CYCLE = "IICIEIIAIC"


def policy_file(tmp: Path) -> Path:
    doc = yaml.safe_load((ROOT / "config" / "policy.yaml").read_text())
    doc["version"] = f"{doc['version']}-bench"
    doc.setdefault("limits", {})["max_incidents_per_reporter"] = 10_000
    path = tmp / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def change_evidence(n: int) -> Evidence:
    return Evidence(
        kind="change_note",
        name=f"change note {n}",
        uri=f"https://evidence.example.com/changes/{n}.md",
        sha256=hashlib.sha256(f"change {n}".encode()).hexdigest(),
    )


class Driver:
    def __init__(self, commands: CommandService) -> None:
        self.commands = commands
        self.latencies: list[float] = []
        self.kinds: dict[str, int] = {}
        # change runs raised and not yet given evidence / approved, oldest first
        self.raised: list[str] = []
        self.with_evidence: list[tuple[str, list[str]]] = []

    async def timed(self, kind: str, call: Awaitable[Any]) -> Any:
        started = time.perf_counter()
        result = await call
        self.latencies.append(time.perf_counter() - started)
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        return result

    async def to_live(self, key: str) -> UseCaseView:
        body = {
            "key": key,
            "title": "Bounded-run benchmark",
            "summary": "One live use case driven through many commands by bench/bounded_run.py.",
            "risk_tier": "low",
            "owners": OWNERS,
        }
        view, _ = await self.commands.start(
            UseCaseCreate.model_validate(body), Sender("dana", Channel.API)
        )
        for stage in WORK_STAGES:
            evidence = evidence_for(key) if stage == "validation" else []
            view = await self.commands.complete_stage(
                view.id,
                Sender("dana", Channel.API),
                Stage(stage),
                evidence=[Evidence.model_validate(e) for e in evidence],
            )
        for gate, actor in GATES:
            view = await self.commands.decide_as_seen(
                view.id,
                Sender(actor, Channel.API),
                Gate(gate),
                Decision.APPROVE,
                evidence_digests=digests_of(key),
            )
        if view.stage != Stage.LIVE:
            raise RuntimeError(f"the use case did not go live: {view.stage}")
        return view

    async def command(self, wid: str, i: int) -> None:
        kind = CYCLE[i % len(CYCLE)]
        if kind == "E" and not self.raised:
            kind = "I"
        if kind == "A" and not self.with_evidence:
            kind = "I"
        if kind == "I":
            who = REPORTERS[i % len(REPORTERS)]
            summary = f"incident {i}: latency above the SLO for {i % 17 + 1} minutes"
            await self.timed(
                "incident",
                self.commands.report_incident(
                    wid, Sender(who, Channel.API), Severity.SEV3, summary
                ),
            )
        elif kind == "C":
            raised = await self.timed(
                "change",
                self.commands.raise_change(
                    wid, Sender("dana", Channel.API), f"tune prompt {i}", Materiality.MINOR
                ),
            )
            self.raised.append(raised.view.id)
        elif kind == "E":
            change = self.raised.pop(0)
            view = await self.timed(
                "evidence",
                self.commands.add_evidence(
                    change, Sender("tom", Channel.API), [change_evidence(i)]
                ),
            )
            gate = view.open_gate
            self.with_evidence.append((change, gate.evidence_digests if gate else []))
        else:
            change, digests = self.with_evidence.pop(0)
            await self.timed(
                "approval",
                self.commands.decide_as_seen(
                    change,
                    Sender("tom", Channel.API),
                    Gate.CHANGE_APPROVAL,
                    Decision.APPROVE,
                    evidence_digests=digests,
                ),
            )


async def histories(client: Any, workflow_id: str) -> list[tuple[str, int, int]]:
    """(run id, history bytes, history events) of every run of ``workflow_id``."""
    out = []
    async for execution in client.list_workflows(f'WorkflowId = "{workflow_id}"'):
        desc = await client.get_workflow_handle(workflow_id, run_id=execution.run_id).describe()
        info = desc.raw_description.workflow_execution_info
        out.append((execution.run_id, info.history_size_bytes, info.history_length))
    return out


async def settled(client: Any, workflow_id: str, runs_before: int) -> list[tuple[str, int, int]]:
    """The runs once visibility lists every one of them (it trails a moment)."""
    for _ in range(100):
        runs = await histories(client, workflow_id)
        if len(runs) >= runs_before:
            return runs
        await asyncio.sleep(0.2)
    return runs


async def benchmark(args: argparse.Namespace, stack: Stack, policy_path: Path) -> int:
    settings = stack.settings().model_copy(update={"policy_path": policy_path})
    client = await connect(settings, signer=command_keys.for_process(settings).signer)
    commands = CommandService(
        UseCaseGateway(client, settings),
        load_policy(settings.policy_path),
        load_directory(settings.directory_path),
    )
    driver = Driver(commands)
    view = await driver.to_live(f"bounded-{stack.run_id}")
    wid = view.id
    print(f"{wid} is live; sending {args.commands} commands …", flush=True)
    started = time.perf_counter()
    for i in range(args.commands):
        await driver.command(wid, i)
        if (i + 1) % 500 == 0:
            rate = (i + 1) / (time.perf_counter() - started)
            print(f"  {i + 1} commands ({rate:.0f}/s)", flush=True)
    elapsed = time.perf_counter() - started
    final = await commands.state(wid)

    runs = await settled(client, wid, 1)
    change_runs = [
        ids.change_workflow_id(wid, ids.change_id(n)) for n in range(1, final.change_count + 1)
    ]
    changes_largest = 0
    for change_wid in change_runs:
        for _, size, _ in await histories(client, change_wid):
            changes_largest = max(changes_largest, size)
    total = sum(size for _, size, _ in runs)
    largest = max(size for _, size, _ in runs)
    first = driver.latencies[:WINDOW]
    last = driver.latencies[-WINDOW:]
    p99_first, p99_last = percentile(first, 99), percentile(last, 99)

    print()
    print(
        f"commands            {args.commands} in {elapsed:.0f} s ({args.commands / elapsed:.1f}/s)"
    )
    print(f"mix                 {', '.join(f'{k} {n}' for k, n in sorted(driver.kinds.items()))}")
    print(
        f"use case            {final.incident_count} incidents, {final.change_count} changes "
        f"(live version {final.live_version}), {final.event_count} ledger facts"
    )
    print(f"runs                {len(runs)} (continue-as-new {len(runs) - 1} times)")
    print(
        f"history             {total / 1e6:.1f} MB over all runs, "
        f"{total / args.commands:.0f} bytes per command"
    )
    print(
        f"largest history     {largest / 1e6:.2f} MB of the use case's runs "
        f"({largest / HISTORY_LIMIT:.1%} of 50 MB), {changes_largest / 1e6:.2f} MB of a change's"
    )
    for name, window in (("first", first), ("last", last)):
        print(
            f"latency {name:<5} {len(window):>5}  p50 {percentile(window, 50) * 1000:6.1f} ms  "
            f"p99 {percentile(window, 99) * 1000:6.1f} ms"
        )
    ok = max(largest, changes_largest) < TARGET_SHARE * HISTORY_LIMIT and p99_last <= 2 * p99_first
    print(f"target              {'met' if ok else 'MISSED'} (history < 10 % of 50 MB, p99 flat)")
    return 0 if ok else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=10_000, help="commands to send")
    parser.add_argument("--temporal-address", help="reuse this Temporal server (host:port)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.commands < 1:
        parser.error("--commands must be at least 1")
    return args


def main() -> int:
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="releasegate-bounded-"))
    stack = Stack(tmp, args.temporal_address)
    return run_on_stack(stack, tmp, args.keep, lambda: benchmark(args, stack, policy_file(tmp)))


if __name__ == "__main__":
    sys.exit(main())
