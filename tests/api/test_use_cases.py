"""The HTTP API over the real workflow: contract shapes, status codes and idempotency."""

from __future__ import annotations

import asyncio
import copy
import uuid
from typing import Any

import httpx
import pytest

from services.settings import Settings
from tests.api.conftest import approve, auth, seen
from tests.harness import api_client
from tests.workflows.helpers import (
    GATE_APPROVERS,
    GATE_EVIDENCE,
    STAGE_EVIDENCE,
    evidence,
)

PROBLEM = "application/problem+json"


OWNERS: dict[str, Any] = {
    "business_owner": "bo",
    "technical_owner": "tom",
    "operations_owner": "olga",
    "risk_approvers": ["group:risk-committee"],
    "escalation_owner": "eve",
}


def new_body(tier: str = "low", **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": f"uc-{uuid.uuid4().hex[:10]}",
        "title": "Claims triage assistant",
        "summary": "Routes incoming claims to the right queue",
        "risk_tier": tier,
        "owners": copy.deepcopy(OWNERS),
    }
    body.update(over)
    return body


def ev(kind: str) -> dict[str, str]:
    return evidence(kind).model_dump()


async def create(api: httpx.AsyncClient, tier: str = "low", person: str = "dana") -> dict[str, Any]:
    r = await api.post("/v1/use-cases", json=new_body(tier), headers=auth(person))
    assert r.status_code == 201, r.text
    return r.json()


async def walk(api: httpx.AsyncClient, uc: dict[str, Any], until: str) -> dict[str, Any]:
    tier = uc["risk_tier"]
    state = uc
    while state["stage"] != until:
        stage = state["stage"]
        if state["open_gate"] is None:
            kinds = STAGE_EVIDENCE[tier].get(stage, [])
            r = await api.post(
                f"/v1/use-cases/{uc['id']}/stages/{stage}/complete",
                json={"evidence": [ev(k) for k in kinds], "comment": f"{stage} done"},
                headers=auth("dana"),
            )
        else:
            kinds = GATE_EVIDENCE[tier].get(stage, [])
            if kinds:
                r = await api.post(
                    f"/v1/use-cases/{uc['id']}/evidence",
                    json={"evidence": [ev(k) for k in kinds]},
                    headers=auth("tom"),
                )
                assert r.status_code == 201, r.text
            for person in GATE_APPROVERS[tier][stage]:
                r = await approve(api, f"/v1/use-cases/{uc['id']}", stage, person)
                assert r.status_code == 200, r.text
        assert r.status_code == 200, r.text
        state = r.json()
    return state


async def test_start_returns_contract_state(api: httpx.AsyncClient) -> None:
    body = new_body("high", slack_channel="#ai-releases")
    r = await api.post("/v1/use-cases", json=body, headers=auth("dana"))
    assert r.status_code == 201, r.text
    state = r.json()
    assert state["id"] == f"usecase-{body['key']}"
    assert state["stage"] == "scoping"
    assert state["closed"] is False
    assert state["round"] == 1
    assert state["open_gate"] is None
    assert state["owners"]["delivery_lead"] == "dana"
    assert state["owners"]["stop_authority"] == ["bo", "tom", "olga"]
    assert state["owners"]["risk_approvers"] == ["group:risk-committee"]
    assert state["policy"]["version"] == "2026.3"
    assert len(state["policy"]["sha256"]) == 64
    assert state["temporal_ui_url"].endswith(f"/namespaces/default/workflows/{state['id']}")
    assert r.headers["location"] == f"/v1/use-cases/{state['id']}"


async def test_start_is_idempotent_by_key(api: httpx.AsyncClient) -> None:
    body = new_body()
    first = await api.post("/v1/use-cases", json=body, headers=auth("dana"))
    again = await api.post("/v1/use-cases", json=body, headers=auth("dana"))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]

    other = await api.post(
        "/v1/use-cases", json={**body, "title": "Something else"}, headers=auth("dana")
    )
    assert other.status_code == 409
    assert other.headers["content-type"] == PROBLEM
    assert other.json()["status"] == 409


async def test_low_tier_walks_to_live_over_http(api: httpx.AsyncClient) -> None:
    uc = await create(api, "low")
    state = await walk(api, uc, "live")
    assert state["stage"] == "live"

    r = await api.get(f"/v1/use-cases/{uc['id']}/history", headers=auth("eve"))
    assert r.status_code == 200
    kinds = [(e["kind"], e["stage"]) for e in r.json()]
    assert kinds[0] == ("run_started", "scoping")
    assert ("stage_entered", "live") in kinds
    decisions = [e for e in r.json() if e["kind"] == "decision"]
    assert [(d["actor"], d["gate"], d["decision"]) for d in decisions] == [
        ("rita", "risk_signoff", "approve"),
        ("olga", "ops_handoff", "approve"),
        ("bo", "go_live", "approve"),
    ]
    for event in r.json():
        assert set(event) >= {"at", "stage", "kind", "actor", "decision", "comment", "evidence"}


