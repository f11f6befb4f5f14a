"""The limit: the governed path's 8 calls against a minimal workflow on the same Temporal server.

``MinimalRelease`` keeps a stage and a list of facts, checks in an update validator that each
call is the next step of the path and by whom, and answers with a small state: what any
workflow that takes the 8 calls must at least do. It has no ledger, no read model, no
notifications and no search attributes, so what ReleaseGate spends beyond it is the price of
governance. ``bench/gated_path.py`` drives it as its ``minimal`` path with the same Temporal
operations the API's command layer makes: call 1 starts the run and queries its state, calls
2-8 are Updates that return the state.

The worker runs in a process of its own, like ReleaseGate's:

    .venv/bin/python bench/minimal_workflow.py --address HOST:PORT --task-queue NAME

This module must import without side effects: the workflow sandbox imports it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow

PATH = (
    "scoping",
    "specification",
    "implementation",
    "validation",
    "risk_signoff",
    "ops_handoff",
    "go_live",
    "live",
)
# who may take each step: the delivery lead completes stages, one approver per gate
DECIDERS = {
    "scoping": "dana",
    "specification": "dana",
    "implementation": "dana",
    "validation": "dana",
    "risk_signoff": "rita",
    "ops_handoff": "olga",
    "go_live": "bo",
}


@dataclass
class Step:
    """One call of the path: complete ``stage`` (or decide the gate of that name)."""

    stage: str
    actor: str
    evidence: list[str] = field(default_factory=list)


@dataclass
class MinimalState:
    key: str
    stage: str
    facts: int


@workflow.defn(name="MinimalRelease")
class MinimalRelease:
    def __init__(self) -> None:
        self.key = ""
        self.stage = PATH[0]
        self.facts: list[dict[str, Any]] = []
        self.retired = False

    @workflow.run
    async def run(self, key: str) -> str:
        self.key = key
        self.facts.append({"kind": "run_started", "at": workflow.now().isoformat()})
        # stays open after ``live`` like a governed run does
        await workflow.wait_condition(lambda: self.retired)
        return self.stage

    @workflow.query
    def state(self) -> MinimalState:
        return MinimalState(self.key, self.stage, len(self.facts))

    @workflow.update
    def advance(self, step: Step) -> MinimalState:
        self.facts.append(
            {"kind": step.stage, "actor": step.actor, "evidence": list(step.evidence)}
        )
        self.stage = PATH[PATH.index(self.stage) + 1]
        return MinimalState(self.key, self.stage, len(self.facts))

    @advance.validator
    def _check(self, step: Step) -> None:
        if step.stage != self.stage:
            raise ValueError(f"{step.stage} is not open (the run is at {self.stage})")
        if DECIDERS.get(step.stage) != step.actor:
            raise ValueError(f"{step.actor} may not complete {step.stage}")


async def _serve(address: str, task_queue: str) -> None:
    import asyncio
    import signal

    from temporalio.client import Client
    from temporalio.worker import Worker

    client = await Client.connect(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(client, task_queue=task_queue, workflows=[MinimalRelease]):
        print(f"minimal worker polling {task_queue} on {address}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    import argparse
    import asyncio

    parser = argparse.ArgumentParser(description="worker of the minimal workflow")
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    args = parser.parse_args()
    asyncio.run(_serve(args.address, args.task_queue))
