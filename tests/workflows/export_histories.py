"""Export representative UseCaseRelease histories as JSON for the replay suite.

Run after a deliberate, compatible workflow change to refresh the fixtures:

    .venv/bin/python -m tests.workflows.export_histories

Each scenario runs against a fresh dev server with the real activities (SQLite ledger), and
the history lands in tests/workflows/histories/<scenario><suffix>.json; ``--suffix`` keeps the
histories of earlier versions beside the new ones (``ids.json`` gains the new entries). The
commands are signed with a fresh key pair whose public key is kept in ``keys.json``: replaying
a signed start or decision Signal verifies it again.

    .venv/bin/python -m tests.workflows.export_histories --suffix _2026_12
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

HERE = Path(__file__).parent / "histories"


async def _scenarios(client: Client, task_queue: str) -> dict[str, WorkflowHandle]:
    from tests.workflows.drive import advance_to, decide
    from tests.workflows.helpers import make_input
    from workflows.model import Materiality, RaiseChange, Resume, Suspend
    from workflows.release import UseCaseRelease

    async def start(tier: str, name: str) -> WorkflowHandle:
        inp = make_input(tier, key=f"replay-{name}-{uuid.uuid4().hex[:6]}")
        return await client.start_workflow(
            UseCaseRelease.run, inp, id=f"usecase-{inp.key}", task_queue=task_queue
        )

    out: dict[str, WorkflowHandle] = {}
    for tier in ("low", "medium", "high"):
        h = await start(tier, f"{tier}-happy")
        await advance_to(h, "live", tier)
        out[f"{tier}_happy_path"] = h

    h = await start("low", "rework")
    await advance_to(h, "risk_signoff", "low")
    await decide(h, "rita", "risk_signoff", "request_changes", "needs a bias evaluation")
    await advance_to(h, "live", "low")
    out["rework_loop"] = h

    h = await start("low", "suspend")
    await advance_to(h, "live", "low")
    await h.execute_update(UseCaseRelease.suspend, Suspend(actor="olga", reason="drift"))
    await h.execute_update(UseCaseRelease.resume, Resume(actor="tom", reason="fixed"))
    await decide(h, "rita", "resume_approval")
    await decide(h, "bo", "resume_approval")
    out["suspend_resume"] = h

    h = await start("low", "change")
    await advance_to(h, "live", "low")
    view = await h.execute_update(
        UseCaseRelease.raise_change,
        RaiseChange(actor="dana", summary="new prompt", materiality=Materiality.MINOR),
    )
    child = client.get_workflow_handle(view.changes[-1].workflow_id)
    await decide(child, "tom", "change_approval")
    for _ in range(100):
        if (await h.query(UseCaseRelease.state)).live_version == 2:
            break
        await asyncio.sleep(0.05)
    out["change_request"] = h
    out["change_request_child"] = child
    await asyncio.sleep(0.5)  # let the run loops ship their last activities
    return out


async def export(target: Path = HERE, suffix: str = "") -> list[Path]:
    from services import command_keys
    from services.commands.signing import SigningInterceptor
    from services.store.db import make_engine, make_sessionmaker
    from services.store.migrate import upgrade_head
    from services.worker.main import release_activities, workflow_runner
    from services.worker.notify import LogAdapter
    from workflows import credentials, search
    from workflows.release import UseCaseRelease

    target.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(__import__("sys").executable).parent
    keys_file = target / "keys.json"
    pair = command_keys.generate(f"export{suffix or '-default'}")
    signing = pair["signing"]
    assert isinstance(signing, dict)
    signer = credentials.Signer.from_text(str(signing["kid"]), str(signing["private_key"]))
    trusted = json.loads(keys_file.read_text()) if keys_file.exists() else {"trusted": []}
    trusted["trusted"] = [k for k in trusted["trusted"] if k["kid"] != signer.kid] + [
        {"kid": signer.kid, "public_key": signer.public_key().public_key}
    ]
    credentials.configure(
        credentials.Keyring(
            credentials.TrustedKey(k["kid"], k["public_key"]) for k in trusted["trusted"]
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/ledger.db"
        await upgrade_head(url)
        engine = make_engine(url)
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(bin_dir / "temporal"),
            data_converter=pydantic_data_converter,
            search_attributes=search.ALL,
            dev_server_log_level="error",
            interceptors=[SigningInterceptor(signer)],
        )
        written: list[Path] = []
        async with env, httpx.AsyncClient() as http:
            task_queue = "replay-export"
            async with Worker(
                env.client,
                task_queue=task_queue,
                workflows=[UseCaseRelease],
                workflow_runner=workflow_runner(),
                activities=release_activities(
                    make_sessionmaker(engine), [LogAdapter()], http, None, client=env.client
                ),
            ):
                handles = await _scenarios(env.client, task_queue)
            ids_file = target / "ids.json"
            ids: dict[str, str] = json.loads(ids_file.read_text()) if ids_file.exists() else {}
            for name, handle in handles.items():
                history = await handle.fetch_history()
                path = target / f"{name}{suffix}.json"
                path.write_text(history.to_json())
                ids[f"{name}{suffix}"] = handle.id
                written.append(path)
            keys_file.write_text(json.dumps(trusted, indent=2, sort_keys=True) + "\n")
            # replay needs each history's original workflow id (child ids derive from it)
            (target / "ids.json").write_text(json.dumps(ids, indent=2, sort_keys=True) + "\n")
        await engine.dispose()
    return written


def main(run: Callable[..., Awaitable[list[Path]]] = export) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--suffix", default="", help="appended to each scenario's file name")
    args = parser.parse_args()
    for path in asyncio.run(run(HERE, args.suffix)):
        print(f"wrote {path}")  # noqa: T201


if __name__ == "__main__":
    main()
