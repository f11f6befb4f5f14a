"""Decisions say what they saw: every state carries the ETag of the evidence an approval would
bind to, and an approval names that evidence (``If-Match`` or ``evidence_digests``) or is
refused with the current set, recording nothing."""

from __future__ import annotations

import re
from typing import Any

import httpx

from services.commands.evidence import evidence_etag
from tests.api.conftest import approve, auth, seen
from tests.api.test_use_cases import PROBLEM, create, ev, walk

PRECONDITION_REQUIRED = "urn:releasegate:problem:precondition-required"
EVIDENCE_CHANGED = "urn:releasegate:problem:evidence-changed"


async def at_risk_signoff(api: httpx.AsyncClient) -> tuple[str, dict[str, Any]]:
    """A high-tier run at risk_signoff (quorum 2) with its risk assessment: (path, state)."""
    uc = await create(api, "high")
    await walk(api, uc, "risk_signoff")
    run = f"/v1/use-cases/{uc['id']}"
    r = await api.post(
        f"{run}/evidence", json={"evidence": [ev("risk_assessment")]}, headers=auth("tom")
    )
    assert r.status_code == 201, r.text
    return run, r.json()


async def state(api: httpx.AsyncClient, run: str) -> httpx.Response:
    r = await api.get(run, headers=auth("eve"))
    assert r.status_code == 200, r.text
    return r


async def test_every_state_carries_the_etag_of_its_evidence(api: httpx.AsyncClient) -> None:
    uc = await create(api, "low")
    run = f"/v1/use-cases/{uc['id']}"
    # no gate open: the run's evidence (none yet)
    assert (await state(api, run)).headers["etag"] == evidence_etag([])
    item = ev("design_doc")
    r = await api.post(f"{run}/evidence", json={"evidence": [item]}, headers=auth("dana"))
    assert r.headers["etag"] == evidence_etag([item["sha256"]])
    assert (await state(api, run)).headers["etag"] == r.headers["etag"]

    walked = await walk(api, uc, "risk_signoff")
    gate_state = (await state(api, run)).json()
    digests = gate_state["open_gate"]["evidence_digests"]
    assert item["sha256"] in digests
    etag = (await state(api, run)).headers["etag"]
    assert etag == evidence_etag(digests)
    assert re.fullmatch(r'"[0-9a-f]{64}"', etag)  # strong (no W/), quoted
    assert walked["stage"] == "risk_signoff"


async def test_an_approval_naming_nothing_is_428_with_the_current_set(
    api: httpx.AsyncClient,
) -> None:
    run, current = await at_risk_signoff(api)
    before = (await state(api, run)).json()
    for headers in ({}, {"If-Match": "*"}):
        r = await api.post(
            f"{run}/gates/risk_signoff/decisions",
            json={"decision": "approve"},
            headers={**auth("rita"), **headers},
        )
        assert r.status_code == 428, r.text
        assert r.headers["content-type"] == PROBLEM
        problem = r.json()
        assert problem["type"] == PRECONDITION_REQUIRED
        assert problem["evidence_digests"] == sorted(current["open_gate"]["evidence_digests"])
        assert problem["etag"] == r.headers["etag"] == (await state(api, run)).headers["etag"]
    after = (await state(api, run)).json()
    assert after["open_gate"]["approvals"] == []
    assert after["event_count"] == before["event_count"]  # nothing recorded


async def test_an_approval_with_the_etag_binds_to_what_it_stands_for(
    api: httpx.AsyncClient,
) -> None:
    run, current = await at_risk_signoff(api)
    r = await approve(api, run, "risk_signoff", "rita")
    assert r.status_code == 200, r.text
    [approval] = r.json()["open_gate"]["approvals"]
    assert approval["actor"] == "rita"
    assert sorted(approval["evidence_digests"]) == sorted(current["open_gate"]["evidence_digests"])
    assert r.headers["etag"] == evidence_etag(current["open_gate"]["evidence_digests"])


async def test_a_stale_etag_is_412_with_the_current_set_and_records_nothing(
    api: httpx.AsyncClient,
) -> None:
    run, _ = await at_risk_signoff(api)
    reviewed = await seen(api, run, "rita")
    r = await api.post(
        f"{run}/evidence", json={"evidence": [ev("risk_assessment")]}, headers=auth("tom")
    )
    assert r.status_code == 201, r.text
    now = (await state(api, run)).json()
    for stale in (reviewed["If-Match"], f"W/{r.headers['etag']}", '"not-an-etag"'):
        refused = await api.post(
            f"{run}/gates/risk_signoff/decisions",
            json={"decision": "approve"},
            headers={**auth("rita"), "If-Match": stale},
        )
        assert refused.status_code == 412, refused.text
        assert refused.headers["content-type"] == PROBLEM
        problem = refused.json()
        assert problem["type"] == EVIDENCE_CHANGED
        assert problem["evidence_digests"] == sorted(now["open_gate"]["evidence_digests"])
        assert problem["etag"] == r.headers["etag"]
    after = (await state(api, run)).json()
    assert after["open_gate"]["approvals"] == []
    assert after["event_count"] == now["event_count"]

    # one of several tags may be the current one
    r = await api.post(
        f"{run}/gates/risk_signoff/decisions",
        json={"decision": "approve"},
        headers={**auth("rita"), "If-Match": f"{reviewed['If-Match']}, {r.headers['etag']}"},
    )
    assert r.status_code == 200, r.text


