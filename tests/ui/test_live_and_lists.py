"""Live actions for those who hold them (incident, stop-ship with a confirmation, resume, a
change), the portfolio's filters and paging, and the flow metrics page with the report's charts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from playwright.async_api import Page, expect

from tests.ui.conftest import LiveServer
from tests.ui.helpers import at_risk_signoff, auth, csrf_of, live, sign_in, sign_out, state


async def ledger_kinds(rest: httpx.AsyncClient, key: str) -> list[tuple[str, str, str]]:
    r = await rest.get(f"/v1/use-cases/{key}/ledger", headers=auth("eve"))
    assert r.status_code == 200, r.text
    body = r.json()
    entries = body["entries"] if isinstance(body, dict) else body
    return [(e["kind"], e["actor"], e["channel"]) for e in entries]


async def test_live_actions_for_those_who_hold_them(
    console: LiveServer, rest: httpx.AsyncClient, page: Page
) -> None:
    key = await live(rest, "Fraud alert summaries")
    base = f"{console.url}/ui/use-cases/{key}"

    # the technical owner raises a minor change
    await sign_in(page, console.url, "tom", "Tom Okafor")
    await page.goto(base)
    form = page.locator("form[action$='/changes']")
    await form.get_by_label("Change").fill("Tighten the prompt's refusal rules")
    await form.get_by_label("Materiality").select_option("minor")
    await form.get_by_role("button", name="Raise change").click()
    await expect(page.get_by_test_id("result")).to_contain_text("change")
    await sign_out(page)

    # the business owner: an incident, then stop-ship after a confirmation
    await sign_in(page, console.url, "bo", "Bo Lindqvist")
    await page.goto(base)
    assert await page.locator("form[action$='/changes']").count() == 0  # not a delivery role
    incident = page.locator("form[action$='/incidents']")
    await incident.get_by_label("Severity").select_option("sev3")
    await incident.get_by_label("What happened").fill("Summaries cite the wrong account")
    await incident.get_by_role("button", name="Report incident").click()
    await expect(page.get_by_test_id("result")).to_contain_text("Sev3 incident reported")

    await page.goto(base)
    await expect(page.get_by_test_id("incidents")).to_contain_text("Summaries cite the wrong")
    await page.get_by_role("link", name="Suspend (stop-ship)…").click()
    unconfirmed = await page.request.post(
        f"{base}/suspend",
        form={"csrf": await csrf_of(page), "reason": "wrong accounts", "form_key": "x" * 20},
    )
    assert unconfirmed.status == 422
    assert (await state(rest, key))["stage"] == "live"
    await page.get_by_label("Reason").fill("Summaries cite the wrong account")
    await page.get_by_label("I confirm").check()
    await page.get_by_role("button", name="Suspend now").click()
    await expect(page.get_by_test_id("stage")).to_have_text("suspended")
    # bo must approve the resume, so he may not ask for it
    await page.goto(base)
    assert await page.locator("form[action$='/resume']").count() == 0
    await sign_out(page)

    # the technical owner asks to resume
    await sign_in(page, console.url, "tom", "Tom Okafor")
    await page.goto(base)
    resume = page.locator("form[action$='/resume']")
    await resume.get_by_label("Why it is safe to resume").fill("Fixed the account lookup")
    await resume.get_by_role("button", name="Request resume").click()
    await expect(page.get_by_test_id("result")).to_contain_text("resume approval")

    facts = await ledger_kinds(rest, key)
    web = [(kind, actor) for kind, actor, channel in facts if channel == "web"]
    for fact in [
        ("change_raised", "tom"),
        ("incident_reported", "bo"),
        ("suspended", "bo"),
        ("resume_requested", "tom"),
    ]:
        assert fact in web, facts


async def test_someone_without_live_authority_sees_no_actions_and_is_refused(
    console: LiveServer, rest: httpx.AsyncClient, page: Page
) -> None:
    key = await live(rest, "Branch FAQ assistant")
    # rita is a risk approver: she reads the run but holds no live action
    await sign_in(page, console.url, "rita", "Rita Menon")
    await page.goto(f"{console.url}/ui/use-cases/{key}")
    for action in ("incidents", "resume", "changes"):
        assert await page.locator(f"form[action$='/{action}']").count() == 0
    assert await page.get_by_role("link", name="Suspend (stop-ship)…").count() == 0
    refused = await page.request.post(
        f"{console.url}/ui/use-cases/{key}/suspend",
        form={"csrf": await csrf_of(page), "reason": "because", "confirm": "yes"},
    )
    assert refused.status == 403
    assert (await state(rest, key))["stage"] == "live"


async def test_portfolio_filters_and_pages(
    console: LiveServer, rest: httpx.AsyncClient, page: Page
) -> None:
    keys = [await at_risk_signoff(rest, f"Portfolio case {i}") for i in range(3)]
    await sign_in(page, console.url, "carla", "Carla Rossi")  # compliance reads every run
    await page.goto(f"{console.url}/ui/use-cases")
    await page.get_by_label("Stage").select_option("risk_signoff")
    await page.get_by_label("Waiting on").fill("raj")
    await page.get_by_role("button", name="Filter").click()
    rows = page.get_by_test_id("portfolio-row")
    shown = await rows.evaluate_all("rows => rows.map(r => r.dataset.useCase)")
    assert set(keys) <= set(shown)
    assert "stage=risk_signoff" in page.url
    assert "waiting_on=raj" in page.url

    # nobody waits on olga at risk sign-off
    await page.goto(f"{console.url}/ui/use-cases?stage=risk_signoff&waiting_on=olga")
    assert await rows.count() == 0

    # paging walks every row once, 25 at a time
    seen: list[str] = []
    await page.goto(f"{console.url}/ui/use-cases")
    for _ in range(50):
        seen += await rows.evaluate_all("rows => rows.map(r => r.dataset.useCase)")
        following = page.get_by_role("link", name="Next page")
        if await following.count() == 0:
            break
        await following.click()
    assert len(seen) == len(set(seen))
    assert set(keys) <= set(seen)

    bad = await page.goto(f"{console.url}/ui/use-cases?tier=extreme")
    assert bad is not None
    assert bad.status == 422


async def test_flow_metrics_page_draws_the_reports_charts(
    console: LiveServer, rest: httpx.AsyncClient, page: Page
) -> None:
    await live(rest, "Metrics case")
    await sign_in(page, console.url, "carla", "Carla Rossi")
    await page.goto(f"{console.url}/ui/metrics")
    for chart in ("stage-durations", "gate-waits-over-time", "rework-by-tier", "rejection-by-tier"):
        assert await page.locator(f"svg[data-chart='{chart}']").count() == 1, chart
    await expect(page.locator(".cards")).to_contain_text("Reached live")
    bad = await page.goto(f"{console.url}/ui/metrics?since=yesterday")
    assert bad is not None
    assert bad.status == 422


async def test_the_escalation_owner_sees_escalated_gates(
    console: LiveServer, rest: httpx.AsyncClient, page: Page
) -> None:
    # eve is every test run's escalation owner; nothing here is past its SLA yet
    key = await at_risk_signoff(rest, "Escalation case")
    await sign_in(page, console.url, "eve", "Eve Adams")
    assert await page.get_by_test_id("inbox-row").filter(has_text=key).count() == 0
    await sign_out(page)
    await sign_in(page, console.url, "raj", "Raj Patel")
    await expect(page.get_by_test_id("inbox-row").filter(has_text=key)).to_have_count(1)


async def test_the_inbox_lists_side_decisions_waiting_on_me(
    console: LiveServer, rest: httpx.AsyncClient, page: Page
) -> None:
    """An exception asked for waits in its grantors' console inbox beside their gates."""
    key = await at_risk_signoff(rest, "Claims triage with an exception")
    expires = (datetime.now(UTC) + timedelta(days=10)).isoformat()
    r = await rest.post(
        f"/v1/use-cases/{key}/waivers",
        json={
            "requirement": {"kind": "sla", "gate": "risk_signoff"},
            "justification": "the risk committee meets after the SLA; nothing else is late",
            "expires_at": expires,
        },
        headers=auth("dana"),
    )
    assert r.status_code == 201, r.text
    await sign_in(page, console.url, "rita", "Rita Menon")
    for _ in range(50):  # the read model follows the request
        await page.goto(f"{console.url}/ui/inbox")
        if await page.get_by_test_id("side-row").filter(has_text=key).count():
            break
        await asyncio.sleep(0.1)
    row = page.get_by_test_id("side-row").filter(has_text=key)
    await expect(row).to_contain_text("Exception")
    await expect(row).to_contain_text("1 of 1")
    await sign_out(page)
