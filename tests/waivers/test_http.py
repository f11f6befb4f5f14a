"""Governed exceptions over HTTP on the dev server: request, grant, list; the state, the
evidence pack, the compliance view and flow metrics show them; bad input is problem+json and
records nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.api.conftest import approve, auth
from tests.api.test_use_cases import PROBLEM, create, new_body, walk

REQUIREMENT = {"kind": "evidence", "gate": "risk_signoff", "evidence_kind": "risk_assessment"}
WHY = "the vendor's assessment lands next sprint; the model is unchanged since last year"


def soon(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def body(days: float = 20, **over: Any) -> dict[str, Any]:
    return {"requirement": REQUIREMENT, "justification": WHY, "expires_at": soon(days), **over}


async def state(api: httpx.AsyncClient, run: str) -> dict[str, Any]:
    r = await api.get(run, headers=auth("eve"))
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def until_read(api: httpx.AsyncClient, path: str, ready: Any) -> dict[str, Any]:
    """``path``'s document once ``ready`` says the store caught up with the run."""
    for _ in range(200):
        r = await api.get(path, headers=auth("eve"))
        assert r.status_code == 200, r.text
        doc: dict[str, Any] = r.json()
        if ready(doc):
            return doc
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never showed it: {r.text[:400]}")


async def test_an_exception_is_asked_for_granted_and_shown_everywhere(
    api: httpx.AsyncClient,
) -> None:
    uc = await create(api, "medium")
    await walk(api, uc, "risk_signoff")
    run = f"/v1/use-cases/{uc['id']}"

    key = {"Idempotency-Key": "ask-risk-assessment"}
    sent = body()
    r = await api.post(f"{run}/waivers", json=sent, headers={**auth("dana"), **key})
    assert r.status_code == 201, r.text
    waiver = r.json()
    assert waiver["id"] == "w-1"
    assert waiver["status"] == "pending"
    assert waiver["requested_by"] == "dana"
    assert r.headers["location"] == f"{run}/waivers/w-1"
    again = await api.post(f"{run}/waivers", json=sent, headers={**auth("dana"), **key})
    assert again.status_code == 201, again.text
    assert again.json()["id"] == "w-1"  # the same request once

    r = await api.get(f"{run}/waivers", headers=auth("carla"))  # a compliance reader
    assert r.status_code == 200, r.text
    assert [w["id"] for w in r.json()["items"]] == ["w-1"]

    # the request waits in its grantors' inboxes, never in the requester's
    item = await inbox_item(api, "bo", run, "w-1")
    assert item["kind"] == "waiver"
    assert item["decide_url"].endswith(f"{run}/waivers/w-1/decisions")
    assert await inbox_item(api, "dana", run, "w-1", wait=False) is None

    for person in ("raj", "bo"):
        r = await api.post(
            f"{run}/waivers/w-1/decisions", json={"decision": "grant"}, headers=auth(person)
        )
        assert r.status_code == 200, r.text
    assert r.json()["status"] == "granted"
    assert [a["actor"] for a in r.json()["approvals"]] == ["raj", "bo"]
    for _ in range(100):
        if await inbox_item(api, "raj", run, "w-1", wait=False) is None:
            break
        await asyncio.sleep(0.05)
    assert await inbox_item(api, "raj", run, "w-1", wait=False) is None

    view = await state(api, run)
    assert view["required_evidence"] == []
    assert view["waived_evidence"] == ["risk_assessment"]
    assert view["waivers"][0]["status"] == "granted"

    r = await approve(api, run, "risk_signoff", "raj")
    assert r.status_code == 200, r.text
    assert r.json()["stage"] == "ops_handoff"
    events = (await state(api, run))["event_count"]

    pack = await until_read(
        api,
        f"{run}/evidence-pack",
        lambda doc: doc["ledger"]["entries"] >= events,
    )
    [packed] = pack["waivers"]
    assert packed["id"] == "w-1"
    assert packed["status"] == "granted"
    assert packed["requirement"] == REQUIREMENT
    assert packed["justification"] == WHY
    assert packed["requested_by"] == "dana"
    assert packed["granted_by"] == ["raj", "bo"]
    assert [d["actor"] for d in packed["decisions"]] == ["raj", "bo"]
    assert "risk_assessment" not in {e["kind"] for e in pack["evidence"]}
    assert {d["waiver"] for d in pack["decisions"] if d["gate"] is None} == {"w-1"}

    controls = await until_read(api, f"{run}/controls", lambda doc: True)
    [control] = [c for c in controls["controls"] if c["id"] == "nist-ai-rmf.map-1.5"]
    assert control["status"] == "exception"  # never satisfied
    assert "w-1" in control["reason"]
    assert controls["summary"]["exception"] >= 1

    flow = await until_read(api, "/v1/metrics/flow?detail=true", lambda doc: True)
    [row] = [r for r in flow["run_rows"] if r["id"] == uc["id"]]
    assert row["waivers"]["requested"] == row["waivers"]["granted"] == 1
    assert row["waivers"]["granted_by_kind"] == {"evidence": 1}
    assert flow["waivers"]["granted"] >= 1