async def test_gate_state_lists_eligible_and_required_evidence(api: httpx.AsyncClient) -> None:
    uc = await create(api, "high")
    state = await walk(api, uc, "risk_signoff")
    gate = state["open_gate"]
    assert gate["gate"] == "risk_signoff"
    assert gate["eligible"] == ["raj", "rita"]
    assert gate["pending"] == ["raj", "rita"]  # whom the gate waits on, as PendingApprovers
    assert gate["quorum"] == 2
    assert gate["approvals"] == []
    assert state["required_evidence"] == ["risk_assessment"]

    r = await approve(api, f"/v1/use-cases/{uc['id']}", "risk_signoff", "rita")
    assert r.status_code == 409
    assert r.json()["type"].endswith("evidence-missing")


@pytest.mark.parametrize(
    ("person", "status"),
    [("olga", 403), ("dana", 403), ("tom", 403), ("nobody", 401)],
)
async def test_ineligible_decision_is_403_and_records_nothing(
    api: httpx.AsyncClient, person: str, status: int
) -> None:
    uc = await create(api, "low")
    await walk(api, uc, "risk_signoff")
    before = (await api.get(f"/v1/use-cases/{uc['id']}/history", headers=auth("bo"))).json()
    headers = auth(person) if person != "nobody" else {"Authorization": "Bearer nope-nope"}
    r = await api.post(
        f"/v1/use-cases/{uc['id']}/gates/risk_signoff/decisions",
        json={"decision": "approve"},  # names no evidence: eligibility is judged first
        headers=headers,
    )
    assert r.status_code == status
    assert r.headers["content-type"] == PROBLEM
    if status == 403:
        assert r.json()["detail"] == "not eligible for this gate"
    after = (await api.get(f"/v1/use-cases/{uc['id']}/history", headers=auth("bo"))).json()
    assert after == before


async def test_missing_token_is_401(api: httpx.AsyncClient) -> None:
    r = await api.get("/v1/use-cases")
    assert r.status_code == 401
    assert r.headers["content-type"] == PROBLEM
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"{not json", "json"),
        (b'{"key": "Bad Key!", "title": "x", "risk_tier": "low"}', "key"),
        (b"[]", ""),
    ],
)
async def test_malformed_start_is_422(
    api: httpx.AsyncClient, content: bytes, fragment: str
) -> None:
    r = await api.post(
        "/v1/use-cases",
        content=content,
        headers={**auth("dana"), "content-type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == PROBLEM
    assert fragment in r.json()["detail"].lower()


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"risk_tier": "extreme"}, "risk_tier"),
        (
            {
                "owners": {
                    "business_owner": "ghost",
                    "technical_owner": "tom",
                    "operations_owner": "olga",
                    "risk_approvers": ["rita"],
                    "escalation_owner": "eve",
                }
            },
            "ghost",
        ),
        (
            {
                "owners": {
                    "business_owner": "bo",
                    "technical_owner": "tom",
                    "operations_owner": "olga",
                    "risk_approvers": ["group:nobody-here"],
                    "escalation_owner": "eve",
                }
            },
            "nobody-here",
        ),
        ({"unexpected": 1}, "unexpected"),
    ],
)
async def test_bad_start_fields_are_422(
    api: httpx.AsyncClient, change: dict[str, Any], detail: str
) -> None:
    r = await api.post("/v1/use-cases", json=new_body(**change), headers=auth("dana"))
    assert r.status_code == 422, r.text
    assert detail in r.text


async def test_high_tier_needs_two_independent_risk_approvers(api: httpx.AsyncClient) -> None:
    body = new_body("high")
    body["owners"]["risk_approvers"] = ["rita", "tom"]  # tom is the technical owner: SoD
    r = await api.post("/v1/use-cases", json=body, headers=auth("dana"))
    assert r.status_code == 422
    assert "risk_signoff" in r.json()["detail"]


async def test_unknown_use_case_is_404(api: httpx.AsyncClient) -> None:
    for method, path, body in [
        ("GET", "/v1/use-cases/usecase-does-not-exist", None),
        ("GET", "/v1/use-cases/does-not-exist/history", None),
        (
            "POST",
            "/v1/use-cases/usecase-does-not-exist/gates/go_live/decisions",
            {"decision": "approve"},
        ),
        ("POST", "/v1/use-cases/usecase-does-not-exist/stages/scoping/complete", {}),
    ]:
        r = await api.request(method, path, json=body, headers=auth("bo"))
        assert r.status_code == 404, (path, r.text)
        assert r.headers["content-type"] == PROBLEM


