"""Scenes for the console tests: a use case set up over REST, people signing in in a browser."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from playwright.async_api import Page

from tests.api.conftest import auth
from tests.api.test_use_cases import OWNERS
from tests.api.test_use_cases import ev as evidence


async def at_risk_signoff(rest: httpx.AsyncClient, title: str = "Claims triage assistant") -> str:
    """A low-tier use case started by dana and carried to its first gate; its key."""
    key = f"ui-{uuid.uuid4().hex[:8]}"
    r = await rest.post(
        "/v1/use-cases",
        json={
            "key": key,
            "title": title,
            "summary": "Routes incoming insurance claims to the right queue",
            "risk_tier": "low",
            "owners": OWNERS,
        },
        headers=auth("dana"),
    )
    assert r.status_code == 201, r.text
    for stage in ("scoping", "specification", "implementation"):
        r = await rest.post(
            f"/v1/use-cases/{key}/stages/{stage}/complete", json={}, headers=auth("dana")
        )
        assert r.status_code == 200, r.text
    r = await rest.post(
        f"/v1/use-cases/{key}/stages/validation/complete",
        json={"evidence": [evidence("evaluation_report")], "comment": "evaluation attached"},
        headers=auth("dana"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["stage"] == "risk_signoff"
    return key


async def state(rest: httpx.AsyncClient, key: str, person: str = "eve") -> dict[str, Any]:
    r = await rest.get(f"/v1/use-cases/{key}", headers=auth(person))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def decisions(rest: httpx.AsyncClient, key: str) -> list[dict[str, Any]]:
    r = await rest.get(f"/v1/use-cases/{key}/history", headers=auth("eve"))
    assert r.status_code == 200, r.text
    return [e for e in r.json() if e["kind"] == "decision"]


async def sign_in(page: Page, base: str, person_id: str, name: str) -> None:
    """The development sign-in page: pick the person's button."""
    await page.goto(f"{base}/ui/login")
    await page.locator(f"button[name=person][value={person_id}]").click()
    await page.wait_for_url(f"{base}/ui/inbox")
    assert await page.get_by_test_id("me").inner_text() == name


async def sign_out(page: Page) -> None:
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/ui/login")


async def csrf_of(page: Page) -> str:
    """The CSRF token the signed-in page carries (every form has it)."""
    value = await page.locator("input[name=csrf]").first.get_attribute("value")
    assert value
    return value


async def approve(rest: httpx.AsyncClient, key: str, gate: str, person: str) -> dict[str, Any]:
    seen = await rest.get(f"/v1/use-cases/{key}", headers=auth(person))
    r = await rest.post(
        f"/v1/use-cases/{key}/gates/{gate}/decisions",
        json={"decision": "approve"},
        headers={**auth(person), "If-Match": seen.headers["etag"]},
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def live(rest: httpx.AsyncClient, title: str = "Claims triage assistant") -> str:
    """A low-tier use case carried to live over REST; its key."""
    key = await at_risk_signoff(rest, title)
    for gate, person in (("risk_signoff", "rita"), ("ops_handoff", "olga"), ("go_live", "bo")):
        await approve(rest, key, gate, person)
    assert (await state(rest, key))["stage"] == "live"
    return key
