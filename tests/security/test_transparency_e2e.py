"""An auditor's walk-through end to end: a high-tier use case goes live through the API and a
real worker that signs checkpoints (directory + a loopback witness that countersigns); the
auditor takes the evidence pack, the checkpoint directory and the published keys, and verifies
the go-live approval with ``releasegate audit verify`` and with the auditor's one-file script
copied elsewhere — no server, no database. Then the administrator rewrites a decision."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from temporalio.testing import WorkflowEnvironment

from services.api.app import create_app
from services.settings import Settings
from services.store.db import make_engine, make_sessionmaker, session_scope
from services.store.migrate import upgrade_head
from services.store.models import LedgerEntry
from services.tlog import auditor
from services.tlog import keys as checkpoint_keys
from services.tlog.publish import checkpointing
from services.worker.main import release_activities
from services.worker.notify import LogAdapter
from tests.api.conftest import approve, auth
from tests.api.test_use_cases import create, walk
from tests.harness import HOOK_ALLOWED_HOSTS, HOOK_SECRET, release_worker, suite_settings
from tests.security.test_offline_audit import rehash
from tests.security.witness import LoopbackWitness

RELEASEGATE = Path(sys.executable).parent / "releasegate"
AUDITOR_SCRIPT = Path(auditor.__file__)


@dataclass
class Stack:
    api: httpx.AsyncClient
    settings: Settings
    witness: LoopbackWitness
    sessionmaker: Any


@pytest.fixture
async def stack(temporal_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Stack]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'releasegate.db'}"
    await upgrade_head(url)
    base = suite_settings(
        temporal_env,
        f"tlog-{uuid.uuid4().hex[:8]}",
        url,
        RELEASEGATE_CHECKPOINT_DIR=str(tmp_path / "checkpoints"),
        RELEASEGATE_CHECKPOINT_KEYS=str(tmp_path / "checkpoint-keys.json"),
        RELEASEGATE_CHECKPOINT_SECONDS=0.3,
        RELEASEGATE_HOOK_ALLOWED_HOSTS=HOOK_ALLOWED_HOSTS,
    )
    # the dev key is made on first use, as under `make run`
    witness = LoopbackWitness(checkpoint_keys.for_process(base).verifiers)
    await witness.start()
    settings = base.model_copy(
        update={"checkpoint_witness_url": witness.url, "checkpoint_witness_key": witness.vkey}
    )
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    stop = asyncio.Event()
    async with httpx.AsyncClient() as http:
        signing = checkpointing(settings, sessionmaker, http)
        assert signing is not None
        activities = release_activities(
            sessionmaker,
            [LogAdapter()],
            http,
            HOOK_SECRET,
            settings.hook_allow_list,
            temporal_env.client,
            signing,
        )
        worker = release_worker(temporal_env.client, settings.task_queue, activities)
        app = create_app(settings)
        timer = asyncio.create_task(signing.run_timer(stop))
        try:
            async with worker, app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
                    yield Stack(api, settings, witness, sessionmaker)
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
            await witness.stop()
            await engine.dispose()


async def proven_pack(api: httpx.AsyncClient, uc_id: str) -> dict[str, Any]:
    """The pack once every entry the run recorded is covered by a checkpoint."""
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        state = (await api.get(f"/v1/use-cases/{uc_id}", headers=auth("eve"))).json()
        r = await api.get(f"/v1/use-cases/{uc_id}/evidence-pack", headers=auth("eve"))
        # 404 until the read model names eve (need-to-know): the run is that new
        assert r.status_code in (200, 404), r.text
        pack: dict[str, Any] = r.json()
        tlog = pack.get("transparency") or {}
        if (
            r.status_code == 200
            and pack["ledger"]["entries"] == state["event_count"]
            and tlog["checkpoint"]
            and not tlog["pending"]
        ):
            return pack
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"pack of {uc_id} not covered by a checkpoint: {tlog}")
        await asyncio.sleep(0.2)


def run(*argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        # no API URL, no token, no database: offline
        env={"PATH": "/usr/bin:/bin"},
    )


async def test_auditor_verifies_the_go_live_approval_offline(stack: Stack, tmp_path: Path) -> None:
    api = stack.api
    uc = await create(api, "high")
    await walk(api, uc, "live")
    pack = await proven_pack(api, uc["id"])
    go_live = next(d for d in pack["decisions"] if d["gate"] == "go_live")
    assert (go_live["actor"], go_live["decision"]) == ("bo", "approve")
    assert {leaf["seq"] for leaf in pack["transparency"]["leaves"]} == set(
        range(1, pack["ledger"]["entries"] + 1)
    )
    assert pack["transparency"]["run_head"]["seq"] == pack["ledger"]["entries"]

    # what the auditor takes away: the pack, the checkpoint directory, the published keys
    keys = await api.get("/v1/ledger/keys")  # public, no token
    assert keys.status_code == 200, keys.text
    assert [k["active"] for k in keys.json()["keys"]] == [True]
    assert keys.json()["witnesses"] == [stack.witness.vkey]
    audit = tmp_path / "auditor"
    audit.mkdir()
    (audit / "keys.json").write_text(keys.text)
    (audit / "pack.json").write_text(json.dumps(pack))
    shutil.copytree(stack.settings.checkpoint_dir_path, audit / "checkpoints")
    # the witness countersigned the checkpoints it was shown, the pack's among them
    assert stack.witness.cosigned
    assert "witness.test/w1" in pack["transparency"]["checkpoint"]

    result = run(
        RELEASEGATE, "audit", "verify", audit / "pack.json",
        "--checkpoints", audit / "checkpoints", "--key", audit / "keys.json",
        "--witness", stack.witness.vkey,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{uc['id']}: VERIFIED" in result.stdout

    # the auditor's one-file verifier, copied away from this project, says the same
    script = audit / "verify_pack.py"
    shutil.copy(AUDITOR_SCRIPT, script)
    result = run(
        sys.executable, script, "pack.json", "--checkpoints", "checkpoints", "--key", "keys.json",
        cwd=audit,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr

    # consecutive checkpoints through the API: a consistency proof that verifies
    sizes = sorted(int(p.name.split(".")[0]) for p in (audit / "checkpoints").glob("*.note"))
    assert len(sizes) >= 2
    r = await api.get(
        "/v1/ledger/consistency", params={"from": sizes[-2], "to": sizes[-1]}, headers=auth("eve")
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert auditor.verify_consistency(
        sizes[-2],
        sizes[-1],
        bytes.fromhex(body["from_root"]),
        bytes.fromhex(body["to_root"]),
        [bytes.fromhex(p) for p in body["proof"]],
    )
    assert body["checkpoints"]["to"] is not None
    for params in ({"from": 5, "to": 2}, {"from": 0, "to": 10**9}, {"from": "x", "to": 1}):
        r = await api.get("/v1/ledger/consistency", params=params, headers=auth("eve"))
        assert r.status_code == 422, (params, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    assert (await api.get("/v1/ledger/consistency", params={"from": 0, "to": 1})).status_code == 401

    # the administrator turns bo's go-live approval into someone else's and re-hashes
    async with session_scope(stack.sessionmaker) as session:
        await session.execute(
            update(LedgerEntry)
            .where(LedgerEntry.workflow_id == uc["id"], LedgerEntry.seq == go_live["seq"])
            .values(actor="mallory")
        )
        await rehash(session, uc["id"], go_live["seq"])
    forged = (await api.get(f"/v1/use-cases/{uc['id']}/evidence-pack", headers=auth("eve"))).json()
    assert forged["ledger"]["verify"]["ok"] is True  # the database alone is fooled
    (audit / "forged.json").write_text(json.dumps(forged))
    result = run(
        RELEASEGATE, "audit", "verify", audit / "forged.json",
        "--checkpoints", audit / "checkpoints", "--key", audit / "keys.json",
    )  # fmt: skip
    assert result.returncode == 1
    assert f"first bad entry: seq {go_live['seq']}" in result.stdout


async def test_a_high_tier_decision_is_checkpointed_at_once(stack: Stack) -> None:
    api = stack.api
    uc = await create(api, "high")
    await walk(api, uc, "scope_approval")
    r = await approve(api, f"/v1/use-cases/{uc['id']}", "scope_approval", "bo")
    assert r.status_code == 200, r.text
    pack = await proven_pack(api, uc["id"])
    decision = next(d for d in pack["decisions"] if d["gate"] == "scope_approval")
    leaf = next(x for x in pack["transparency"]["leaves"] if x["seq"] == decision["seq"])
    assert leaf["leaf_index"] < pack["transparency"]["tree_size"]
