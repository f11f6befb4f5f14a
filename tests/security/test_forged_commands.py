"""Issue 11, item 1: anyone who can reach Temporal used to decide as anyone. Each attack here goes
through the real entry point an insider would use — the ``temporal`` CLI against the dev server
— and is refused with nothing recorded (an Update), or kept as a refused attempt that changes
nothing (a Signal). The run's legitimate commands come from the suite's signing client, as the
API's would."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from services.commands.signing import SigningInterceptor
from services.store.ledger import LedgerRepository
from services.worker.main import workflow_runner
from tests.conftest import KEYS, SIGNER
from tests.harness import ReleaseHarness
from tests.workflows.drive import advance_to
from tests.workflows.helpers import make_input
from workflows import credentials
from workflows.credentials import Credential, Keyring, Signer, TrustedKey
from workflows.model import Decision, Gate, GateDecision, Materiality, RaiseChange, Stage
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
    # both forged signals are kept as refused attempts, by the actor they only claimed
    refused = await handle.query(UseCaseRelease.refused_attempts)
    assert [(r.command, r.actor, r.refusal) for r in refused] == [
        ("change_finished", "unverified:change-1", "unauthenticated")
    ]
    assert "does not confirm it ended applied" in refused[0].detail
    refused = await child.query(UseCaseRelease.refused_attempts)
    assert [(r.command, r.actor, r.refusal) for r in refused] == [
        ("seed_evidence", "unverified:dana", "unauthenticated")
    ]
    for wid in (handle.id, child.id):
        kinds = await ledger_kinds(release, wid)
        assert kinds.count("refused") == 1, (wid, kinds)


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


# ----------------------------------------------------------------------------- keys


def client_signing_with(env: WorkflowEnvironment, *interceptors: Any) -> Client:
    """A Temporal client on the same server; ``interceptors``: how (if at all) it signs."""
    return Client(
        env.client.service_client,
        namespace=env.client.namespace,
        data_converter=pydantic_data_converter,
        interceptors=list(interceptors),
    )


async def accepted_updates(handle: WorkflowHandle[Any, Any], since: int) -> int:
    history = (await handle.fetch_history()).events
    return sum(
        1
        for e in history[since:]
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    )


def olga_hands_off(**extra: Any) -> GateDecision:
    return GateDecision(actor="olga", gate=Gate.OPS_HANDOFF, decision=Decision.APPROVE, **extra)


async def test_a_rotated_key_keeps_in_flight_runs_and_the_retired_key_signs_nothing_new(
    release: ReleaseHarness, temporal_env: WorkflowEnvironment
) -> None:
    """Rotation: the run was started and driven under the suite's key; the new key is added and
    the old one retired. The in-flight run takes the new key's commands, refuses the old key's
    (an Update before history, a Signal as a refused attempt) and its history, signed by both,
    still replays."""
    handle = await release.start(make_input("low"))
    await advance_to(handle, "ops_handoff", "low")
    new = Signer.generate("rotation-k2")
    retired = TrustedKey(SIGNER.kid, SIGNER.public_key().public_key, datetime.now(UTC))
    rotated = Keyring([new.public_key(), retired])
    credentials.configure(rotated)
    try:
        before = len((await handle.fetch_history()).events)
        with pytest.raises(WorkflowUpdateFailedError) as info:  # the old key: retired
            await handle.execute_update(UseCaseRelease.decide, olga_hands_off())
        assert isinstance(info.value.cause, ApplicationError)
        assert info.value.cause.type == "unauthenticated"
        assert "retired" in str(info.value.cause)
        assert await accepted_updates(handle, before) == 0
        await handle.signal(UseCaseRelease.decide_signal, olga_hands_off())
        refused: list[Any] = []
        for _ in range(100):
            refused = await handle.query(UseCaseRelease.refused_attempts)
            if refused:
                break
            await asyncio.sleep(0.05)
        assert [(r.refusal.value, r.actor) for r in refused] == [
            ("unauthenticated", "unverified:olga")
        ]
        assert (await handle.query(UseCaseRelease.state)).stage == Stage.OPS_HANDOFF

        # the new key: the same run, in flight since before the rotation, takes it
        rotated_client = client_signing_with(temporal_env, SigningInterceptor(new))
        view = await rotated_client.get_workflow_handle(handle.id).execute_update(
            UseCaseRelease.decide, olga_hands_off()
        )
        assert view.stage == Stage.GO_LIVE

        # its history — a start and Updates under the old key, an Update under the new one,
        # a refused Signal — replays under the rotated keys
        replayer = Replayer(
            workflows=[UseCaseRelease],
            data_converter=pydantic_data_converter,
            workflow_runner=workflow_runner(),
        )
        await replayer.replay_workflow(await handle.fetch_history())
    finally:
        credentials.configure(KEYS.keyring)


def _lifted(wid: str, scope: str) -> Credential:
    """A valid credential for olga's hand-off of ``wid`` under update id ``scope``."""
    now = datetime.now(UTC)
    return SIGNER.sign(wid, "decide", olga_hands_off(), scope=scope, now=now)


FORGERIES: dict[str, Any] = {
    # a key of one's own under the trusted key's id
    "own-key": lambda wid: (olga_hands_off(), "u-1", Signer.generate(SIGNER.kid)),
    # olga's credential lifted onto bo's decision
    "other-payload": lambda wid: (
        GateDecision(
            actor="bo",
            gate=Gate.OPS_HANDOFF,
            decision=Decision.APPROVE,
            credential=_lifted(wid, "u-1"),
        ),
        "u-1",
        None,
    ),  # fmt: skip
    # olga's credential replayed under another update id
    "other-update": lambda wid: (olga_hands_off(credential=_lifted(wid, "u-1")), "u-2", None),
    # olga's credential for another run
    "other-run": lambda wid: (
        olga_hands_off(credential=_lifted("usecase-elsewhere", "u-1")),
        "u-1",
        None,
    ),
}


@pytest.mark.parametrize("forgery", FORGERIES)
async def test_a_credential_forged_or_lifted_is_refused_before_history(
    release: ReleaseHarness, temporal_env: WorkflowEnvironment, forgery: str
) -> None:
    """Through a Temporal client (the SDK an insider with frontend access would use)."""
    handle = await release.start(make_input("low"))
    await advance_to(handle, "ops_handoff", "low")
    cmd, update_id, signer = FORGERIES[forgery](handle.id)
    interceptors = [SigningInterceptor(signer)] if signer is not None else []
    outsider = client_signing_with(temporal_env, *interceptors)
    before = len((await handle.fetch_history()).events)
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await outsider.get_workflow_handle(handle.id).execute_update(
            UseCaseRelease.decide, cmd, id=update_id
        )
    assert isinstance(info.value.cause, ApplicationError)
    assert info.value.cause.type == "unauthenticated", info.value.cause
    assert await accepted_updates(handle, before) == 0
    assert (await handle.query(UseCaseRelease.state)).stage == Stage.OPS_HANDOFF
