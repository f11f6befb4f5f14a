"""Break-glass through the HTTP API on the real dev server (issue 12): a stalled gate is
overridden by the policy's emergency group with a justification, recorded as ``override`` (never
an approval), and a retrospective review gate must uphold it."""

from __future__ import annotations

import httpx

from tests.api.conftest import approve, auth
from tests.api.test_use_cases import PROBLEM, stalled

WHY = "payments outage: the fraud model must ship tonight, COO approved by phone"


async def test_an_expired_gate_is_overridden_on_the_record_and_reviewed(
    expiring_api: httpx.AsyncClient,
) -> None:
    api = expiring_api
    uc = await stalled(api)
    run = f"/v1/use-cases/{uc['id']}"
    url = f"{run}/gates/risk_signoff/override"

    # not in the break-glass group: 403 before anything about the run
    r = await api.post(url, json={"justification": WHY}, headers=auth("bo"))
    assert r.status_code == 403, r.text
    assert r.headers["content-type"] == PROBLEM
    # the justification is mandatory and must say something
    r = await api.post(url, json={}, headers=auth("eve"))
    assert r.status_code == 422, r.text
    r = await api.post(url, json={"justification": "asap"}, headers=auth("eve"))
    assert r.status_code == 422, r.text
    assert "justification" in r.json()["detail"]
    # only the gate that stalled
    r = await api.post(
        f"{run}/gates/go_live/override", json={"justification": WHY}, headers=auth("eve")
    )
    assert r.status_code == 409, r.text

    r = await api.post(url, json={"justification": WHY}, headers=auth("eve"))
    assert r.status_code == 200, r.text
    state = r.json()
    assert state["stage"] == "ops_handoff"
    assert state["stalled_gate"] is None
    review = state["override"]["review"]
    assert state["override"]["by"] == "eve"
    assert review["gate"] == "override_review"
    assert "eve" not in review["eligible"]
    assert "dana" not in review["eligible"]

    # the review waits in its reviewers' inboxes, beside any open gate
    inbox = (await api.get("/v1/approvals/pending", headers=auth("bo"))).json()["items"]
    [item] = [i for i in inbox if i["id"] == uc["id"] and i["kind"] == "override_review"]
    assert item["gate"] == "override_review"
    assert item["decide_url"].endswith(f"{run}/gates/override_review/decisions")
    inbox = (await api.get("/v1/approvals/pending", headers=auth("eve"))).json()["items"]
    assert not [i for i in inbox if i["id"] == uc["id"]]

    # the overrider never reviews; a second override waits for this review
    r = await approve(api, run, "override_review", "eve")
    assert r.status_code == 403, r.text
    r = await approve(api, run, "override_review", "bo")
    assert r.status_code == 200, r.text
    r = await approve(api, run, "override_review", "rita")
    assert r.status_code == 200, r.text
    assert r.json()["override"] is None
    inbox = (await api.get("/v1/approvals/pending", headers=auth("rita"))).json()["items"]
    assert not [i for i in inbox if i["id"] == uc["id"] and i["kind"] == "override_review"]

    history = (await api.get(f"{run}/history", headers=auth("rita"))).json()
    kinds = [(e["kind"], e.get("gate")) for e in history]
    assert ("override", "risk_signoff") in kinds
    assert ("decision", "risk_signoff") not in kinds
    assert ("gate_passed", "risk_signoff") not in kinds
    assert ("gate_passed", "override_review") in kinds
    [entry] = [e for e in history if e["kind"] == "override"]
    assert entry["actor"] == "eve"
    assert entry["comment"] == WHY
