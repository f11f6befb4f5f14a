"""End to end: the stack started the way `make run` starts it, driven over HTTP alone.

A high-tier use case goes from POST to live; the stack is stopped with Ctrl-C (SIGINT) and
started again on the same data directory, and the run is found intact and still operable.
The Temporal Web UI is then loaded in headless Chromium to check the operations view.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stack:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.api_port = free_port()
        self.temporal_port = free_port()
        self.ui_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.output = data_dir / "launcher.out"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "RELEASEGATE_DATA_DIR": str(self.data_dir),
            "RELEASEGATE_API_PORT": str(self.api_port),
            "TEMPORAL_ADDRESS": self.temporal_address,
            "TEMPORAL_UI_PORT": str(self.ui_port),
            "RELEASEGATE_TASK_QUEUE": "e2e",
        }
        env.pop("RELEASEGATE_DATABASE_URL", None)
        offset = self.output.stat().st_size if self.output.exists() else 0
        out = self.output.open("ab")
        self.process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "services.launcher"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output.read_text()
            if "ReleaseGate is running" in self.output.read_text()[offset:]:
                return
            time.sleep(0.5)
        raise AssertionError(f"stack did not start:\n{self.output.read_text()}")

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=60)
        self.process = None
        return code

    def children_alive(self) -> list[str]:
        """Processes still holding this stack's data dir or ports."""
        out = subprocess.run(  # noqa: S603
            ["ps", "-eo", "args"], capture_output=True, text=True, check=True
        ).stdout
        marks = (str(self.data_dir), f"--port {self.api_port}", f"--port {self.temporal_port}")
        return [line for line in out.splitlines() if any(m in line for m in marks)]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    data_dir = Path(tempfile.mkdtemp(prefix="releasegate-e2e-"))
    s = Stack(data_dir)
    s.start()
    try:
        yield s
    finally:
        if s.process is not None:
            s.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def token(person: str) -> dict[str, str]:
    return {"Authorization": f"Bearer dev-{person}"}


def evidence(kind: str) -> dict[str, str]:
    return {
        "kind": kind,
        "name": f"{kind}.pdf",
        "uri": f"https://docs.example.com/{kind}.pdf",
        "sha256": hashlib.sha256(f"{kind}-{uuid.uuid4()}".encode()).hexdigest(),
    }


def call(client: httpx.Client, method: str, path: str, person: str, **kw: Any) -> Any:
    r = client.request(method, path, headers=token(person), **kw)
    assert r.status_code in (200, 201), f"{method} {path}: {r.status_code} {r.text}"
    return r.json()


def walk_high_tier_to_live(client: httpx.Client, uc: str) -> dict[str, Any]:
    call(client, "POST", f"/v1/use-cases/{uc}/stages/scoping/complete", "dana", json={})
    call(
        client,
        "POST",
        f"/v1/use-cases/{uc}/gates/scope_approval/decisions",
        "bo",
        json={"decision": "approve"},
    )
    state = call(
        client,
        "POST",
        f"/v1/use-cases/{uc}/gates/scope_approval/decisions",
        "rita",
        json={"decision": "approve"},
    )
    assert state["stage"] == "specification"
    for stage in ("specification", "implementation"):
        call(client, "POST", f"/v1/use-cases/{uc}/stages/{stage}/complete", "tom", json={})
    state = call(
        client,
        "POST",
        f"/v1/use-cases/{uc}/stages/validation/complete",
        "dana",
        json={"evidence": [evidence(k) for k in ("evaluation_report", "model_card", "dpia")]},
    )
    assert state["stage"] == "risk_signoff"
    assert state["required_evidence"] == ["risk_assessment"]
    call(
        client,
        "POST",
        f"/v1/use-cases/{uc}/evidence",
        "dana",
        json={"evidence": [evidence("risk_assessment")]},
    )
    for person in ("rita", "raj"):
        state = call(
            client,
            "POST",
            f"/v1/use-cases/{uc}/gates/risk_signoff/decisions",
            person,
            json={"decision": "approve"},
        )
    assert state["stage"] == "ops_handoff"
    call(
        client,
        "POST",
        f"/v1/use-cases/{uc}/evidence",
        "tom",
        json={"evidence": [evidence("runbook"), evidence("monitoring_plan")]},
    )
    state = call(
        client,
        "POST",
        f"/v1/use-cases/{uc}/gates/ops_handoff/decisions",
        "olga",
        json={"decision": "approve"},
    )
    for person in ("bo", "tom"):
        state = call(
            client,
            "POST",
            f"/v1/use-cases/{uc}/gates/go_live/decisions",
            person,
            json={"decision": "approve"},
        )
    return state


