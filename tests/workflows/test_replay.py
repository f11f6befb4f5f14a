"""Safe evolution: recorded histories replay against today's workflow code.

An unguarded change to what the workflow does fails replay; the same change behind
``workflow.patched`` passes. Refresh the fixtures with
``python -m tests.workflows.export_histories`` after a deliberate, compatible change.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from services.worker.main import workflow_runner
from workflows import credentials
from workflows.model import UseCaseInput, UseCaseOutcome
from workflows.release import UseCaseRelease

FOLDER = Path(__file__).parent / "histories"
IDS: dict[str, str] = json.loads((FOLDER / "ids.json").read_text())
HISTORIES = sorted(p for p in FOLDER.glob("*.json") if p.stem in IDS)
# the public keys that signed the exported histories' commands: replay verifies them again
FIXTURE_KEYS = (
    [
        credentials.TrustedKey(k["kid"], k["public_key"])
        for k in json.loads((FOLDER / "keys.json").read_text())["trusted"]
    ]
    if (FOLDER / "keys.json").exists()
    else []
)


@pytest.fixture(autouse=True)
def _fixture_keys_trusted() -> Iterator[None]:
    before = credentials.keyring()
    credentials.configure(credentials.Keyring([*before.keys.values(), *FIXTURE_KEYS]))
    yield
    credentials.configure(before)


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(IDS[path.stem], path.read_text())


def test_the_representative_histories_are_there() -> None:
    names = {p.stem for p in HISTORIES}
    assert {
        "low_happy_path",
        "medium_happy_path",
        "high_happy_path",
        "rework_loop",
        "suspend_resume",
        "change_request",
    } <= names


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays(path: Path) -> None:
    replayer = Replayer(
        workflows=[UseCaseRelease],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    await replayer.replay_workflow(load(path))


@workflow.defn(name="UseCaseRelease", sandboxed=False)
class UnguardedChange(UseCaseRelease):
    """Someone adds a pause before shipping side effects, without a patch."""

    @workflow.run
    async def run(self, inp: UseCaseInput) -> UseCaseOutcome:
        return await super().run(inp)

    async def _flush(self) -> None:
        await workflow.sleep(timedelta(seconds=1))
        await super()._flush()


@workflow.defn(name="UseCaseRelease", sandboxed=False)
class PatchedChange(UseCaseRelease):
    """The same change, guarded: old histories keep their old path."""

    @workflow.run
    async def run(self, inp: UseCaseInput) -> UseCaseOutcome:
        return await super().run(inp)

    async def _flush(self) -> None:
        if workflow.patched("pause-before-flush"):
            await workflow.sleep(timedelta(seconds=1))
        await super()._flush()


async def test_unguarded_change_fails_replay() -> None:
    replayer = Replayer(workflows=[UnguardedChange], data_converter=pydantic_data_converter)
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(load(HISTORIES[0]))


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_patched_change_replays(path: Path) -> None:
    replayer = Replayer(workflows=[PatchedChange], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(load(path))
