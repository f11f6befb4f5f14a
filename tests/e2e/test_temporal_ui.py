"""The operations view: the Temporal Web UI of the launched stack, in headless Debian Chromium,
tells which use case a run is and where it stands; a visibility query by Stage finds it."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from tests.e2e.stack import OWNERS, Stack, call, evidence
from tests.harness import CHROMIUM, CHROMIUM_ARGS

SCREENSHOT_COPY = Path(tempfile.gettempdir()) / "releasegate-temporal-ui.png"


def visibility_query(stack: Stack, query: str) -> list[str]:
    async def run() -> list[str]:
        client = await Client.connect(stack.temporal_address)
        for _ in range(50):  # visibility is eventually consistent
            ids = [w.id async for w in client.list_workflows(query)]
            if ids:
                return ids
            await asyncio.sleep(0.2)
        return []

    return asyncio.run(run())


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")
def test_temporal_ui_shows_the_stage_story(stack: Stack, tmp_path: Path) -> None:
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
                "owners": OWNERS,
            },
        )
        uc = state["id"]
        for stage in ("scoping", "specification", "implementation"):
            call(client, "POST", f"/v1/use-cases/{uc}/stages/{stage}/complete", "dana", json={})
        state = call(
            client,
            "POST",
            f"/v1/use-cases/{uc}/stages/validation/complete",
            "dana",
            json={"evidence": [evidence("evaluation_report")]},
        )
        assert state["stage"] == "risk_signoff"
        assert state["temporal_ui_url"].endswith(f"/namespaces/default/workflows/{uc}")

    found = visibility_query(stack, f'Stage = "risk_signoff" AND UseCaseKey = "{key}"')
    assert found == [uc]

    from playwright.sync_api import sync_playwright

    shot = tmp_path / "temporal-ui.png"
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh profile every run
            executable_path=CHROMIUM,
            args=["--headless", *CHROMIUM_ARGS],
            viewport={"width": 1400, "height": 1000},
        )
        try:
            page = browser.new_page()
            page.goto(f"{stack.ui}/namespaces/default/workflows/{uc}", timeout=60_000)
            page.get_by_text("UseCaseRelease").first.wait_for(timeout=60_000)
            # static summary/details and current details live under "User Metadata",
            # each rendered as markdown in a frame of its own
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
    shutil.copy(shot, SCREENSHOT_COPY)  # for a person to look at after the run
    assert f"Claims triage assistant ({key})" in text, text
    assert "Stage: risk_signoff" in text  # current details: the stage…
    assert "Waiting on: raj, rita" in text  # …and who the gate waits on
    assert shot.stat().st_size > 10_000