async def inbox_item(
    api: httpx.AsyncClient, person: str, run: str, waiver: str, *, wait: bool = True
) -> dict[str, Any] | None:
    """The inbox item of ``person`` for the exception ``waiver`` of ``run`` (None: absent)."""
    for _ in range(100 if wait else 1):
        items = (await api.get("/v1/approvals/pending", headers=auth(person))).json()["items"]
        found = [i for i in items if run.endswith(i["id"]) and i.get("waiver_id") == waiver]
        if found:
            return dict(found[0])
        if wait:
            await asyncio.sleep(0.05)
    return None


async def test_bad_input_is_a_problem_and_records_nothing(api: httpx.AsyncClient) -> None:
    # tom is the technical owner and a risk approver: he may ask, and never grant his own
    r = await api.post(
        "/v1/use-cases",
        json=new_body("low", owners={**new_body()["owners"], "risk_approvers": ["tom", "rita"]}),
        headers=auth("dana"),
    )
    assert r.status_code == 201, r.text
    uc = await walk(api, r.json(), "validation")
    run = f"/v1/use-cases/{uc['id']}"
    evaluation = {"kind": "evidence", "stage": "validation", "evidence_kind": "evaluation_report"}
    before = (await state(api, run))["event_count"]

    async def problem(response: httpx.Response, status: int) -> dict[str, Any]:
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith(PROBLEM)
        doc: dict[str, Any] = response.json()
        assert doc["status"] == status
        return doc

    post = api.post
    # beyond the tier's maximum (low: 90 days), in the past, a requirement the policy never
    # states, a malformed requirement, a time without its offset, a short justification
    doc = await problem(
        await post(f"{run}/waivers", json=body(91, requirement=evaluation), headers=auth("tom")),
        422,
    )
    assert "at most 90 days" in doc["detail"]
    await problem(
        await post(f"{run}/waivers", json=body(-1, requirement=evaluation), headers=auth("tom")),
        422,
    )
    unstated = {**evaluation, "evidence_kind": "dpia"}
    await problem(
        await post(f"{run}/waivers", json=body(5, requirement=unstated), headers=auth("tom")),
        422,
    )
    await problem(
        await post(
            f"{run}/waivers", json=body(5, requirement={"kind": "evidence"}), headers=auth("tom")
        ),
        422,
    )
    naive = body(5, requirement=evaluation, expires_at="2030-01-01T00:00:00")
    await problem(await post(f"{run}/waivers", json=naive, headers=auth("tom")), 422)
    short = body(5, requirement=evaluation, justification="please")
    await problem(await post(f"{run}/waivers", json=short, headers=auth("tom")), 422)
    # only the delivery lead or technical owner asks
    await problem(
        await post(f"{run}/waivers", json=body(5, requirement=evaluation), headers=auth("rita")),
        403,
    )
    assert (await state(api, run))["event_count"] == before

    r = await post(f"{run}/waivers", json=body(5, requirement=evaluation), headers=auth("tom"))
    assert r.status_code == 201, r.text
    asked = (await state(api, run))["event_count"]
    decide = f"{run}/waivers/w-1/decisions"
    doc = await problem(await post(decide, json={"decision": "grant"}, headers=auth("tom")), 403)
    assert "never decides" in doc["detail"]
    await problem(await post(decide, json={"decision": "grant"}, headers=auth("olga")), 403)
    await problem(await post(decide, json={"decision": "refuse"}, headers=auth("rita")), 422)
    await problem(await post(decide, json={"decision": "maybe"}, headers=auth("rita")), 422)
    unknown = f"{run}/waivers/w-9/decisions"
    await problem(await post(unknown, json={"decision": "grant"}, headers=auth("rita")), 404)
    malformed = f"{run}/waivers/nonsense/decisions"
    await problem(await post(malformed, json={"decision": "grant"}, headers=auth("rita")), 404)
    await problem(await api.get(f"{run}/waivers/w-9", headers=auth("rita")), 404)
    # a second request for the same requirement while the first is pending
    again = body(5, requirement=evaluation)
    await problem(await post(f"{run}/waivers", json=again, headers=auth("dana")), 409)
    assert (await state(api, run))["event_count"] == asked

    r = await post(
        decide, json={"decision": "refuse", "comment": "run the evaluation"}, headers=auth("rita")
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "refused"
    await problem(await post(decide, json={"decision": "grant"}, headers=auth("rita")), 409)
    r = await api.get(f"{run}/waivers/w-1", headers=auth("tom"))
    assert r.status_code == 200, r.text
    assert r.json()["refused_by"] == "rita"
    # a run someone may not read is not found, whatever its exceptions
    await problem(await api.get(f"{run}/waivers", headers=auth("priya")), 404)
