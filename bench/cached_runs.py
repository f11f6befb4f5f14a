"""Worker memory with many live runs cached: RSS and bytes per cached run.

Starts the stack as ``bench/gated_path.py`` does (Temporal dev server, worker, API, SQLite
ledger), with the worker's ``RELEASEGATE_MAX_CACHED_WORKFLOWS`` above the run count and its
SDK metrics on, then keeps N runs open in that one worker:

1. ``--live`` use cases (default 500) go through the whole 8-call low-tier path to ``live``
   through the command layer (the ``direct`` path of ``gated_path.py``);
2. the rest of the N runs are started (create: one call each) and wait in ``scoping``.

Every run stays open, so every one stays in the worker's cache (checked against the SDK's
``temporal_sticky_cache_size`` gauge). The worker's resident set size (``VmRSS``) is read
before any run (after a warm-up of 16 runs), after the live runs, at every thousand runs and
at the end; the report gives bytes per cached run (live and just started) and the RSS at N
against the 1 GiB target.

    .venv/bin/python bench/cached_runs.py [--runs 10000] [--live 500] [--concurrency 16]
        [--temporal-address HOST:PORT] [--keep]

Exit status 0 when the worker's RSS at N runs is at most 1 GiB, 1 when above, 2 on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import run_on_stack  # noqa: E402
from bench.gated_path import (  # noqa: E402
    DirectDriver,
    Recorder,
    Stack,
    command_line,
    create_body,
    drive,
    free_port,
)
from services import command_keys  # noqa: E402
from services.commands.errors import Unavailable  # noqa: E402
from services.commands.gateway import UseCaseGateway  # noqa: E402
from services.commands.service import CommandService  # noqa: E402
from services.temporal import connect  # noqa: E402
from workflows.policy import load_directory, load_policy  # noqa: E402

TARGET_BYTES = 1 << 30
WARMUP = 16
MIB = 1 << 20


class CacheStack(Stack):
    """The benchmark stack with a worker cache large enough for every run, and its metrics."""

    def __init__(self, tmp: Path, temporal_address: str | None, cache: int) -> None:
        super().__init__(tmp, temporal_address)
        self.cache = cache
        self.metrics_port = free_port()

    def env(self) -> dict[str, str]:
        return {
            **super().env(),
            "RELEASEGATE_MAX_CACHED_WORKFLOWS": str(self.cache),
            "RELEASEGATE_WORKER_METRICS_PORT": str(self.metrics_port),
        }


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def cached(metrics_url: str) -> int | None:
    """The SDK's sticky cache size gauge (None when the worker does not report it)."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(metrics_url, timeout=5)).text
    for line in text.splitlines():
        if line.startswith("temporal_sticky_cache_size"):
            return int(float(line.rsplit(" ", 1)[1]))
    return None


class Starter:
    """Create only: the run waits in scoping (one call). A start the command layer reports as
    stuck (a workflow task that failed, e.g. the SDK's deadlock detector after a long pause of
    the worker) is asked again: the same key and body answer with the same run, once Temporal
    retried its task. Each such retry is counted and reported."""

    final_stage = "scoping"

    def __init__(self, driver: DirectDriver) -> None:
        self.driver = driver
        self.retried = 0

    async def run(self, key: str, n: int, rec: Recorder) -> str:
        body = create_body(key, n)
        for _attempt in range(30):
            try:
                view = await rec.time(self.driver._start(body))
                return str(view.stage.value)
            except Unavailable:
                self.retried += 1
                await asyncio.sleep(2.0)
        raise RuntimeError(f"{key} did not start")


