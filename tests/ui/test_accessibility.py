"""axe-core (from the npm registry) in Chromium finds no serious or critical violation on any
console page, at laptop and at phone width; every page works from the keyboard."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.async_api import Page

from tests.ui.conftest import LAPTOP, PHONE, LiveServer
from tests.ui.helpers import at_risk_signoff, live, sign_in

SERIOUS = {"serious", "critical"}


async def axe(page: Page, source: str) -> list[dict[str, Any]]:
    """axe.run on the page as it stands. Evaluated through DevTools, so the page's own CSP
    (no scripts at all) stays as it is."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(source)
    result: dict[str, Any] = await page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    return [v for v in result["violations"] if v["impact"] in SERIOUS]


def described(violations: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in violations
    )


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
async def test_no_serious_or_critical_violations(
    console: LiveServer,
    rest: httpx.AsyncClient,
    page: Page,
    axe_source: str,
    viewport: dict[str, int],
) -> None:
    gate_key = await at_risk_signoff(rest, "Accessibility case")
    live_key = await live(rest, "Accessibility live case")
    await page.set_viewport_size(viewport)
    base = console.url
    pages = {"sign-in": f"{base}/ui/login"}
    problems: dict[str, str] = {}
    for name, url in pages.items():
        await page.goto(url)
        if found := await axe(page, axe_source):
            problems[name] = described(found)

    await sign_in(page, base, "rita", "Rita Menon")
    for name, url in {
        "inbox": f"{base}/ui/inbox",
        "use case with the decide form": f"{base}/ui/use-cases/{gate_key}",
        "portfolio": f"{base}/ui/use-cases?stage=risk_signoff",
        "flow metrics": f"{base}/ui/metrics",
        "not found": f"{base}/ui/use-cases/no-such-case",
    }.items():
        await page.goto(url)
        if found := await axe(page, axe_source):
            problems[name] = described(found)

    await page.goto(f"{base}/ui/use-cases/{gate_key}")
    await page.locator("input[name=decision][value=approve]").check()
    await page.get_by_role("button", name="Submit decision").click()
    await page.get_by_test_id("result").wait_for()
    if found := await axe(page, axe_source):
        problems["decision recorded"] = described(found)

    await page.goto(f"{base}/ui/login")
    await page.locator("button[name=person][value=bo]").click()
    for name, url in {
        "live use case with actions": f"{base}/ui/use-cases/{live_key}",
        "stop-ship confirmation": f"{base}/ui/use-cases/{live_key}/suspend",
    }.items():
        await page.goto(url)
        if found := await axe(page, axe_source):
            problems[name] = described(found)
    assert not problems, "\n".join(f"{k}:\n{v}" for k, v in problems.items())


async def test_keyboard_alone_signs_in_and_decides(
    console: LiveServer, rest: httpx.AsyncClient, page: Page
) -> None:
    key = await at_risk_signoff(rest, "Keyboard case")
    await page.goto(f"{console.url}/ui/login?next=/ui/use-cases/{key}")
    # the skip link comes first, then the people; Enter on a focused person signs in
    await page.keyboard.press("Tab")
    assert await page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    await page.locator("button[name=person][value=raj]").focus()
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{console.url}/ui/use-cases/{key}")
    # into the form by Tab alone: the decision's radio group, the comment, the button
    for _ in range(40):
        await page.keyboard.press("Tab")
        if await page.evaluate("() => document.activeElement.name") == "decision":
            break
    else:
        raise AssertionError("Tab never reached the decision")
    await page.keyboard.press("Space")  # the first choice: approve
    await page.keyboard.press("Tab")  # the comment
    await page.keyboard.press("Tab")  # submit
    assert await page.evaluate("() => document.activeElement.textContent") == "Submit decision"
    await page.keyboard.press("Enter")
    await page.get_by_test_id("result").wait_for()
    assert "ops handoff" in await page.get_by_test_id("result").inner_text()


async def test_the_checker_itself_catches_a_violation(
    console: LiveServer, page: Page, axe_source: str
) -> None:
    """An image without a text alternative, planted in the sign-in page, is reported: the
    check above passes because the pages are right, not because axe did not run."""
    await page.goto(f"{console.url}/ui/login")
    assert await axe(page, axe_source) == []
    await page.evaluate(
        "() => document.querySelector('main')"
        ".insertAdjacentHTML('beforeend', '<img src=\"data:,\">')"
    )
    assert [v["id"] for v in await axe(page, axe_source)] == ["image-alt"]