async def test_wrong_stage_and_bad_paths(api: httpx.AsyncClient) -> None:
    uc = await create(api, "low")
    r = await api.post(
        f"/v1/use-cases/{uc['id']}/stages/validation/complete", json={}, headers=auth("dana")
    )
    assert r.status_code == 409
    assert r.json()["type"].endswith("wrong-stage")
    r = await api.post(
        f"/v1/use-cases/{uc['id']}/stages/launch/complete", json={}, headers=auth("dana")
    )
    assert r.status_code == 422
    r = await api.post(
        f"/v1/use-cases/{uc['id']}/stages/scoping/complete", json={}, headers=auth("rita")
    )
    assert r.status_code == 403
    r = await approve(api, f"/v1/use-cases/{uc['id']}", "go_live", "bo")
    assert r.status_code == 409
    assert r.json()["type"].endswith("gate-not-open")


async def test_evidence_validation(api: httpx.AsyncClient) -> None:
    uc = await create(api, "low")
    bad = [
        {"kind": "runbook", "name": "rb", "uri": "https://x/rb", "sha256": "abc"},
        {"kind": "runbook", "name": "rb", "uri": "not a uri", "sha256": "a" * 64},
        {"kind": "Run Book", "name": "rb", "uri": "https://x/rb", "sha256": "a" * 64},
    ]
    for item in bad:
        r = await api.post(
            f"/v1/use-cases/{uc['id']}/evidence", json={"evidence": [item]}, headers=auth("dana")
        )
        assert r.status_code == 422, r.text
    state = (await api.get(f"/v1/use-cases/{uc['id']}", headers=auth("dana"))).json()
    assert state["evidence"] == []

    r = await api.post(
        f"/v1/use-cases/{uc['id']}/evidence",
        json={"evidence": [ev("design_doc")]},
        headers=auth("dana"),
    )
    assert r.status_code == 201
    assert [e["kind"] for e in r.json()["evidence"]] == ["design_doc"]


async def test_comment_required_to_request_changes(api: httpx.AsyncClient) -> None:
    uc = await create(api, "low")
    await walk(api, uc, "ops_handoff")
    url = f"/v1/use-cases/{uc['id']}/gates/ops_handoff/decisions"
    r = await api.post(url, json={"decision": "request_changes"}, headers=auth("olga"))
    assert r.status_code == 422
    r = await api.post(url, json={"decision": "maybe"}, headers=auth("olga"))
    assert r.status_code == 422
    r = await api.post(
        url, json={"decision": "request_changes", "comment": "no runbook"}, headers=auth("olga")
    )
    assert r.status_code == 200
    assert r.json()["stage"] == "implementation"
    assert r.json()["round"] == 2


async def test_idempotency_key_makes_one_decision(api: httpx.AsyncClient) -> None:
    uc = await create(api, "high")
    await walk(api, uc, "risk_signoff")
    await api.post(
        f"/v1/use-cases/{uc['id']}/evidence",
        json={"evidence": [ev("risk_assessment")]},
        headers=auth("dana"),
    )
    url = f"/v1/use-cases/{uc['id']}/gates/risk_signoff/decisions"
    headers = {
        **auth("rita"),
        **await seen(api, f"/v1/use-cases/{uc['id']}", "rita"),
        "Idempotency-Key": "approve-once-42",
    }
    first, second = await asyncio.gather(
        api.post(url, json={"decision": "approve"}, headers=headers),
        api.post(url, json={"decision": "approve"}, headers=headers),
    )
    assert first.status_code == second.status_code == 200
    third = await api.post(url, json={"decision": "approve"}, headers=headers)
    assert third.status_code == 200
    assert [a["actor"] for a in third.json()["open_gate"]["approvals"]] == ["rita"]
    # a fresh key for the same person is a second attempt, and refused
    r = await approve(api, f"/v1/use-cases/{uc['id']}", "risk_signoff", "rita")
    assert r.status_code == 409
    assert r.json()["type"].endswith("already-decided")


async def test_closed_run_refuses_commands(api: httpx.AsyncClient) -> None:
    uc = await create(api, "low")
    r = await api.post(
        f"/v1/use-cases/{uc['id']}/cancel", json={"reason": "budget"}, headers=auth("dana")
    )
    assert r.status_code == 200
    assert r.json()["stage"] == "cancelled"
    assert r.json()["closed"]
    await asyncio.sleep(0.3)  # let the run finish
    r = await api.post(
        f"/v1/use-cases/{uc['id']}/stages/scoping/complete", json={}, headers=auth("dana")
    )
    assert r.status_code == 409, r.text
    r = await api.get(f"/v1/use-cases/{uc['id']}", headers=auth("dana"))
    assert r.status_code == 200
    assert r.json()["stage"] == "cancelled"


