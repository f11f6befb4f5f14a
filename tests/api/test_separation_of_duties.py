"""Separation of duties over HTTP on the real dev server: each scenario an insider tried.

1. A requester approved their own change (the technical owner raised a material change of a
   high-tier use case, then filled the technical-owner seat of the change's go_live).
2. Self-approval through owner roles (a delivery lead named herself every owner; a delivery
   lead among the risk approvers; a risk approver deciding the resume she asked for).
3. A stop-ship bypass (a change approved while suspended was applied and deployed) — the
   workflow-level test with the hook receiver's log is
   tests/workflows/test_live.py::test_a_change_passed_while_suspended_waits_for_resume; here
   the same over HTTP, from the change's status.
Plus delegation of authority: deputies named at start and changed by the business owner.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from tests.api.conftest import auth
from tests.api.test_use_cases import ev, new_body, walk
from tests.workflows.helpers import GATE_APPROVERS, GATE_EVIDENCE, STAGE_EVIDENCE

PROBLEM = "application/problem+json"


async def start(
    api: httpx.AsyncClient, tier: str, person: str = "dana", **owner_changes: Any
) -> httpx.Response:
    body = new_body(tier)
    body["key"] = f"sod-{uuid.uuid4().hex[:10]}"
    body["owners"] = {**body["owners"], **owner_changes}
    return await api.post("/v1/use-cases", json=body, headers=auth(person))


async def decide(
    api: httpx.AsyncClient, url: str, gate: str, person: str, decision: str = "approve"
) -> httpx.Response:
    body: dict[str, Any] = {"decision": decision}
    headers = auth(person)
    if decision != "approve":
        body["comment"] = "not like this"
    else:
        # an approval names the state its approver reviewed, when they may read it at all
        state = await api.get(url, headers=auth(person))
        if state.status_code == 200:
            headers["If-Match"] = state.headers["etag"]
    return await api.post(f"{url}/gates/{gate}/decisions", json=body, headers=headers)


async def test_a_delivery_lead_cannot_name_herself_every_owner(api: httpx.AsyncClient) -> None:
    r = await start(
        api,
        "low",
        business_owner="dana",
        technical_owner="dana",
        operations_owner="dana",
        stop_authority=["dana"],
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == PROBLEM
    detail = r.json()["detail"]
    assert "gate ops_handoff" in detail
    assert "operations_owner" in detail


async def test_high_tier_owner_roles_are_distinct_people(api: httpx.AsyncClient) -> None:
    r = await start(api, "high", operations_owner="tom", stop_authority=["bo", "tom"])
    assert r.status_code == 422, r.text
    assert "tom cannot be both technical_owner and operations_owner" in r.json()["detail"]


async def test_a_delivery_lead_among_risk_approvers_never_approves(
    api: httpx.AsyncClient,
) -> None:
    r = await start(api, "high", risk_approvers=["dana", "rita", "raj"])
    assert r.status_code == 201, r.text
    uc = r.json()
    url = f"/v1/use-cases/{uc['id']}"
    r = await api.post(f"{url}/stages/scoping/complete", json={}, headers=auth("dana"))
    assert r.status_code == 200, r.text
    gate = r.json()["open_gate"]
    assert gate["gate"] == "scope_approval"
    assert "dana" not in gate["eligible"]
    r = await decide(api, url, "scope_approval", "dana")
    assert r.status_code == 403, r.text
    history = (await api.get(f"{url}/history", headers=auth("bo"))).json()
    assert not [e for e in history if e["kind"] == "decision"]  # nothing recorded


async def live_use_case(api: httpx.AsyncClient, tier: str = "low", **owners: Any) -> str:
    r = await start(api, tier, **owners)
    assert r.status_code == 201, r.text
    state = await walk(api, r.json(), "live")
    return f"/v1/use-cases/{state['id']}"


async def test_whoever_asks_to_resume_never_decides_it(api: httpx.AsyncClient) -> None:
    url = await live_use_case(api, stop_authority=["bo", "tom", "olga", "rita"])
    r = await api.post(f"{url}/suspend", json={"reason": "drift"}, headers=auth("rita"))
    assert r.status_code == 200, r.text
    r = await api.post(f"{url}/resume", json={"reason": "fixed"}, headers=auth("rita"))
    assert r.status_code == 200, r.text
    gate = r.json()["open_gate"]
    assert "rita" not in gate["eligible"]
    r = await decide(api, url, "resume_approval", "rita")
    assert r.status_code == 403, r.text
    # the business owner asking to resume leaves the business seat to nobody: refused, 422
    other = await live_use_case(api)
    r = await api.post(f"{other}/suspend", json={"reason": "drift"}, headers=auth("olga"))
    assert r.status_code == 200, r.text
    r = await api.post(f"{other}/resume", json={}, headers=auth("bo"))
    assert r.status_code == 422, r.text
    assert "name a deputy for business_owner" in r.json()["detail"]


async def test_a_material_change_by_the_technical_owner_needs_a_technical_deputy(
    api: httpx.AsyncClient,
) -> None:
    url = await live_use_case(api, "high")
    change = {"summary": "new model version", "materiality": "material"}
    r = await api.post(f"{url}/changes", json=change, headers=auth("tom"))
    assert r.status_code == 422, r.text
    assert "name a deputy for technical_owner" in r.json()["detail"]

    # the business owner names lee technical deputy; the same raise now goes through
    r = await api.put(
        f"{url}/deputies",
        json={"deputies": {"technical_owner": ["lee"]}, "comment": "covers tom's changes"},
        headers=auth("tom"),
    )
    assert r.status_code == 403, r.text  # only the business owner changes deputies
    r = await api.put(
        f"{url}/deputies",
        json={"deputies": {"technical_owner": ["lee"]}, "comment": "covers tom's changes"},
        headers=auth("bo"),
    )
    assert r.status_code == 200, r.text
    assert [d["person"] for d in r.json()["deputies"]["technical_owner"]] == ["lee"]
    for _ in range(100):  # the ledger is written right after the command, asynchronously
        ledger = (await api.get(f"{url}/ledger", headers=auth("bo"))).json()
        if [e for e in ledger if e["kind"] == "deputies_changed"]:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("deputies_changed never reached the ledger")
    # lee, now a deputy, reads the run (need-to-know counts deputies as the run's people)
    assert (await api.get(url, headers=auth("lee"))).status_code == 200

    r = await api.post(f"{url}/changes", json=change, headers=auth("tom"))
    assert r.status_code == 201, r.text
    change_url = r.headers["Location"]
    state = await walk_change(api, change_url, "go_live")
    assert sorted(state["open_gate"]["eligible"]) == ["bo", "lee"]  # never tom, who asked
    r = await decide(api, change_url, "go_live", "tom")
    assert r.status_code == 403, r.text
    for person in ("bo", "lee"):
        r = await decide(api, change_url, "go_live", person)
        assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "applied"


async def walk_change(api: httpx.AsyncClient, url: str, until: str) -> dict[str, Any]:
    """Drive a high-tier material change to ``until`` (its gates decided by their seats)."""
    state = (await api.get(url, headers=auth("bo"))).json()
    while state["stage"] != until:
        stage = state["stage"]
        if state["open_gate"] is None:
            kinds = STAGE_EVIDENCE["high"].get(stage, [])
            r = await api.post(
                f"{url}/stages/{stage}/complete",
                json={"evidence": [ev(k) for k in kinds]},
                headers=auth("dana"),
            )
        else:
            kinds = GATE_EVIDENCE["high"].get(stage, [])
            if kinds:
                r = await api.post(
                    f"{url}/evidence",
                    json={"evidence": [ev(k) for k in kinds]},
                    headers=auth("dana"),
                )
                assert r.status_code == 201, r.text
            for person in GATE_APPROVERS["high"][stage]:
                r = await decide(api, url, stage, person)
        assert r.status_code in (200, 201), r.text
        state = r.json()
    return dict(state)


async def test_a_change_approved_while_suspended_waits_for_resume(
    api: httpx.AsyncClient,
) -> None:
    url = await live_use_case(api)
    r = await api.post(
        f"{url}/changes", json={"summary": "prompt", "materiality": "minor"}, headers=auth("dana")
    )
    assert r.status_code == 201, r.text
    change_url = r.headers["Location"]
    r = await api.post(f"{url}/suspend", json={"reason": "stop-ship"}, headers=auth("olga"))
    assert r.status_code == 200, r.text
    r = await decide(api, change_url, "change_approval", "tom")
    assert r.status_code == 200, r.text
    state = await until_change(api, url, "awaiting_resume")
    assert state["stage"] == "suspended"
    assert state["live_version"] == 1
    # the change's own state says it waits, not that it went live
    assert (await until_stage(api, change_url, "awaiting_resume"))["outcome"] == "applied"
    r = await api.post(f"{url}/resume", json={}, headers=auth("tom"))
    assert r.status_code == 200, r.text
    for person in ("rita", "bo"):
        r = await decide(api, url, "resume_approval", person)
        assert r.status_code == 200, r.text
    state = await until_change(api, url, "applied")
    assert state["stage"] == "live"
    assert state["live_version"] == 2
    await until_stage(api, change_url, "live")


async def until_stage(api: httpx.AsyncClient, url: str, stage: str) -> dict[str, Any]:
    for _ in range(100):
        state: dict[str, Any] = (await api.get(url, headers=auth("bo"))).json()
        if state["stage"] == stage:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never reached {stage}: {state['stage']}")


async def until_change(api: httpx.AsyncClient, url: str, status: str) -> dict[str, Any]:
    for _ in range(100):
        state: dict[str, Any] = (await api.get(url, headers=auth("bo"))).json()
        if state["changes"] and state["changes"][-1]["status"] == status:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"the change never became {status}: {state['changes']}")
