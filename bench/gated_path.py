"""Governed path throughput: the HTTP API, the Temporal client and the limit, in one run.

Drives N low-tier use cases through the whole release path — create, complete scoping,
specification, implementation and validation (with an ``evaluation_report``), then approve
``risk_signoff`` (rita), ``ops_handoff`` (olga) and ``go_live`` (bo) — three ways, C use cases in
flight at a time:

- **http**: over HTTP against the real API process (uvicorn), as a user or script would;
- **direct**: in this process through ``UseCaseGateway`` on a Temporal client: the same
  pre-checks and the same Temporal operations the API's routes perform, minus HTTP;
- **minimal**: the limit: the same 8 calls (start + query, 7 Updates) against a minimal workflow
  (``bench/minimal_workflow.py``) served by a worker process of its own.

All paths share one Temporal dev server; http and direct share one worker process and one
SQLite ledger, all started here (or ``--temporal-address`` reuses a running server). After a
warm-up of every path the timed use cases run in rounds whose order rotates, so the noise of a
small shared machine does not favour one side; between phases the worker's side effects
(ledger, notifications, read model) are left to drain, untimed. Prints workflows/s of each path,
the ratios http / minimal and http / direct, p50/p99 latency of each decision call and of every
call, the CPU each process spent per use case and the history events each use case left.

    .venv/bin/python bench/gated_path.py [--n 200] [--concurrency 16] [--rounds 4] [--warmup 2C]
        [--paths http,direct,minimal] [--temporal-address HOST:PORT] [--keep]

Exit status 1 when a target is missed (http / minimal ≥ 0.6, history events per command ≤ 6,
http / direct ≥ 0.9), 2 when a use case failed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# httpcore asks ``import sniffio`` on every request; when sniffio is not installed that failed
# import rescans sys.path each time (about a quarter of this load generator's CPU per request,
# which on a shared 2-core box is taken from the system under test). A cached "absent" entry
# gives httpcore the same answer (asyncio) without the scan.
if importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]

import httpx  # noqa: E402
from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.client import Client  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.minimal_workflow import MinimalRelease, Step  # noqa: E402
from services import command_keys  # noqa: E402
from services.commands.gateway import UseCaseGateway  # noqa: E402
from services.commands.service import CommandService, Sender  # noqa: E402
from services.settings import Settings  # noqa: E402
from services.store.migrate import upgrade_head_sync  # noqa: E402
from services.temporal import connect  # noqa: E402
from workflows import search  # noqa: E402
from workflows.ids import use_case_workflow_id  # noqa: E402
from workflows.model import (  # noqa: E402
    Channel,
    Decision,
    Evidence,
    Gate,
    Stage,
    UseCaseCreate,
    UseCaseView,
)
from workflows.policy import load_directory, load_policy  # noqa: E402

TARGET_RATIO = 0.9  # http / direct
TARGET_LIMIT_RATIO = 0.6  # http / minimal
TARGET_EVENTS_PER_COMMAND = 6.0
PATHS = ("http", "direct", "minimal")
WORK_STAGES = ("scoping", "specification", "implementation", "validation")
GATES = (("risk_signoff", "rita"), ("ops_handoff", "olga"), ("go_live", "bo"))
OWNERS = {
    "business_owner": "bo",
    "technical_owner": "tom",
    "operations_owner": "olga",
    "risk_approvers": ["group:risk-committee"],
    "escalation_owner": "eve",
}
CLK_TCK = os.sysconf("SC_CLK_TCK")
CALLS = 1 + len(WORK_STAGES) + len(GATES)


# --------------------------------------------------------------------------- measurements


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@dataclass
class Phase:
    path: str
    round: int
    position: int  # 0: first of its round, 1: second
    count: int
    wall: float
    drain: float
    decide_ms: list[float]
    call_ms: list[float]
    cpu: dict[str, float]
    # history events of each use case of the phase, by group (see ``event_group``)
    histories: list[dict[str, int]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.count / self.wall


@dataclass
class Totals:
    phases: list[Phase] = field(default_factory=list)

    def of(self, path: str, position: int | None = None) -> list[Phase]:
        return [
            p
            for p in self.phases
            if p.path == path and (position is None or p.position == position)
        ]

    @staticmethod
    def rate(phases: list[Phase]) -> float:
        return sum(p.count for p in phases) / sum(p.wall for p in phases)


# --------------------------------------------------------------------------- history events

EVENT_GROUPS = (
    "workflow task",
    "update",
    "activity",
    "local activity",
    "patch marker",
    "search attrs",
    "timer",
    "other",
)


def event_group(event: Any) -> str:
    """The report's group of one history event."""
    name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
    if name.startswith("WORKFLOW_TASK_"):
        return "workflow task"
    if name.startswith("WORKFLOW_EXECUTION_UPDATE_"):
        return "update"
    if name.startswith("ACTIVITY_TASK_"):
        return "activity"
    if name == "MARKER_RECORDED":
        marker = event.marker_recorded_event_attributes.marker_name
        return "local activity" if "local_activity" in marker else "patch marker"
    if name == "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES":
        return "search attrs"
    if name.startswith("TIMER_"):
        return "timer"
    return "other"


