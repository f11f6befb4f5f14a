"""The approver console in a real browser: people sign in one after another and decide gates;
the refusals REST gives are the console's too, and nothing refused is recorded."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import BrowserContext, Page, expect

from tests.ui.conftest import PHONE, ROOT, LiveServer
from tests.ui.helpers import (
    at_risk_signoff,
    auth,
    csrf_of,
    decisions,
    evidence,
    sign_in,
    sign_out,
    state,
)

DOCS = ROOT / "docs"


async def decide(page: Page, decision: str, comment: str = "") -> None:
    form = page.get_by_test_id("decide-form")
    await form.locator(f"input[name=decision][value={decision}]").check()
    if comment:
        await form.get_by_label("Comment").fill(comment)
    await form.get_by_role("button", name="Submit decision").click()


async def test_three_people_take_a_use_case_through_its_gates(
    console: LiveServer, rest: httpx.AsyncClient, page: Page
) -> None:
    key = await at_risk_signoff(rest)
    base = console.url

    # rita: the gate is in her inbox, on time, one seat left; she approves on the page
    await sign_in(page, base, "rita", "Rita Menon")
    row = page.get_by_test_id("inbox-row").filter(has_text=key)
    await expect(row).to_contain_text("risk signoff")
    await expect(row).to_contain_text("1 of 1")
    await expect(row).to_contain_text("on time")
    assert int(await page.get_by_test_id("count-on-time").inner_text()) >= 1
    DOCS.mkdir(exist_ok=True)
    await page.screenshot(path=str(DOCS / "console-inbox.png"), full_page=True)
    await row.get_by_role("link").click()
    await expect(page.get_by_test_id("stage")).to_have_text("risk signoff")
    await expect(page.get_by_test_id("evidence")).to_contain_text("evaluation report")
    await expect(page.get_by_test_id("seats")).to_contain_text("empty")
    await page.screenshot(path=str(DOCS / "console-use-case.png"), full_page=True)
    await decide(page, "approve", "evaluation is sound")
    await expect(page.get_by_test_id("result")).to_contain_text("ops handoff")
    await sign_out(page)

    # olga: operations handoff
    await sign_in(page, base, "olga", "Olga Petrova")
    await page.goto(f"{base}/ui/use-cases/{key}")
    await expect(page.get_by_test_id("stage")).to_have_text("ops handoff")
    await decide(page, "approve")
    await expect(page.get_by_test_id("result")).to_contain_text("go live")
    await sign_out(page)

    # bo, on a phone: go-live
    await page.set_viewport_size(PHONE)
    await sign_in(page, base, "bo", "Bo Lindqvist")
    await page.get_by_test_id("inbox-row").filter(has_text=key).get_by_role("link").click()
    await decide(page, "approve")
    await expect(page.get_by_test_id("result")).to_contain_text("live")

    final = await state(rest, key)
    assert final["stage"] == "live"
    made = await decisions(rest, key)
    assert [(d["actor"], d["gate"], d["channel"]) for d in made] == [
        ("rita", "risk_signoff", "web"),
        ("olga", "ops_handoff", "web"),
        ("bo", "go_live", "web"),
    ]
    assert made[0]["comment"] == "evaluation is sound"
    # the ledger holds the same entries as for any other door, channel web
    ledger = await rest.get(f"/v1/use-cases/{key}/ledger", headers=auth("eve"))
    assert ledger.status_code == 200, ledger.text
    entries = ledger.json()
    entries = entries["entries"] if isinstance(entries, dict) else entries
    web = [e for e in entries if e["kind"] == "decision"]
    assert [e["channel"] for e in web] == ["web", "web", "web"]

    # the use case page now tells the story: timeline, decisions with comments
    await page.goto(f"{base}/ui/use-cases/{key}")
    await expect(page.get_by_test_id("decisions")).to_contain_text("evaluation is sound")
    await expect(page.get_by_test_id("timeline")).to_contain_text("go live")
    await expect(page.get_by_test_id("why-not")).to_contain_text("No gate is open")


async def test_an_ineligible_person_sees_no_form_and_a_direct_post_is_refused(
    console: LiveServer, rest: httpx.AsyncClient, page: Page
) -> None:
    key = await at_risk_signoff(rest)
    await sign_in(page, console.url, "olga", "Olga Petrova")
    await page.goto(f"{console.url}/ui/use-cases/{key}")
    await expect(page.get_by_test_id("why-not")).to_have_text("You are not eligible for this gate.")
    assert await page.get_by_test_id("decide-form").count() == 0

    # the form she never saw, posted with her own session and CSRF token
    form = {
        "csrf": await csrf_of(page),
        "etag": (await rest.get(f"/v1/use-cases/{key}", headers=auth("olga"))).headers["etag"],
        "decision": "approve",
        "form_key": "a-form-olga-never-saw",
    }
    answer = await page.request.post(
        f"{console.url}/ui/use-cases/{key}/gates/risk_signoff/decisions",
        form=form,
        max_redirects=0,
    )
    assert answer.status == 403
    assert "not eligible for this gate" in await answer.text()
    assert await decisions(rest, key) == []
    assert (await state(rest, key))["stage"] == "risk_signoff"

    # the delivery lead never decides her own run's gates either (separation of duties)
    await sign_out(page)
    await sign_in(page, console.url, "dana", "Dana Delgado")
    await page.goto(f"{console.url}/ui/use-cases/{key}")
    await expect(page.get_by_test_id("why-not")).to_have_text("You are not eligible for this gate.")

    # somebody who is none of the run's people and reads no run: as if it did not exist
    await sign_out(page)
    await sign_in(page, console.url, "priya", "Priya Natarajan")
    missing = await page.goto(f"{console.url}/ui/use-cases/{key}")
    assert missing is not None
    assert missing.status == 404


async def add_evidence(rest: httpx.AsyncClient, key: str, kind: str) -> None:
    r = await rest.post(
        f"/v1/use-cases/{key}/evidence", json={"evidence": [evidence(kind)]}, headers=auth("tom")
    )
    assert r.status_code == 201, r.text


async def test_a_stale_form_after_new_evidence_is_refused(
    console: LiveServer, rest: httpx.AsyncClient, page: Page
) -> None:
    key = await at_risk_signoff(rest)
    await sign_in(page, console.url, "rita", "Rita Menon")
    await page.goto(f"{console.url}/ui/use-cases/{key}")
    await expect(page.get_by_test_id("decide-form")).to_be_visible()

    # while rita reads, the technical owner adds evidence for the gate
    await add_evidence(rest, key, "risk_assessment")
    await decide(page, "approve", "looks fine")
    await expect(page.locator("h1")).to_have_text("Evidence changed — review again")
    await expect(page.get_by_test_id("error")).to_contain_text("Nothing was recorded")
    assert await decisions(rest, key) == []

    # a request for changes made on a page older than the evidence is refused the same way
    await page.goto(f"{console.url}/ui/use-cases/{key}")
    await add_evidence(rest, key, "runbook")
    await decide(page, "request_changes", "the assessment is thin")
    await expect(page.locator("h1")).to_have_text("Evidence changed — review again")
    assert await decisions(rest, key) == []

    # reviewed again, the page shows the new evidence and the approval goes through
    await page.goto(f"{console.url}/ui/use-cases/{key}")
    await expect(page.get_by_test_id("evidence")).to_contain_text("risk assessment")
    await expect(page.get_by_test_id("evidence")).to_contain_text("runbook")
    await decide(page, "approve")
    await expect(page.get_by_test_id("result")).to_contain_text("ops handoff")
    assert [d["actor"] for d in await decisions(rest, key)] == ["rita"]


async def test_posts_without_a_session_or_csrf_token_are_refused(
    console: LiveServer, rest: httpx.AsyncClient, page: Page, context: BrowserContext
) -> None:
    key = await at_risk_signoff(rest)
    url = f"{console.url}/ui/use-cases/{key}/gates/risk_signoff/decisions"
    etag = (await rest.get(f"/v1/use-cases/{key}", headers=auth("rita"))).headers["etag"]
    body = {"decision": "approve", "etag": etag}

    # no session at all (a bearer token does not sign anyone in to the console)
    async with httpx.AsyncClient(timeout=30) as anonymous:
        r = await anonymous.post(url, data={**body, "csrf": "guess"}, headers=auth("rita"))
        assert r.status_code == 401
        assert r.headers["content-type"].startswith("text/html")

    # rita's session, without the token, with another token, from another origin
    await sign_in(page, console.url, "rita", "Rita Menon")
    await page.goto(f"{console.url}/ui/use-cases/{key}")
    token = await csrf_of(page)
    cookies = {c["name"]: c["value"] for c in await context.cookies()}
    async with httpx.AsyncClient(timeout=30, cookies=cookies) as with_session:
        missing = await with_session.post(url, data=body)
        wrong = await with_session.post(url, data={**body, "csrf": token[::-1]})
        elsewhere = await with_session.post(
            url, data={**body, "csrf": token}, headers={"Origin": "https://evil.example"}
        )
    assert (missing.status_code, wrong.status_code, elsewhere.status_code) == (403, 403, 403)
    assert "nothing was recorded" in missing.text
    assert await decisions(rest, key) == []

    # sign-out is a form too
    async with httpx.AsyncClient(timeout=30, cookies=cookies) as with_session:
        r = await with_session.post(f"{console.url}/ui/logout", data={})
        assert r.status_code == 403

    # a page asked for without a session goes to the sign-in page, and comes back after it
    fresh = await context.browser.new_context()  # type: ignore[union-attr]
    try:
        other = await fresh.new_page()
        await other.goto(f"{console.url}/ui/use-cases/{key}")
        assert re.search(r"/ui/login\?next=", other.url)
        await other.locator("button[name=person][value=raj]").click()
        await other.wait_for_url(f"{console.url}/ui/use-cases/{key}")
        await expect(other.get_by_test_id("decide-form")).to_be_visible()
    finally:
        await fresh.close()


async def test_pages_carry_a_strict_policy_and_a_guarded_cookie(
    console: LiveServer, page: Page, context: BrowserContext
) -> None:
    response = await page.goto(f"{console.url}/ui/login")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "script-src" not in csp
    assert "unsafe-inline" not in csp
    assert "default-src 'none'" in csp
    assert "form-action 'self'" in csp
    assert response.headers["cache-control"] == "no-store"
    assert await page.locator("script").count() == 0
    await page.locator("button[name=person][value=carla]").click()
    await page.wait_for_url("**/ui/inbox")
    (cookie,) = [c for c in await context.cookies() if c["name"] == "releasegate_console"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/ui"
    # the API's own routes never see it
    assert list(await context.cookies(f"{console.url}/v1/use-cases")) == []
