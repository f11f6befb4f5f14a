"""The HTML flow report rendered in headless Chromium (the Debian package, never a download).

The page is built from the known-timing fixture runs of ``test_flow_metrics``; the test checks
that every chart is an SVG with drawn content and a real size, and keeps a screenshot
(``$TMPDIR/releasegate-flow-report.png``) for a human to look at.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from services.flow import FlowEntry, FlowMetrics, compute_flow, sla_table
from services.report import render_report
from tests.flow.test_flow_metrics import NOW, POLICY, seed_runs
from tests.harness import CHROMIUM, CHROMIUM_ARGS

CHARTS = (
    "stage-durations",
    "gate-waits-over-time",
    "gate-wait-percentiles",
    "rework-by-tier",
    "rejection-by-tier",
)


def fixture_metrics() -> FlowMetrics:
    entries = [
        FlowEntry(r.workflow_id, r.event_id, r.at, r.kind, r.actor, r.payload)
        for run in seed_runs()
        for r in run.records
    ]
    return compute_flow(entries, now=NOW, slas=sla_table(POLICY), detail=True)


def test_page_is_self_contained_and_escaped() -> None:
    metrics = fixture_metrics()
    assert metrics.run_rows is not None
    metrics.run_rows[0].title = "<script>alert(1)</script> & co"
    page = render_report(metrics.model_dump(mode="json"), title="Flow <test>")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page
    assert "<title>Flow &lt;test&gt;</title>" in page
    for chart in CHARTS:
        assert page.count(f"data-chart='{chart}'") == 1
    for fetches in ("<link", "src=", "href=", "url(", "@import"):
        assert fetches not in page


def test_empty_window_renders_placeholders() -> None:
    empty = compute_flow([], now=NOW, slas={}, detail=True)
    page = render_report(empty)
    assert page.count("no data in this window") == 5


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")
def test_report_renders_in_chromium(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    page_file = tmp_path / "report.html"
    page_file.write_text(render_report(fixture_metrics(), source="fixture"), encoding="utf-8")
    shot = tmp_path / "report.png"
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", *CHROMIUM_ARGS])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.goto(page_file.as_uri())
            sizes = {}
            for chart in CHARTS:
                svg = page.locator(f"svg[data-chart='{chart}']")
                assert svg.count() == 1, chart
                box = svg.bounding_box()
                assert box is not None, chart
                sizes[chart] = (box["width"], box["height"])
                drawn = svg.locator("rect, circle, line, path").count()
                assert drawn > 5, f"{chart} draws only {drawn} shapes"
                assert svg.locator(".no-data").count() == 0, chart
            # one box per stage sampled, one point per decided gate visit, bars per tier
            assert page.locator("svg[data-chart='stage-durations'] g.box").count() == 9
            assert page.locator("svg[data-chart='gate-waits-over-time'] circle.point").count() == 12
            assert page.locator("svg[data-chart='rework-by-tier'] g.bar").count() == 3
            assert page.locator("details[data-run]").count() == 6
            assert page.locator("table").first.is_visible()
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    for chart, (width, height) in sizes.items():
        assert width > 200, (chart, width)
        assert height > 60, (chart, height)
    assert requests == [page_file.as_uri()]  # the page itself, nothing else
    assert shot.stat().st_size > 50_000
    shutil.copy(shot, Path(tempfile.gettempdir()) / "releasegate-flow-report.png")