async def history_of(client: Client, workflow_id: str, timeout: float = 60.0) -> dict[str, int]:
    """The run's history events by group, once it has nothing in flight (no workflow task, no
    activity): what one use case leaves behind for its 8 calls."""
    handle = client.get_workflow_handle(workflow_id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = (await handle.describe()).raw_description
        if not raw.pending_activities and not raw.HasField("pending_workflow_task"):
            break
        await asyncio.sleep(0.1)
    counts = dict.fromkeys(EVENT_GROUPS, 0)
    async for event in handle.fetch_history_events():
        counts[event_group(event)] += 1
    return counts


# --------------------------------------------------------------------------- the three drivers


def create_body(key: str, n: int) -> dict[str, Any]:
    return {
        "key": key,
        "title": f"Benchmark use case {n}",
        "summary": "A low-tier use case driven through the gated path by bench/gated_path.py.",
        "risk_tier": "low",
        "owners": OWNERS,
    }


def evidence_for(key: str) -> list[dict[str, str]]:
    return [
        {
            "kind": "evaluation_report",
            "name": "Offline evaluation",
            "uri": f"https://evidence.example.com/{key}/evaluation.pdf",
            "sha256": hashlib.sha256(key.encode()).hexdigest(),
        }
    ]


def digests_of(key: str) -> list[str]:
    """What an approver of ``key``'s gates saw: the digests of ``evidence_for(key)``."""
    return [e["sha256"] for e in evidence_for(key)]


class Recorder:
    """Latency of each call, and of each decision call, of one phase."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.decisions: list[float] = []

    async def time(self, awaitable: Awaitable[Any], *, decision: bool = False) -> Any:
        t0 = time.perf_counter()
        result = await awaitable
        ms = (time.perf_counter() - t0) * 1000
        self.calls.append(ms)
        if decision:
            self.decisions.append(ms)
        return result


class HttpDriver:
    name = "http"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def _post(self, url: str, token: str, body: dict[str, Any], expect: int) -> Any:
        resp = await self.client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
        if resp.status_code != expect:
            raise RuntimeError(f"POST {url} → {resp.status_code}: {resp.text[:500]}")
        return resp.json()

    async def run(self, key: str, n: int, rec: Recorder) -> str:
        state = await rec.time(self._post("/v1/use-cases", "dev-dana", create_body(key, n), 201))
        base = f"/v1/use-cases/{state['id']}"
        for stage in WORK_STAGES:
            body = {"evidence": evidence_for(key) if stage == "validation" else [], "comment": ""}
            await rec.time(self._post(f"{base}/stages/{stage}/complete", "dev-dana", body, 200))
        # an approval names the evidence its approver saw: the one item this driver submitted
        seen = {"decision": "approve", "evidence_digests": digests_of(key)}
        for gate, actor in GATES:
            state = await rec.time(
                self._post(f"{base}/gates/{gate}/decisions", f"dev-{actor}", seen, 200),
                decision=True,
            )
        return str(state["stage"])


class DirectDriver:
    """What the API's routes do for the same requests (start_use_case, complete_stage,
    decide_gate), called in-process: body validation and the command layer (cached
    authorization pre-checks, the same start / update / query calls on the Temporal client)."""

    name = "direct"

    def __init__(self, commands: CommandService) -> None:
        self.commands = commands

    async def _start(self, body: dict[str, Any]) -> UseCaseView:
        # Keys are unique to the run: a start that answers "already there, same request" is
        # this call's own first attempt, which the command layer retried after a timeout
        # (seen at about 7,000 cached runs in ``cached_runs.py``).
        view, _created = await self.commands.start(
            UseCaseCreate.model_validate(body), Sender("dana", Channel.API)
        )
        return view

    async def _complete(self, wid: str, stage: str, evidence: list[dict[str, str]]) -> UseCaseView:
        return await self.commands.complete_stage(
            wid,
            Sender("dana", Channel.API),
            Stage(stage),
            evidence=[Evidence.model_validate(e) for e in evidence],
        )

    async def _decide(self, wid: str, gate: str, actor: str, digests: list[str]) -> UseCaseView:
        return await self.commands.decide_as_seen(
            wid, Sender(actor, Channel.API), Gate(gate), Decision.APPROVE, evidence_digests=digests
        )

    async def run(self, key: str, n: int, rec: Recorder) -> str:
        view = await rec.time(self._start(create_body(key, n)))
        for stage in WORK_STAGES:
            await rec.time(
                self._complete(view.id, stage, evidence_for(key) if stage == "validation" else [])
            )
        for gate, actor in GATES:
            view = await rec.time(
                self._decide(view.id, gate, actor, digests_of(key)), decision=True
            )
        return str(view.stage.value)


class MinimalDriver:
    """The limit: the same 8 calls against ``bench/minimal_workflow.py``'s workflow, with the
    Temporal operations the command layer makes (start then query; Updates that answer the
    state), on a plain client (the SDK's default JSON converter)."""

    name = "minimal"

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    @staticmethod
    def workflow_id(key: str) -> str:
        return f"minimal-{key}"

    async def _start(self, key: str) -> Any:
        handle = await self.client.start_workflow(
            MinimalRelease.run, key, id=self.workflow_id(key), task_queue=self.task_queue
        )
        await handle.query(MinimalRelease.state)
        return handle

    async def run(self, key: str, n: int, rec: Recorder) -> str:
        handle = await rec.time(self._start(key))
        for stage in WORK_STAGES:
            evidence = digests_of(key) if stage == "validation" else []
            await rec.time(
                handle.execute_update(MinimalRelease.advance, Step(stage, "dana", evidence))
            )
        state = None
        for gate, actor in GATES:
            state = await rec.time(
                handle.execute_update(MinimalRelease.advance, Step(gate, actor)), decision=True
            )
        assert state is not None
        return str(state.stage)


def workflow_id_of(path: str, key: str) -> str:
    return MinimalDriver.workflow_id(key) if path == "minimal" else use_case_workflow_id(key)


# --------------------------------------------------------------------------- a phase


async def drive(driver: Any, keys: list[str], concurrency: int, rec: Recorder) -> None:
    """Run every key through ``driver`` with at most ``concurrency`` use cases in flight."""
    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for n, key in enumerate(keys):
        queue.put_nowait((n, key))

    async def lane() -> None:
        while True:
            try:
                n, key = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            stage = await driver.run(key, n, rec)
            expected = getattr(driver, "final_stage", "live")
            if stage != expected:
                raise RuntimeError(f"{key} ended in stage {stage!r}, not {expected}")

    async with asyncio.TaskGroup() as tg:
        for _ in range(min(concurrency, len(keys))):
            tg.create_task(lane())


async def drained(db_path: Path, keys: list[str], timeout: float = 300.0) -> float:
    """Wait until the worker's last side effect for every key (the read model at ``live``) is
    written; returns the seconds waited."""
    if not keys:
        return 0.0
    wids = [use_case_workflow_id(k) for k in keys]
    marks = ",".join("?" * len(wids))
    t0 = time.perf_counter()
    while True:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30) as conn:
            (live,) = conn.execute(
                f"SELECT count(*) FROM use_cases WHERE stage = 'live' AND workflow_id IN ({marks})",
                wids,
            ).fetchone()
        if live == len(wids):
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(
                f"only {live}/{len(wids)} read-model rows reached live in {timeout}s"
            )
        await asyncio.sleep(0.1)