async def benchmark(args: argparse.Namespace, stack: CacheStack) -> int:
    settings = stack.settings()
    client = await connect(settings, signer=command_keys.for_process(settings).signer)
    commands = CommandService(
        UseCaseGateway(client, settings),
        load_policy(settings.policy_path),
        load_directory(settings.directory_path),
    )
    direct = DirectDriver(commands)
    worker = stack.pids()["worker"]
    metrics_url = f"http://127.0.0.1:{stack.metrics_port}/metrics"
    counter = iter(range(10**9))

    def keys(count: int) -> list[str]:
        return [f"c{stack.run_id}-{next(counter)}" for _ in range(count)]

    await drive(direct, keys(WARMUP), 8, Recorder())
    await asyncio.sleep(1.0)
    base_runs, base_rss = WARMUP, rss_bytes(worker)
    print(f"warm-up: {WARMUP} live runs, worker RSS {base_rss / MIB:.0f} MiB", flush=True)
    samples: list[tuple[int, int, int | None, float]] = [
        (base_runs, base_rss, await cached(metrics_url), 0.0)
    ]
    t0 = time.perf_counter()
    live = max(0, min(args.live, args.runs - WARMUP))
    for start in range(0, live, 100):
        await drive(direct, keys(min(100, live - start)), args.concurrency, Recorder())
    await asyncio.sleep(1.0)
    live_rss = rss_bytes(worker)
    samples.append((WARMUP + live, live_rss, await cached(metrics_url), time.perf_counter() - t0))
    print(f"{WARMUP + live} runs ({live} taken to live): RSS {live_rss / MIB:.0f} MiB", flush=True)
    starter = Starter(direct)
    total = WARMUP + live
    while total < args.runs:
        step = min(1000 - total % 1000, args.runs - total)
        await drive(starter, keys(step), args.concurrency, Recorder())
        total += step
        await asyncio.sleep(0.5)
        sample = (total, rss_bytes(worker), await cached(metrics_url), time.perf_counter() - t0)
        samples.append(sample)
        print(
            f"{total} runs: RSS {sample[1] / MIB:.0f} MiB, cached {sample[2]}, {sample[3]:.0f} s",
            flush=True,
        )
    await asyncio.sleep(2.0)
    end_rss = rss_bytes(worker)
    samples.append((total, end_rss, await cached(metrics_url), time.perf_counter() - t0))
    log = (stack.tmp / "worker.log").read_text(errors="replace")
    print(
        f"\nstarts asked again after a failed workflow task: {starter.retried}; the worker's"
        f" log names {log.count('Potential deadlock detected')} deadlock-detector failures"
        f" (a workflow activation that took over 2 s) and"
        f" {log.count('store.persist failed')} store steps that fell back to activities"
    )
    return report(args, samples, base_rss, live, live_rss, end_rss, total)


def report(
    args: argparse.Namespace,
    samples: list[tuple[int, int, int | None, float]],
    base_rss: int,
    live: int,
    live_rss: int,
    end_rss: int,
    total: int,
) -> int:
    print(f"\ncommand: {command_line()}\n")
    head = f"{'runs':>8}{'cached':>10}{'RSS MiB':>10}{'s':>8}"
    print(f"{head}\n{'-' * len(head)}")
    for runs, rss, cache, at in samples:
        print(f"{runs:>8}{cache if cache is not None else '?':>10}{rss / MIB:>10.0f}{at:>8.0f}")
    per_live = (live_rss - base_rss) / live if live else float("nan")
    started = total - WARMUP - live
    per_started = (end_rss - live_rss) / started if started else float("nan")
    per_run = (end_rss - base_rss) / max(1, total - WARMUP)
    print(
        f"\nbytes per cached run: {per_run:,.0f} overall; {per_live:,.0f} per live run"
        f" ({live} runs through the 8 calls), {per_started:,.0f} per started run ({started})"
    )
    at_10k_live = base_rss + per_live * 10_000 if live else float("nan")
    print(
        f"worker RSS at {total} cached runs: {end_rss / MIB:.0f} MiB"
        f" (baseline {base_rss / MIB:.0f} MiB); 10,000 live runs would take about"
        f" {at_10k_live / MIB:.0f} MiB"
    )
    verdict = "met" if end_rss <= TARGET_BYTES else "missed"
    print(f"target worker RSS ≤ 1 GiB at {total} runs: {verdict}")
    print(f"command: {command_line()}")
    return 0 if end_rss <= TARGET_BYTES else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000, help="runs kept cached")
    parser.add_argument("--live", type=int, default=500, help="of which taken to live first")
    parser.add_argument("--concurrency", type=int, default=16, help="calls in flight")
    parser.add_argument("--temporal-address", help="reuse this Temporal server (host:port)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.runs <= WARMUP:
        parser.error(f"--runs must be above {WARMUP}")
    return args


def main() -> int:
    args = parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="releasegate-cache-"))
    # room for every run and a margin: an eviction would hide the memory being measured
    stack = CacheStack(tmp, args.temporal_address, cache=args.runs + 100)
    return run_on_stack(stack, tmp, args.keep, lambda: benchmark(args, stack))


if __name__ == "__main__":
    sys.exit(main())
