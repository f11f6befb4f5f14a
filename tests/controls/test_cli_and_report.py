"""The controls view through the CLI (``releasegate controls KEY [--oscal|--json|--html]``, the
gaps in ``pending``), in flow metrics (coverage per framework) and as HTML pages checked in
headless Chromium (the Debian package through Playwright, never a download)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.report import render_report
from tests.api.conftest import auth
from tests.cli.conftest import Cli, Result, api_url, cli
from tests.controls.test_api import Run, start
from tests.flow.test_report import CHROMIUM, CHROMIUM_ARGS

__all__ = ["api_url", "cli"]


def ok(result: Result) -> Result:
    assert result.code == 0, (result.code, result.out, result.err)
    return result


async def live_medium(api: httpx.AsyncClient) -> Run:
    """A medium-tier use case live without a monitoring plan: two monitoring gaps."""
    run = await start(api, "medium")
    while run.state["stage"] != "live":
        await run.step()
    await run.controls()
    return run


async def test_cli_shows_controls_gaps_and_oscal(
    api: httpx.AsyncClient, cli: Cli, oscal_errors: Any, tmp_path: Path
) -> None:
    run = await live_medium(api)
    key = run.state["key"]

    human = ok(await cli("controls", key, person="eve")).out
    assert "MEASURE 2.4" in human
    assert "no monitoring_plan evidence" in human
    assert "By framework" in human

    view = ok(await cli("controls", key, "--json", person="eve")).json()
    api_view = (await api.get(f"{run.base}/controls", headers=auth("eve"))).json()
    assert [(c["id"], c["status"]) for c in view["controls"]] == [
        (c["id"], c["status"]) for c in api_view["controls"]
    ]

    doc = ok(await cli("controls", key, "--oscal", person="eve")).json()
    assert oscal_errors(doc) == []
    assert doc["assessment-results"]["results"][0]["findings"]

    # the gaps are in bo's inbox, by CLI too; an outsider's controls read is "not found"
    inbox = ok(await cli("pending", person="bo")).out
    assert "Control gaps on your live use cases" in inbox
    assert key in inbox
    refused = await cli("controls", key, person="priya")
    assert refused.code == 4, refused


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")
async def test_controls_page_and_report_section_in_chromium(
    api: httpx.AsyncClient, cli: Cli, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    run = await live_medium(api)
    page_file = tmp_path / "controls.html"
    ok(await cli("controls", run.state["key"], "--html", str(page_file), person="eve"))
    view = (await api.get(f"{run.base}/controls", headers=auth("eve"))).json()

    metrics = await api.get("/v1/metrics/flow", params={"detail": "true"}, headers=auth("bo"))
    assert metrics.status_code == 200, metrics.text
    coverage = metrics.json()["controls"]
    mine = [u for u in coverage["use_cases"] if u["id"] == run.id]
    assert [sorted(g["control"] for g in u["gaps"]) for u in mine] == [
        ["nist-ai-rmf.measure-2.4", "sr-11-7.ongoing-monitoring"]
    ]
    nist = next(f for f in coverage["frameworks"] if f["id"] == "nist-ai-rmf")
    assert 1 <= nist["with_gaps"] <= nist["live_use_cases"] <= coverage["live_use_cases"]
    report_file = tmp_path / "report.html"
    report_file.write_text(render_report(metrics.json(), source="test"), encoding="utf-8")

    requests: list[str] = []
    shot = tmp_path / "controls.png"
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            await page.goto(page_file.as_uri())
            rows = page.locator("table#controls tbody tr")
            assert await rows.count() == len(view["controls"])
            for control in view["controls"]:
                row = page.locator(f"tr[data-control='{control['id']}']")
                assert await row.get_attribute("data-status") == control["status"]
                badge = row.locator(".status")
                assert await badge.is_visible()
                assert (await badge.inner_text()) == control["status"].replace("_", " ")
            gap = page.locator("tr[data-control='nist-ai-rmf.measure-2.4'] li.why")
            assert "no monitoring_plan evidence" in await gap.inner_text()
            # a gap badge is drawn red, a satisfied one green
            colours = {
                status: await page.locator(f"span.status.{status}").first.evaluate(
                    "e => getComputedStyle(e).backgroundColor"
                )
                for status in ("gap", "satisfied")
            }
            assert colours["gap"] != colours["satisfied"]
            nist_gaps = page.locator("table#frameworks tr[data-framework='nist-ai-rmf'] td.gaps")
            assert await nist_gaps.inner_text() == str(
                next(f["gap"] for f in view["frameworks"] if f["id"] == "nist-ai-rmf")
            )
            await page.screenshot(path=str(shot), full_page=True)

            await page.goto(report_file.as_uri())
            section = page.locator("table#coverage")
            assert await section.is_visible()
            assert await page.locator("table#coverage tbody tr").count() == 4
            assert await page.locator(f"table#gaps tr[data-use-case='{run.id}']").count() == 2
        finally:
            await browser.close()
    assert requests == [page_file.as_uri(), report_file.as_uri()]
    assert shot.stat().st_size > 20_000
    shutil.copy(shot, Path(tempfile.gettempdir()) / "releasegate-controls.png")
    json.dumps(view)  # the view the page was drawn from is plain JSON