def test_high_tier_to_live_survives_restart(stack: Stack) -> None:
    key = f"e2e-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=stack.api, timeout=30) as client:
        state = call(
            client,
            "POST",
            "/v1/use-cases",
            "dana",
            json={
                "key": key,
                "title": "KYC onboarding assistant",
                "summary": "Drafts KYC onboarding decisions for analysts",
                "risk_tier": "high",
                "owners": {
                    "business_owner": "bo",
                    "technical_owner": "tom",
                    "operations_owner": "olga",
                    "risk_approvers": ["group:risk-committee"],
                    "escalation_owner": "eve",
                },
            },
        )
        uc = state["id"]
        state = walk_high_tier_to_live(client, uc)
        assert state["stage"] == "live"
        history_before = call(client, "GET", f"/v1/use-cases/{uc}/history", "eve")

    assert stack.stop() == 0
    assert stack.children_alive() == []

    stack.start()
    with httpx.Client(base_url=stack.api, timeout=30) as client:
        state = call(client, "GET", f"/v1/use-cases/{uc}", "eve")
        assert state["stage"] == "live"
        assert state["live_version"] == 1
        assert call(client, "GET", f"/v1/use-cases/{uc}/history", "eve") == history_before
        # able to continue: the live run still takes commands
        state = call(
            client,
            "POST",
            f"/v1/use-cases/{uc}/incidents",
            "olga",
            json={"severity": "sev3", "summary": "after restart"},
        )
        assert [i["summary"] for i in state["incidents"]] == ["after restart"]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")
def test_temporal_ui_shows_the_stage_story(stack: Stack) -> None:
    key = f"ui-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=stack.api, timeout=30) as client:
        state = call(
            client,
            "POST",
            "/v1/use-cases",
            "dana",
            json={
                "key": key,
                "title": "Claims triage assistant",
                "risk_tier": "low",
                "owners": {
                    "business_owner": "bo",
                    "technical_owner": "tom",
                    "operations_owner": "olga",
                    "risk_approvers": ["group:risk-committee"],
                    "escalation_owner": "eve",
                },
            },
        )
        uc = state["id"]
        for stage in ("scoping", "specification", "implementation"):
            call(client, "POST", f"/v1/use-cases/{uc}/stages/{stage}/complete", "dana", json={})
        call(
            client,
            "POST",
            f"/v1/use-cases/{uc}/stages/validation/complete",
            "dana",
            json={"evidence": [evidence("evaluation_report")]},
        )

    # the operations view: a visibility query by Stage finds the run
    found = visibility_query(stack, f'Stage = "risk_signoff" AND UseCaseKey = "{key}"')
    assert found == [uc]

    from playwright.sync_api import sync_playwright

    shot = stack.data_dir / "temporal-ui.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{stack.ui}/namespaces/default/workflows/{uc}", timeout=60_000)
            page.get_by_text("UseCaseRelease").first.wait_for(timeout=60_000)
            # static summary/details and current details live under "User Metadata"
            # (each is rendered as markdown in its own frame)
            page.get_by_text("User Metadata").first.click()
            text = ""
            for _ in range(60):
                page.wait_for_timeout(500)
                text = "\n".join(f.inner_text("body") for f in page.frames)
                if f"({key})" in text and "Stage:" in text:
                    break
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    shutil.copy(shot, Path(tempfile.gettempdir()) / "releasegate-temporal-ui.png")
    assert f"Claims triage assistant ({key})" in text, text
    assert "Stage: risk_signoff" in text  # current details: the stage…
    assert "Waiting on: raj, rita" in text  # …and who the gate waits on
    assert shot.stat().st_size > 10_000


def visibility_query(stack: Stack, query: str) -> list[str]:
    import asyncio

    from temporalio.client import Client

    async def run() -> list[str]:
        client = await Client.connect(stack.temporal_address)
        for _ in range(50):
            ids = [w.id async for w in client.list_workflows(query)]
            if ids:
                return ids
            await asyncio.sleep(0.2)
        return []

    return asyncio.run(run())
