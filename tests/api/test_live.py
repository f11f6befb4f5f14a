"""Live operation over HTTP: each verb's happy path and its refusals, which record nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.conftest import approve, auth
from tests.api.test_use_cases import create, walk

PROBLEM = "application/problem+json"


async def live(api: httpx.AsyncClient, tier: str = "low") -> dict[str, Any]:
    uc = await create(api, tier)
    return await walk(api, uc, "live")


async def history(api: httpx.AsyncClient, uc: dict[str, Any]) -> list[Any]:
    r = await api.get(f"/v1/use-cases/{uc['id']}/history", headers=auth("eve"))
    assert r.status_code == 200
    return list(r.json())


async def test_incident_suspend_resume_over_http(api: httpx.AsyncClient) -> None:
    uc = await live(api)
    base = f"/v1/use-cases/{uc['id']}"
    r = await api.post(
        f"{base}/incidents",
        json={"severity": "sev2", "summary": "slow answers"},
        headers=auth("olga"),
    )
    assert r.status_code == 201, r.text
    assert r.json()["stage"] == "live"
    r = await api.post(
        f"{base}/incidents",
        json={"severity": "sev1", "summary": "bad advice"},
        headers=auth("olga"),
    )
    assert r.status_code == 201
    assert r.json()["stage"] == "suspended"
    # the paged list, read from the ledger, says which incident suspended the run
    r = await api.get(f"{base}/incidents", params={"limit": 10}, headers=auth("olga"))
    assert r.status_code == 200, r.text
    assert [(i["severity"], i["suspended"]) for i in r.json()["items"]] == [
        ("sev2", False),
        ("sev1", True),
    ]

    # whoever asks to resume never decides it: tom asks, a risk approver and bo decide
    r = await api.post(f"{base}/resume", json={"reason": "fixed"}, headers=auth("tom"))
    assert r.status_code == 200
    assert r.json()["open_gate"]["gate"] == "resume_approval"
    for person in ("raj", "bo"):
        r = await approve(api, base, "resume_approval", person)
        assert r.status_code == 200, r.text
    assert r.json()["stage"] == "live"

    r = await api.post(f"{base}/suspend", json={"reason": "stop-ship drill"}, headers=auth("tom"))
    assert r.status_code == 200
    assert r.json()["stage"] == "suspended"


@pytest.mark.parametrize(
    ("path", "person", "body", "status"),
    [
        ("suspend", "rita", {"reason": "x"}, 403),
        ("suspend", "bo", {}, 422),
        ("resume", "bo", {}, 409),
        ("retire", "tom", {}, 403),
        ("incidents", "priya", {"severity": "sev2", "summary": "x"}, 403),
        ("incidents", "olga", {"severity": "sev9", "summary": "x"}, 422),
        ("incidents", "olga", {"severity": "sev2"}, 422),
        ("changes", "rita", {"summary": "x", "materiality": "minor"}, 403),
        ("changes", "dana", {"summary": "x", "materiality": "huge"}, 422),
    ],
)
async def test_live_refusals_record_nothing(
    api: httpx.AsyncClient, path: str, person: str, body: dict[str, Any], status: int
) -> None:
    uc = await live(api)
    before = await history(api, uc)
    r = await api.post(f"/v1/use-cases/{uc['id']}/{path}", json=body, headers=auth(person))
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    assert await history(api, uc) == before


async def test_live_verbs_before_live_are_409(api: httpx.AsyncClient) -> None:
    uc = await create(api, "low")
    for path, person, body in [
        ("suspend", "bo", {"reason": "x"}),
        ("retire", "bo", {}),
        ("changes", "dana", {"summary": "x", "materiality": "minor"}),
        ("incidents", "olga", {"severity": "sev2", "summary": "x"}),
    ]:
        r = await api.post(f"/v1/use-cases/{uc['id']}/{path}", json=body, headers=auth(person))
        assert r.status_code == 409, (path, r.text)


async def test_retire_twice(api: httpx.AsyncClient) -> None:
    uc = await live(api)
    r = await api.post(
        f"/v1/use-cases/{uc['id']}/retire", json={"reason": "sunset"}, headers=auth("bo")
    )
    assert r.status_code == 200
    assert r.json()["stage"] == "retired"
    r = await api.post(f"/v1/use-cases/{uc['id']}/retire", json={}, headers=auth("bo"))
    assert r.status_code == 409


async def test_change_request_driven_like_a_use_case(api: httpx.AsyncClient) -> None:
    uc = await live(api, "medium")
    base = f"/v1/use-cases/{uc['id']}"
    r = await api.post(
        f"{base}/changes",
        json={"summary": "swap the model", "materiality": "material"},
        headers=auth("dana"),
    )
    assert r.status_code == 201, r.text
    change = r.json()
    assert change["id"] == f"{uc['id']}-change-1"
    assert change["stage"] == "validation"
    assert change["change_id"] == "change-1"
    assert change["change"]["change_id"] == "change-1"
    cbase = f"{base}/changes/change-1"
    assert r.headers["location"] == cbase

    r = await api.get(r.headers["location"], headers=auth("eve"))
    assert r.status_code == 200
    assert r.json()["id"] == change["id"]
    assert r.json()["required_evidence"] == ["evaluation_report"]
    r = await api.post(f"{cbase}/stages/validation/complete", json={}, headers=auth("dana"))
    assert r.status_code == 409  # evidence missing
    r = await api.post(
        f"{cbase}/evidence",
        json={
            "evidence": [
                {
                    "kind": "evaluation_report",
                    "name": "eval-v2.pdf",
                    "uri": "https://docs.example.com/e2",
                    "sha256": "ab" * 32,
                }
            ]
        },
        headers=auth("dana"),
    )
    assert r.status_code == 201
    r = await api.post(f"{cbase}/stages/validation/complete", json={}, headers=auth("dana"))
    assert r.status_code == 200, r.text
    assert r.json()["stage"] == "risk_signoff"
    r = await api.post(
        f"{cbase}/gates/risk_signoff/decisions",
        json={"decision": "reject", "comment": "not convinced"},
        headers=auth("rita"),
    )
    assert r.status_code == 200
    assert r.json()["outcome"] == "rejected"

    r = await api.get(base, headers=auth("eve"))
    assert r.json()["stage"] == "live"  # the live version kept running
    r = await api.get(f"{base}/changes/change-9", headers=auth("eve"))
    assert r.status_code == 404
    r = await api.get(f"{base}/changes/bogus", headers=auth("eve"))
    assert r.status_code == 404


CLOSED_OR_NOT_LIVE = [
    # (path, body, a caller who may never send it, a caller who may)
    ("suspend", {"reason": "x"}, "rita", "tom"),
    ("retire", {}, "tom", "bo"),
    ("cancel", {}, "eve", "dana"),
    ("resume", {}, "dana", "olga"),
    ("changes", {"summary": "x", "materiality": "minor"}, "olga", "dana"),
    ("incidents", {"severity": "sev2", "summary": "x"}, "priya", "olga"),
]


@pytest.mark.parametrize(
    ("path", "body", "outsider", "insider"),
    CLOSED_OR_NOT_LIVE,
    ids=[c[0] for c in CLOSED_OR_NOT_LIVE],
)
async def test_authorization_comes_before_the_runs_state(
    api: httpx.AsyncClient, path: str, body: dict[str, Any], outsider: str, insider: str
) -> None:
    """Someone who may never send a command hears "not eligible" (403) whatever the run's
    state; someone who may hears why the state refuses it (409)."""
    closed = await create(api, "low")
    r = await api.post(f"/v1/use-cases/{closed['id']}/cancel", json={}, headers=auth("dana"))
    assert r.status_code == 200, r.text
    not_live = await create(api, "low")  # scoping: no live verb applies, cancel does
    for uc, insider_status in ((closed, 409), (not_live, 200 if path == "cancel" else 409)):
        url = f"/v1/use-cases/{uc['id']}/{path}"
        r = await api.post(url, json=body, headers=auth(outsider))
        assert r.status_code == 403, (uc["stage"], r.text)
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["type"].endswith("not-eligible")
        r = await api.post(url, json=body, headers=auth(insider))
        assert r.status_code == insider_status, (uc["stage"], r.text)


async def test_a_replayed_idempotency_key_raises_one_change(api: httpx.AsyncClient) -> None:
    uc = await live(api)
    url = f"/v1/use-cases/{uc['id']}/changes"
    headers = {**auth("dana"), "Idempotency-Key": "change-once-7"}
    body = {"summary": "tune the prompt", "materiality": "minor"}
    first = await api.post(url, json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = await api.post(url, json=body, headers=headers)
    assert again.status_code in (201, 409), again.text  # never 500
    if again.status_code == 201:
        assert again.json()["change_id"] == first.json()["change_id"]
        assert again.headers["location"] == first.headers["location"]
    else:
        assert again.headers["content-type"] == PROBLEM
    parent = (await api.get(f"/v1/use-cases/{uc['id']}", headers=auth("dana"))).json()
    assert [c["change_id"] for c in parent["changes"]] == [first.json()["change_id"]]
    # the same key from another caller is that caller's own request
    r = await api.post(url, json=body, headers={**auth("tom"), "Idempotency-Key": "change-once-7"})
    assert r.status_code == 201, r.text
    assert r.json()["change_id"] != first.json()["change_id"]


async def test_changes_of_another_kind_of_id_are_404(api: httpx.AsyncClient) -> None:
    uc = await create(api, "low")
    for change_id in ("change-0", "bogus", "change-1x"):
        r = await api.get(f"/v1/use-cases/{uc['id']}/changes/{change_id}", headers=auth("eve"))
        assert r.status_code == 404, (change_id, r.text)
        assert r.headers["content-type"] == PROBLEM
