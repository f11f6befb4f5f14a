"""README's quickstart, copied and pasted: run as it stands (bash and curl) against a running
API, it takes its use case to ``live`` — approvals included, which name what they saw."""

from __future__ import annotations

import asyncio
import re
import shutil

import httpx
import pytest

from services.launcher import QUICKSTART_END, QUICKSTART_START
from tests.cli.conftest import ROOT


def quickstart(api_url: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text[
        text.index(QUICKSTART_START) + len(QUICKSTART_START) : text.index(QUICKSTART_END)
    ]
    script = re.sub(r"^\s*```[a-z]*\s*$\n?", "", section, flags=re.MULTILINE)
    assert "API=http://localhost:8000" in script
    return script.replace("API=http://localhost:8000", f"API={api_url}")


@pytest.mark.skipif(shutil.which("curl") is None, reason="the quickstart uses curl")
async def test_the_readme_quickstart_takes_its_use_case_live(api_url: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "bash", "-eu", "-o", "pipefail", "-c", quickstart(api_url),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    assert "precondition-required" not in out.decode()
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as api:
        eve = {"Authorization": "Bearer dev-eve"}
        state = (await api.get("/v1/use-cases/usecase-claims-triage", headers=eve)).json()
        assert state["stage"] == "live", out.decode()
        history = (await api.get("/v1/use-cases/usecase-claims-triage/history", headers=eve)).json()
    decisions = [(e["actor"], e["gate"], e["decision"]) for e in history if e["kind"] == "decision"]
    assert decisions == [
        ("rita", "risk_signoff", "approve"),
        ("olga", "ops_handoff", "approve"),
        ("bo", "go_live", "approve"),
    ]
