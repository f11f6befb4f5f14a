"""Issue 11, item 1: anyone who can reach Temporal used to decide as anyone. Each attack here goes
through the real entry point an insider would use — the ``temporal`` CLI against the dev server
— and is refused with nothing recorded (an Update), or kept as a refused attempt that changes
nothing (a Signal). The run's legitimate commands come from the suite's signing client, as the
API's would."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from services.store.ledger import LedgerRepository
from tests.harness import ReleaseHarness
from tests.workflows.drive import advance_to
from tests.workflows.helpers import make_input
from workflows.model import Materiality, RaiseChange, Stage
from workflows.release import UseCaseRelease


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


async def temporal(temporal_bin: str, env: WorkflowEnvironment, *args: str) -> Done:
    """The ``temporal`` CLI, without blocking this process's event loop (the worker runs on it
    and must answer an Update while the CLI waits)."""
    address = env.client.service_client.config.target_host
    proc = await asyncio.create_subprocess_exec(
        temporal_bin,
        *args,
        "--address",
        address,
        "--namespace",
        "default",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return Done(proc.returncode or 0, out.decode(), err.decode())


def decision(actor: str, gate: str, **extra: Any) -> str:
    return json.dumps({"actor": actor, "gate": gate, "decision": "approve", **extra})


async def ledger_kinds(release: ReleaseHarness, wid: str) -> list[str]:
    async with release.sessionmaker() as session:
        return [e.kind for e in await LedgerRepository(session).entries(wid)]


async def settled(release: ReleaseHarness, wid: str, count: int) -> list[str]:
    kinds: list[str] = []
    for _ in range(100):
        kinds = await ledger_kinds(release, wid)
        if len(kinds) >= count:
            return kinds
        await asyncio.sleep(0.05)
    return kinds


async def test_a_forged_decision_signal_is_kept_as_refused_and_decides_nothing(
    release: ReleaseHarness, temporal_env: WorkflowEnvironment, temporal_bin: str
) -> None:
    handle = await release.start(make_input("high"))
    await advance_to(handle, "risk_signoff", "high")
    before = await handle.query(UseCaseRelease.state)
    for actor in ("rita", "raj"):  # the quorum-2 risk sign-off, as both approvers
        done = await temporal(
            temporal_bin,
            temporal_env,
            "workflow", "signal", "--workflow-id", handle.id, "--name", "decide_signal",
            "--input", decision(actor, "risk_signoff"),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    refused = []
    for _ in range(100):
        refused = await handle.query(UseCaseRelease.refused_attempts)
        if len(refused) == 2:
            break
        await asyncio.sleep(0.05)
    assert [(r.refusal.value, r.actor) for r in refused] == [
        ("unauthenticated", "unverified:rita"),
        ("unauthenticated", "unverified:raj"),
    ]
    view = await handle.query(UseCaseRelease.state)
    assert view.stage == Stage.RISK_SIGNOFF
    assert view.open_gate is not None
    assert view.open_gate.approvals == []
    kinds = await settled(release, handle.id, before.event_count + 2)
    assert kinds.count("refused") == 2
    assert "decision" not in kinds[before.event_count :]


@pytest.mark.parametrize("channel", ["api", "slack"])
async def test_a_forged_decision_update_is_refused_before_history(
    release: ReleaseHarness, temporal_env: WorkflowEnvironment, temporal_bin: str, channel: str
) -> None:
    handle = await release.start(make_input("low"))
    await advance_to(handle, "ops_handoff", "low")
    before = len((await handle.fetch_history()).events)
    done = await temporal(
        temporal_bin,
        temporal_env,
        "workflow", "update", "execute", "--workflow-id", handle.id, "--name", "decide",
        "--input", decision("olga", "ops_handoff", channel=channel),
    )  # fmt: skip
    assert done.returncode != 0
    assert "credential" in (done.stderr + done.stdout)
    view = await handle.query(UseCaseRelease.state)
    assert view.stage == Stage.OPS_HANDOFF
    history = (await handle.fetch_history()).events
    # a rejected Update leaves no event of its own (a workflow task at most)
    assert not [
        e
        for e in history[before:]
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    ]


async def test_a_forged_change_report_applies_nothing(
    release: ReleaseHarness, temporal_env: WorkflowEnvironment, temporal_bin: str
) -> None:
    handle = await release.start(make_input("low"))
    await advance_to(handle, "live", "low")
    view = await handle.execute_update(
        UseCaseRelease.raise_change,
        RaiseChange(actor="dana", summary="never approved", materiality=Materiality.MINOR),
    )
    assert view.changes[-1].status == "open"
    report = json.dumps(
        {
            "change_id": "change-1",
            "outcome": "applied",
            "at": "2026-12-01T00:00:00Z",
            "evidence": [],
        }
    )
    done = await temporal(
        temporal_bin,
        temporal_env,
        "workflow", "signal", "--workflow-id", handle.id, "--name", "change_finished",
        "--input", report,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seed = json.dumps(
        {
            "actor": "dana",
            "evidence": [
                {"kind": "x", "name": "forged", "uri": "https://e.example/x", "sha256": "a" * 64}
            ],
        }
    )
    done = await temporal(
        temporal_bin,
        temporal_env,
        "workflow", "signal", "--workflow-id", view.changes[-1].workflow_id,
        "--name", "seed_evidence", "--input", seed,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    await asyncio.sleep(1.0)  # the parent asks Temporal how change-1 ended: it has not
    view = await handle.query(UseCaseRelease.state)
    assert view.live_version == 1
    assert view.changes[-1].status == "open"
    child = release.client.get_workflow_handle(view.changes[-1].workflow_id)
    assert not (await child.query(UseCaseRelease.state)).evidence
    assert "change_applied" not in await ledger_kinds(release, handle.id)


async def test_a_run_started_without_a_credential_fails_at_once(
    release: ReleaseHarness, temporal_env: WorkflowEnvironment, temporal_bin: str
) -> None:
    inp = make_input("low")
    wid = f"usecase-{inp.key}"
    done = await temporal(
        temporal_bin,
        temporal_env,
        "workflow", "start", "--workflow-id", wid, "--type", "UseCaseRelease",
        "--task-queue", release.task_queue, "--input", inp.model_dump_json(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    handle = release.client.get_workflow_handle(wid)
    for _ in range(100):
        desc = await handle.describe()
        if desc.status is not None and desc.status.name == "FAILED":
            break
        await asyncio.sleep(0.05)
    assert desc.status is not None
    assert desc.status.name == "FAILED"
    assert await ledger_kinds(release, wid) == []