async def test_pending_inbox_follows_the_gate(api: httpx.AsyncClient) -> None:
    uc = await create(api, "low")
    await walk(api, uc, "ops_handoff")

    async def pending(person: str) -> list[str]:
        r = await api.get("/v1/approvals/pending", headers=auth(person))
        assert r.status_code == 200
        return [item["id"] for item in r.json()["items"]]

    async def eventually(person: str, present: bool) -> None:
        for _ in range(40):  # 2 s
            if (uc["id"] in await pending(person)) is present:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"inbox of {person} not updated within 2 s")

    await eventually("olga", True)
    assert uc["id"] not in await pending("rita")
    r = await approve(api, f"/v1/use-cases/{uc['id']}", "ops_handoff", "olga")
    assert r.status_code == 200
    await eventually("olga", False)
    await eventually("bo", True)


async def test_list_filters(api: httpx.AsyncClient) -> None:
    uc = await create(api, "medium")
    await walk(api, uc, "specification")
    for _ in range(40):
        r = await api.get(
            "/v1/use-cases",
            params={"stage": "specification", "risk_tier": "medium"},
            headers=auth("eve"),
        )
        ids = [i["id"] for i in r.json()["items"]]
        if uc["id"] in ids:
            break
        await asyncio.sleep(0.05)
    assert uc["id"] in ids
    assert all(i["stage"] == "specification" for i in r.json()["items"])
    r = await api.get("/v1/use-cases", params={"stage": "nonsense"}, headers=auth("eve"))
    assert r.status_code == 422
    r = await api.get("/v1/use-cases", params={"limit": 0}, headers=auth("eve"))
    assert r.status_code == 422


async def test_health_and_docs(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).status_code == 200
    r = await api.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["checks"] == {"temporal": "ok", "database": "ok", "worker": "ok"}
    assert (await api.get("/openapi.json")).status_code == 200


async def test_temporal_unreachable_is_503(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"temporal_address": "127.0.0.1:1"})
    async with api_client(settings) as client:
        r = await client.get("/v1/use-cases/usecase-anything", headers=auth("bo"))
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == PROBLEM
        r = await client.post("/v1/use-cases", json=new_body(), headers=auth("dana"))
        assert r.status_code == 503
        r = await client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"]["database"] == "ok"


# --------------------------------------------------------------------------- reopen


async def stalled(api: httpx.AsyncClient) -> dict[str, Any]:
    uc = await create(api, "low")
    await walk(api, uc, "risk_signoff")
    for _ in range(100):  # 10 s
        state = (await api.get(f"/v1/use-cases/{uc['id']}", headers=auth("dana"))).json()
        if state["stage"] == "stalled":
            return dict(state)
        await asyncio.sleep(0.1)
    raise AssertionError(f"risk_signoff of {uc['id']} did not expire: {state}")


async def test_reopen_names_the_gate_that_expired(expiring_api: httpx.AsyncClient) -> None:
    uc = await stalled(expiring_api)
    assert uc["stalled_gate"] == "risk_signoff"
    base = f"/v1/use-cases/{uc['id']}/gates"
    r = await expiring_api.post(f"{base}/ops_handoff/reopen", json={}, headers=auth("dana"))
    assert r.status_code == 409, r.text
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["type"].endswith("wrong-stage")
    # only the delivery lead reopens, whichever gate is named
    r = await expiring_api.post(f"{base}/risk_signoff/reopen", json={}, headers=auth("tom"))
    assert r.status_code == 403, r.text
    r = await expiring_api.post(
        f"{base}/risk_signoff/reopen", json={"reason": "still wanted"}, headers=auth("dana")
    )
    assert r.status_code == 200, r.text
    assert r.json()["stage"] == "risk_signoff"
    assert r.json()["open_gate"]["gate"] == "risk_signoff"


async def test_reopen_authorizes_before_it_looks_at_the_run(api: httpx.AsyncClient) -> None:
    uc = await create(api, "low")  # nothing has expired
    url = f"/v1/use-cases/{uc['id']}/gates/risk_signoff/reopen"
    r = await api.post(url, json={}, headers=auth("rita"))
    assert r.status_code == 403, r.text
    assert r.json()["type"].endswith("not-eligible")
    r = await api.post(url, json={}, headers=auth("dana"))
    assert r.status_code == 409, r.text
    assert r.json()["type"].endswith("wrong-stage")