async def run_phase(
    driver: Any,
    keys: list[str],
    concurrency: int,
    db_path: Path,
    pids: dict[str, int],
    *,
    round_: int,
    position: int,
    history: tuple[Client, int] | None = None,
) -> Phase:
    """One timed phase; then, untimed, the drain and (``history``: a client and how many use
    cases to sample) the history events its use cases left."""
    rec = Recorder()
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    t0 = time.perf_counter()
    await drive(driver, keys, concurrency, rec)
    wall = time.perf_counter() - t0
    cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
    drain = await drained(db_path, keys if driver.name != "minimal" else [])
    phase = Phase(
        driver.name, round_, position, len(keys), wall, drain, rec.decisions, rec.calls, cpu
    )
    if history is not None:
        client, sample = history
        for key in keys[:sample]:
            phase.histories.append(await history_of(client, workflow_id_of(driver.name, key)))
    return phase


# --------------------------------------------------------------------------- the benchmark


def split(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


async def benchmark(args: argparse.Namespace, stack: Stack) -> int:
    settings = stack.settings()
    # the direct path is a front door like the API: it signs what it sends
    client = await connect(settings, signer=command_keys.for_process(settings).signer)
    commands = CommandService(
        UseCaseGateway(client, settings),
        load_policy(settings.policy_path),
        load_directory(settings.directory_path),
    )
    limits = httpx.Limits(
        max_connections=args.concurrency * 2, max_keepalive_connections=args.concurrency * 2
    )
    plain = await Client.connect(str(stack.temporal_address))
    pids = {"bench": os.getpid(), **stack.pids()}
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60.0, limits=limits) as http:
        drivers: dict[str, Any] = {
            "http": HttpDriver(http),
            "direct": DirectDriver(commands),
            "minimal": MinimalDriver(plain, stack.minimal_task_queue),
        }
        paths = args.paths
        counter = iter(range(10**9))

        def keys(path: str, count: int) -> list[str]:
            return [f"b{stack.run_id}-{path[0]}{next(counter)}" for _ in range(count)]

        print(f"warm-up: {args.warmup} use cases per path …", flush=True)
        warm: list[str] = []
        for name in (*paths, *paths):
            batch = keys(name, max(1, args.warmup // 2))
            await drive(drivers[name], batch, args.concurrency, Recorder())
            warm += batch if name != "minimal" else []
        await drained(stack.db_path, warm)

        totals = Totals()
        for r, count in enumerate(split(args.n, args.rounds)):
            order = paths[r % len(paths) :] + paths[: r % len(paths)]
            for position, name in enumerate(order):
                phase = await run_phase(
                    drivers[name],
                    keys(name, count),
                    args.concurrency,
                    stack.db_path,
                    pids,
                    round_=r + 1,
                    position=position,
                    history=(plain, args.history_sample),
                )
                totals.phases.append(phase)
                print(
                    f"  round {r + 1} {name:<7} {phase.count:>4} use cases in {phase.wall:6.2f} s"
                    f" = {phase.rate:6.2f} wf/s  (decide p50 {percentile(phase.decide_ms, 50):6.1f}"
                    f" ms, p99 {percentile(phase.decide_ms, 99):6.1f} ms; drained in"
                    f" {phase.drain:4.1f} s)",
                    flush=True,
                )
    return report(args, totals, list(pids))


def command_line() -> str:
    """The exact command that produced this report."""
    return " ".join([".venv/bin/python", *sys.argv])


def report(args: argparse.Namespace, totals: Totals, procs: list[str]) -> int:
    paths = [p for p in args.paths if totals.of(p)]
    rates = {path: Totals.rate(totals.of(path)) for path in paths}
    print(
        f"\ncommand: {command_line()}\n"
        f"N={args.n} use cases per path, concurrency {args.concurrency}, {args.rounds} rounds"
        f" (rotating order), {CALLS} calls per use case\n"
    )
    head = (
        f"{'path':<8}{'wf/s':>8}{'wall s':>9}{'decide p50':>12}{'decide p99':>12}"
        f"{'call p50':>10}{'call p99':>10}{'drain s':>9}"
    )
    print(head)
    print("-" * len(head))
    for path in paths:
        ph = totals.of(path)
        decide = [x for p in ph for x in p.decide_ms]
        calls = [x for p in ph for x in p.call_ms]
        print(
            f"{path:<8}{rates[path]:>8.2f}{sum(p.wall for p in ph):>9.2f}"
            f"{percentile(decide, 50):>10.1f}ms{percentile(decide, 99):>10.1f}ms"
            f"{percentile(calls, 50):>8.1f}ms{percentile(calls, 99):>8.1f}ms"
            f"{sum(p.drain for p in ph):>9.1f}"
        )
    cpu_head = f"{'CPU ms per use case':<20}" + "".join(f"{n:>10}" for n in [*procs, "total"])
    print(f"\n{cpu_head}\n{'-' * len(cpu_head)}")
    per_path: dict[str, dict[str, float]] = {}
    for path in paths:
        ph = totals.of(path)
        count = sum(p.count for p in ph)
        per_path[path] = {name: sum(p.cpu[name] for p in ph) * 1000 / count for name in procs}
        per = list(per_path[path].values())
        print(f"{path:<20}" + "".join(f"{v:>10.0f}" for v in [*per, sum(per)]))
    workers = {
        path: per_path[path].get("minimal" if path == "minimal" else "worker", float("nan"))
        for path in paths
    }
    print(
        "worker CPU per use case: "
        + ", ".join(f"{path} {ms:.0f} ms" for path, ms in workers.items())
        + " (the minimal path's own worker process for minimal)"
    )
    events_per_command = history_report(totals, paths)
    print("\nby position in the round (wf/s):")
    for position in range(len(paths)):
        line = "  ".join(
            f"{path} {Totals.rate(totals.of(path, position)):6.2f}"
            for path in paths
            if totals.of(path, position)
        )
        print(f"  position {position + 1}: {line}")
    verdicts: list[bool] = []
    for other, target in (("minimal", TARGET_LIMIT_RATIO), ("direct", TARGET_RATIO)):
        if "http" not in rates or other not in rates:
            continue
        rounds = round_ratios(totals, "http", other)
        print(
            f"per-round ratio http/{other}: "
            + "  ".join(f"{x:.2f}" for x in rounds)
            + f"  (median {statistics.median(rounds):.2f}, spread {min(rounds):.2f}"
            f"–{max(rounds):.2f})"
        )
        ratio = rates["http"] / rates[other]
        verdicts.append(ratio >= target)
        verdict = "met" if ratio >= target else "missed"
        print(f"ratio http/{other} = {ratio:.3f} (target ≥ {target}: {verdict})")
    if "http" in rates and "direct" in rates:
        extra = {
            name: per_path["http"][name] - per_path["direct"][name]
            for name in procs
            if name != "minimal"
        }
        print(
            f"HTTP path's extra CPU per use case: {sum(extra.values()):+.0f} ms ("
            + ", ".join(f"{name} {v:+.0f}" for name, v in extra.items())
            + ")"
        )
    if "http" in events_per_command:
        per_command = events_per_command["http"]
        verdicts.append(per_command <= TARGET_EVENTS_PER_COMMAND)
        verdict = "met" if per_command <= TARGET_EVENTS_PER_COMMAND else "missed"
        print(
            f"history events per command (ReleaseGate) = {per_command:.2f}"
            f" (target ≤ {TARGET_EVENTS_PER_COMMAND:g}: {verdict})"
        )
    print(f"command: {command_line()}")
    return 0 if all(verdicts) else 1


def round_ratios(totals: Totals, path: str, other: str) -> list[float]:
    return [
        a.rate / b.rate
        for r in sorted({p.round for p in totals.phases})
        for a in totals.of(path)
        for b in totals.of(other)
        if a.round == b.round == r
    ]


def history_report(totals: Totals, paths: list[str]) -> dict[str, float]:
    """Print the history events per use case by group; return events per command by path."""
    head = f"{'history events per use case':<28}" + "".join(
        f"{g:>12}" for g in ("total", "per command", *(g[:11] for g in EVENT_GROUPS))
    )
    print(f"\n{head}\n{'-' * len(head)}")
    result: dict[str, float] = {}
    for path in paths:
        histories = [h for p in totals.of(path) for h in p.histories]
        if not histories:
            continue
        totals_of = [sum(h.values()) for h in histories]
        mean = statistics.fmean(totals_of)
        result[path] = mean / CALLS
        groups = [statistics.fmean(h[g] for h in histories) for g in EVENT_GROUPS]
        label = f"{path} (n={len(histories)}, {min(totals_of)}–{max(totals_of)})"
        print(
            f"{label:<28}{mean:>12.1f}{mean / CALLS:>12.2f}"
            + "".join(f"{v:>12.1f}" for v in groups)
        )
    return result


# --------------------------------------------------------------------------- the stack


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Stack:
    """The processes this run started, stopped in reverse order whatever happens."""

    def __init__(self, tmp: Path, temporal_address: str | None) -> None:
        self.tmp = tmp
        self.run_id = f"{int(time.time()) % 100000:05d}{random.randrange(16**3):03x}"
        self.db_path = tmp / "releasegate.db"
        self.temporal_address = temporal_address
        self.task_queue = f"releasegate-bench-{self.run_id}"
        self.minimal_task_queue = f"minimal-bench-{self.run_id}"
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TEMPORAL_ADDRESS": str(self.temporal_address),
            "RELEASEGATE_DATABASE_URL": f"sqlite+aiosqlite:///{self.db_path}",
            "RELEASEGATE_TASK_QUEUE": self.task_queue,
            "RELEASEGATE_DATA_DIR": str(self.tmp),
            "PYTHONUNBUFFERED": "1",
        }

    def settings(self) -> Settings:
        return Settings(
            TEMPORAL_ADDRESS=str(self.temporal_address),
            RELEASEGATE_DATABASE_URL=f"sqlite+aiosqlite:///{self.db_path}",
            RELEASEGATE_TASK_QUEUE=self.task_queue,
            RELEASEGATE_DATA_DIR=self.tmp,
        )

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items()}

    def spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - the child owns it
        self.procs[name] = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

    def check_alive(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                tail = (self.tmp / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {p.returncode}:\n{tail}")

    def start_temporal(self) -> None:
        port, ui_port = free_port(), free_port()
        argv = [
            str(ROOT / ".venv" / "bin" / "temporal"),
            "server",
            "start-dev",
            "--headless",
            "--db-filename",
            str(self.tmp / "temporal.db"),
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=full",
            "--port",
            str(port),
            "--ui-port",
            str(ui_port),
            "--log-level",
            "error",
        ]
        for key in search.ALL:
            argv += ["--search-attribute", f"{key.name}={key._metadata_type}"]
        self.temporal_address = f"127.0.0.1:{port}"
        self.spawn("temporal", argv)
        self.wait(lambda: port_open(port), "the Temporal dev server", 60)

    def start_minimal_worker(self) -> None:
        """The worker of the minimal workflow (the limit), in a process of its own."""
        self.spawn(
            "minimal",
            [
                sys.executable,
                str(ROOT / "bench" / "minimal_workflow.py"),
                "--address",
                str(self.temporal_address),
                "--task-queue",
                self.minimal_task_queue,
            ],
        )
        log = self.tmp / "minimal.log"
        self.wait(lambda: "polling" in log.read_text(errors="replace"), "the minimal worker", 60)

    def start_services(self) -> None:
        upgrade_head_sync(f"sqlite+aiosqlite:///{self.db_path}")
        self.spawn("worker", [sys.executable, "-m", "services.worker"])
        self.spawn(
            "api",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "services.api.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.api_port),
                "--log-level",
                "warning",
            ],
        )

        def ready() -> bool:
            try:
                return httpx.get(f"{self.api_url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        self.wait(ready, "the API's /readyz", 90)

    def wait(self, check: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not come up in {timeout:.0f} s")
            time.sleep(0.2)

    def stop(self) -> None:
        for name, p in reversed(list(self.procs.items())):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    print(f"{name} ignored SIGTERM; killing it", file=sys.stderr)
                    p.kill()
                    p.wait()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="timed use cases per path")
    parser.add_argument("--concurrency", type=int, default=16, help="use cases in flight")
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="timed rounds; each runs both paths, the order alternating",
    )
    parser.add_argument(
        "--warmup", type=int, help="untimed use cases per path (default: 2 x concurrency)"
    )
    parser.add_argument("--temporal-address", help="reuse this Temporal server (host:port)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (databases, process logs)"
    )
    parser.add_argument(
        "--paths",
        default=",".join(PATHS),
        help="comma-separated paths to run, of http, direct, minimal (default: all three)",
    )
    parser.add_argument(
        "--history-sample",
        type=int,
        default=25,
        help="use cases per phase whose history events are counted (untimed)",
    )
    args = parser.parse_args()
    if args.n < args.rounds or args.concurrency < 1:
        parser.error("--n must be at least --rounds, --concurrency at least 1")
    args.paths = tuple(p.strip() for p in args.paths.split(",") if p.strip())
    if not args.paths or set(args.paths) - set(PATHS):
        parser.error(f"--paths takes a comma-separated list of {', '.join(PATHS)}")
    if args.warmup is None:
        args.warmup = 2 * args.concurrency
    return args


def failure(exc: Exception, interrupted: asyncio.Event, keep: bool) -> int:
    """Clear lines (and where the logs are) instead of a bare traceback; the exit status."""
    if interrupted.is_set():  # calls cut short by the interrupt fail as "unreachable"
        print("\ninterrupted", file=sys.stderr)
        return 130
    causes = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
    for cause in causes:
        print(f"\nbenchmark failed: {type(cause).__name__}: {cause}", file=sys.stderr)
    if not keep:
        print("(re-run with --keep to inspect the process logs)", file=sys.stderr)
    return 2


def main() -> int:
    args = parse_args()
    # Ctrl-C or SIGTERM: outside the event loop they raise KeyboardInterrupt; inside it they
    # cancel the benchmark. Either way the finally below stops every child this run started.
    interrupted = asyncio.Event()

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    async def interruptible() -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()

        def stop() -> None:
            interrupted.set()
            task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        return await benchmark(args, stack)

    signal.signal(signal.SIGTERM, on_sigterm)
    tmp = Path(tempfile.mkdtemp(prefix="releasegate-bench-"))
    stack = Stack(tmp, args.temporal_address)
    try:
        if stack.temporal_address is None:
            stack.start_temporal()
        stack.start_services()
        if "minimal" in args.paths:
            stack.start_minimal_worker()
        print(
            f"stack up: Temporal {stack.temporal_address}, API {stack.api_url}, "
            f"task queue {stack.task_queue}, data {tmp}",
            flush=True,
        )
        return asyncio.run(interruptible())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        return failure(exc, interrupted, args.keep)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the clean-up finish
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