async def test_digests_that_differ_are_409_as_the_workflow_says(api: httpx.AsyncClient) -> None:
    run, _ = await at_risk_signoff(api)
    r = await api.post(
        f"{run}/gates/risk_signoff/decisions",
        json={"decision": "approve", "evidence_digests": ["c" * 64]},
        headers=auth("rita"),
    )
    assert r.status_code == 409, r.text
    assert r.json()["type"] == EVIDENCE_CHANGED
    current = (await state(api, run)).json()["open_gate"]["evidence_digests"]
    r = await api.post(
        f"{run}/gates/risk_signoff/decisions",
        json={"decision": "approve", "evidence_digests": current},
        headers=auth("rita"),
    )
    assert r.status_code == 200, r.text


async def test_request_changes_and_reject_need_no_evidence(api: httpx.AsyncClient) -> None:
    run, _ = await at_risk_signoff(api)
    r = await api.post(
        f"{run}/gates/risk_signoff/decisions",
        json={"decision": "request_changes", "comment": "needs more"},
        headers=auth("rita"),
    )
    assert r.status_code == 200, r.text
    uc = await create(api, "low")
    await walk(api, uc, "risk_signoff")
    r = await api.post(
        f"/v1/use-cases/{uc['id']}/gates/risk_signoff/decisions",
        json={"decision": "reject", "comment": "no"},
        headers=auth("rita"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["stage"] == "rejected"


async def test_who_may_not_decide_hears_403_not_the_evidence(api: httpx.AsyncClient) -> None:
    run, _ = await at_risk_signoff(api)
    r = await api.post(
        f"{run}/gates/risk_signoff/decisions", json={"decision": "approve"}, headers=auth("olga")
    )
    assert r.status_code == 403, r.text
    assert "evidence_digests" not in r.json()
    assert "etag" not in r.headers


async def test_a_replayed_approval_answers_first_even_after_the_evidence_changed(
    api: httpx.AsyncClient,
) -> None:
    run, _ = await at_risk_signoff(api)
    headers = {**auth("rita"), **await seen(api, run, "rita"), "Idempotency-Key": "rita-once"}
    url = f"{run}/gates/risk_signoff/decisions"
    first = await api.post(url, json={"decision": "approve"}, headers=headers)
    assert first.status_code == 200, first.text
    r = await api.post(
        f"{run}/evidence", json={"evidence": [ev("risk_assessment")]}, headers=auth("tom")
    )
    assert r.json()["open_gate"]["approvals"] == []  # new evidence voided rita's approval
    again = await api.post(url, json={"decision": "approve"}, headers=headers)
    assert (again.status_code, again.json()) == (200, first.json())
    # nothing was approved a second time
    assert (await state(api, run)).json()["open_gate"]["approvals"] == []
    # a new key with the stale ETag is a new approval of evidence that changed: 412
    fresh = {**headers, "Idempotency-Key": "rita-twice"}
    r = await api.post(url, json={"decision": "approve"}, headers=fresh)
    assert r.status_code == 412, r.text


async def test_a_replayed_approval_the_workflow_refused_is_judged_afresh(
    api: httpx.AsyncClient,
) -> None:
    """The first attempt was refused by the workflow's validator, which keeps nothing: its
    replay after the evidence changed has no first outcome to return, and is 412."""
    uc = await create(api, "high")
    await walk(api, uc, "risk_signoff")
    run = f"/v1/use-cases/{uc['id']}"
    headers = {**auth("rita"), **await seen(api, run, "rita"), "Idempotency-Key": "too-early"}
    url = f"{run}/gates/risk_signoff/decisions"
    first = await api.post(url, json={"decision": "approve"}, headers=headers)
    assert first.status_code == 409, first.text
    assert first.json()["type"].endswith("evidence-missing")
    r = await api.post(
        f"{run}/evidence", json={"evidence": [ev("risk_assessment")]}, headers=auth("tom")
    )
    assert r.status_code == 201, r.text
    again = await api.post(url, json={"decision": "approve"}, headers=headers)
    assert again.status_code == 412, again.text
    assert again.json()["etag"] == r.headers["etag"]


async def test_a_change_gate_approval_names_what_it_saw(api: httpx.AsyncClient) -> None:
    uc = await create(api, "low")
    await walk(api, uc, "live")
    r = await api.post(
        f"/v1/use-cases/{uc['id']}/changes",
        json={"summary": "prompt tweak", "materiality": "minor"},
        headers=auth("dana"),
    )
    assert r.status_code == 201, r.text
    change = r.headers["location"]
    assert r.headers["etag"] == (await state(api, change)).headers["etag"]
    r = await api.post(
        f"{change}/gates/change_approval/decisions",
        json={"decision": "approve"},
        headers=auth("tom"),
    )
    assert r.status_code == 428, r.text
    assert r.json()["type"] == PRECONDITION_REQUIRED
    r = await approve(api, change, "change_approval", "tom")
    assert r.status_code == 200, r.text
