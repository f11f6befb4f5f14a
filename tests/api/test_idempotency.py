"""``Idempotency-Key`` on every command route: scoped to (caller, command, key) and bound to the
request it was first sent with.

For each route: the first request answers; the same key with the same request answers the
first answer again (never a 500, never a second effect); the same key with another body is
422 ``idempotency-key-reused`` and sends nothing; another caller's use of the same key is that
caller's own request, answered on its own merits. Every state answered carries the ETag of
its evidence.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.commands.evidence import evidence_etag
from tests.api.conftest import auth, seen
from tests.api.test_use_cases import (
    PROBLEM,
    create,
    ev,
    new_body,
    stalled,
    walk,
)

REUSED = "urn:releasegate:problem:idempotency-key-reused"


def etag_of(state: dict[str, Any]) -> str:
    """The ETag a state must carry: its open gate's evidence, else the run's."""
    gate = state.get("open_gate")
    digests = gate["evidence_digests"] if gate else [e["sha256"] for e in state["evidence"]]
    return evidence_etag(digests)


@dataclass
class Case:
    """One command route, on a run set up for it."""

    run: str  # the path of the run whose state tells whether anything was recorded
    path: str  # where the command goes
    body: dict[str, Any]
    other_body: dict[str, Any]
    caller: str
    other_caller: str
    status: int
    method: str = "POST"
    # headers each caller sends besides their token and the key (If-Match for approvals)
    extra: Callable[[str], Awaitable[dict[str, str]]] | None = None


async def live_run(api: httpx.AsyncClient, tier: str = "low") -> str:
    uc = await create(api, tier)
    await walk(api, uc, "live")
    return f"/v1/use-cases/{uc['id']}"


async def scoping_run(api: httpx.AsyncClient) -> str:
    return f"/v1/use-cases/{(await create(api, 'low'))['id']}"


async def suspended_run(api: httpx.AsyncClient) -> str:
    run = await live_run(api)
    r = await api.post(f"{run}/suspend", json={"reason": "drill"}, headers=auth("tom"))
    assert r.status_code == 200, r.text
    return run


async def change_run(api: httpx.AsyncClient, until: str) -> str:
    """A material change of a live run, driven to ``until``."""
    run = await live_run(api)
    r = await api.post(
        f"{run}/changes",
        json={"summary": "swap the model", "materiality": "material"},
        headers=auth("dana"),
    )
    assert r.status_code == 201, r.text
    change = r.headers["location"]
    if until == "risk_signoff":
        r = await api.post(
            f"{change}/stages/validation/complete",
            json={"evidence": [ev("evaluation_report")]},
            headers=auth("dana"),
        )
        assert r.status_code == 200, r.text
        assert r.json()["stage"] == "risk_signoff"
    return str(change)


async def risk_signoff_run(api: httpx.AsyncClient) -> str:
    uc = await create(api, "high")
    await walk(api, uc, "risk_signoff")
    run = f"/v1/use-cases/{uc['id']}"
    r = await api.post(
        f"{run}/evidence", json={"evidence": [ev("risk_assessment")]}, headers=auth("tom")
    )
    assert r.status_code == 201, r.text
    return run


def if_match_of(api: httpx.AsyncClient, run: str) -> Callable[[str], Awaitable[dict[str, str]]]:
    async def headers(person: str) -> dict[str, str]:
        return await seen(api, run, person)

    return headers


async def complete_case(api: httpx.AsyncClient) -> Case:
    run = await scoping_run(api)
    return Case(
        run, f"{run}/stages/scoping/complete", {"comment": "scoped"}, {"comment": "other"},
        "dana", "tom", 200,
    )  # fmt: skip


async def evidence_case(api: httpx.AsyncClient) -> Case:
    run = await scoping_run(api)
    return Case(
        run, f"{run}/evidence", {"evidence": [ev("design_doc")]},
        {"evidence": [ev("design_doc")]}, "dana", "tom", 201,
    )  # fmt: skip


async def decisions_case(api: httpx.AsyncClient) -> Case:
    run = await risk_signoff_run(api)
    return Case(
        run, f"{run}/gates/risk_signoff/decisions", {"decision": "approve"},
        {"decision": "approve", "comment": "fine"}, "rita", "raj", 200,
        extra=if_match_of(api, run),
    )  # fmt: skip


async def cancel_case(api: httpx.AsyncClient) -> Case:
    run = await scoping_run(api)
    return Case(run, f"{run}/cancel", {"reason": "budget"}, {"reason": "other"}, "dana", "bo", 200)


async def incidents_case(api: httpx.AsyncClient) -> Case:
    run = await live_run(api)
    return Case(
        run, f"{run}/incidents", {"severity": "sev3", "summary": "slow"},
        {"severity": "sev3", "summary": "slower"}, "olga", "tom", 201,
    )  # fmt: skip


async def suspend_case(api: httpx.AsyncClient) -> Case:
    run = await live_run(api)
    return Case(run, f"{run}/suspend", {"reason": "drill"}, {"reason": "other"}, "tom", "olga", 200)


async def resume_case(api: httpx.AsyncClient) -> Case:
    run = await suspended_run(api)
    return Case(run, f"{run}/resume", {"reason": "fixed"}, {"reason": "other"}, "tom", "olga", 200)


async def changes_case(api: httpx.AsyncClient) -> Case:
    run = await live_run(api)
    return Case(
        run, f"{run}/changes", {"summary": "swap", "materiality": "minor"},
        {"summary": "swap", "materiality": "material"}, "dana", "tom", 201,
    )  # fmt: skip


async def retire_case(api: httpx.AsyncClient) -> Case:
    run = await live_run(api)
    return Case(run, f"{run}/retire", {"reason": "replaced"}, {"reason": "other"}, "bo", "tom", 200)


async def deputies_case(api: httpx.AsyncClient) -> Case:
    run = await scoping_run(api)
    body = {"deputies": {"technical_owner": ["lee"]}, "comment": "covers tom"}
    return Case(
        run, f"{run}/deputies", body, {**body, "comment": "other"}, "bo", "tom", 200,
        method="PUT",
    )  # fmt: skip


async def change_complete_case(api: httpx.AsyncClient) -> Case:
    change = await change_run(api, "validation")
    return Case(
        change, f"{change}/stages/validation/complete",
        {"evidence": [ev("evaluation_report")]}, {"evidence": [ev("evaluation_report")]},
        "dana", "tom", 200,
    )  # fmt: skip


async def change_evidence_case(api: httpx.AsyncClient) -> Case:
    change = await change_run(api, "validation")
    return Case(
        change, f"{change}/evidence", {"evidence": [ev("model_card")]},
        {"evidence": [ev("model_card")]}, "dana", "tom", 201,
    )  # fmt: skip


async def change_decisions_case(api: httpx.AsyncClient) -> Case:
    change = await change_run(api, "risk_signoff")
    return Case(
        change, f"{change}/gates/risk_signoff/decisions", {"decision": "approve"},
        {"decision": "approve", "comment": "fine"}, "rita", "raj", 200,
        extra=if_match_of(api, change),
    )  # fmt: skip


# every command route but start (keyed by its use case key) and reopen (needs an expired
# gate): tested below
CASES: dict[str, Callable[[httpx.AsyncClient], Awaitable[Case]]] = {
    "complete": complete_case,
    "evidence": evidence_case,
    "decisions": decisions_case,
    "cancel": cancel_case,
    "incidents": incidents_case,
    "suspend": suspend_case,
    "resume": resume_case,
    "changes": changes_case,
    "retire": retire_case,
    "deputies": deputies_case,
    "change-complete": change_complete_case,
    "change-evidence": change_evidence_case,
    "change-decisions": change_decisions_case,
}


async def send(
    api: httpx.AsyncClient, case: Case, person: str, body: dict[str, Any], key: str
) -> httpx.Response:
    headers = {**auth(person), "Idempotency-Key": key}
    if case.extra is not None:
        headers.update(await case.extra(person))
    return await api.request(case.method, case.path, json=body, headers=headers)


async def recorded(api: httpx.AsyncClient, case: Case) -> int:
    r = await api.get(case.run, headers=auth("eve"))
    assert r.status_code == 200, r.text
    return int(r.json()["event_count"])


@pytest.mark.parametrize("route", CASES)
async def test_every_command_route_is_bound_to_its_first_request(
    api: httpx.AsyncClient, route: str
) -> None:
    case = await CASES[route](api)
    key = f"k-{uuid.uuid4().hex[:8]}"

    first = await send(api, case, case.caller, case.body, key)
    assert first.status_code == case.status, first.text
    assert first.headers["etag"] == etag_of(first.json())
    after_first = await recorded(api, case)

    # the same request again: the first answer, and no second effect
    again = await send(api, case, case.caller, case.body, key)
    assert again.status_code == case.status, again.text
    assert again.headers["etag"] == first.headers["etag"]
    if route == "changes":  # answered with the change's own state, read afresh
        assert again.json()["change_id"] == first.json()["change_id"]
        assert again.headers["location"] == first.headers["location"]
    else:
        assert again.json() == first.json()
    assert await recorded(api, case) == after_first

    # the same key with another body: refused, nothing sent
    other = await send(api, case, case.caller, case.other_body, key)
    assert other.status_code == 422, other.text
    assert other.headers["content-type"] == PROBLEM
    assert other.json()["type"] == REUSED
    assert await recorded(api, case) == after_first

    # another caller's same key is that caller's own request: never the first answer, never
    # "reused"
    theirs = await send(api, case, case.other_caller, case.body, key)
    assert theirs.status_code not in (422, 500), theirs.text
    assert theirs.json() != first.json()


async def test_reopen_is_bound_to_its_first_request(expiring_api: httpx.AsyncClient) -> None:
    api = expiring_api
    uc = await stalled(api)
    run = f"/v1/use-cases/{uc['id']}"
    case = Case(
        run, f"{run}/gates/risk_signoff/reopen", {"reason": "again"}, {"reason": "other"},
        "dana", "tom", 200,
    )  # fmt: skip
    key = f"k-{uuid.uuid4().hex[:8]}"
    first = await send(api, case, "dana", case.body, key)
    assert first.status_code == 200, first.text
    assert first.headers["etag"] == etag_of(first.json())
    again = await send(api, case, "dana", case.body, key)
    assert (again.status_code, again.json()) == (200, first.json())
    other = await send(api, case, "dana", case.other_body, key)
    assert (other.status_code, other.json()["type"]) == (422, REUSED)
    theirs = await send(api, case, "tom", case.body, key)
    assert theirs.status_code == 403, theirs.text  # tom's own answer: not the delivery lead


async def test_start_is_keyed_by_its_use_case_key(api: httpx.AsyncClient) -> None:
    """``POST /v1/use-cases`` is idempotent by the use case's key: the same body again is the
    same run (200), another body under that key 409, whatever Idempotency-Key is sent; another
    caller never gets this caller's run."""
    body = new_body()
    headers = {**auth("dana"), "Idempotency-Key": "start-1"}
    first = await api.post("/v1/use-cases", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert first.headers["etag"] == etag_of(first.json())
    again = await api.post("/v1/use-cases", json=body, headers=headers)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["etag"] == first.headers["etag"]
    other = await api.post("/v1/use-cases", json={**body, "title": "Else"}, headers=headers)
    assert other.status_code == 409, other.text
    theirs = await api.post(
        "/v1/use-cases", json=body, headers={**auth("priya"), "Idempotency-Key": "start-1"}
    )
    assert theirs.status_code == 409, theirs.text  # another delivery lead: another definition


async def test_one_key_races_two_bodies_and_exactly_one_is_sent(api: httpx.AsyncClient) -> None:
    run = await scoping_run(api)
    headers = {**auth("dana"), "Idempotency-Key": f"race-{uuid.uuid4().hex[:8]}"}
    answers = await asyncio.gather(
        *(
            api.post(f"{run}/evidence", json={"evidence": [ev("design_doc")]}, headers=headers)
            for _ in range(6)
        )
    )
    # each body is another (fresh evidence digests): one binds the key and is sent
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [422] * 5, [a.text for a in answers]
    assert all(a.json()["type"] == REUSED for a in answers if a.status_code == 422)
    state = (await api.get(run, headers=auth("eve"))).json()
    assert len(state["evidence"]) == 1


async def test_the_run_named_by_key_or_id_is_one_request(api: httpx.AsyncClient) -> None:
    uc = await create(api, "low")
    headers = {**auth("dana"), "Idempotency-Key": "by-either-name"}
    body = {"evidence": [ev("design_doc")]}
    first = await api.post(f"/v1/use-cases/{uc['id']}/evidence", json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = await api.post(f"/v1/use-cases/{uc['key']}/evidence", json=body, headers=headers)
    assert (again.status_code, again.json()) == (201, first.json())
    # another run is another request: the key is the caller's, whichever run it names
    elsewhere = await create(api, "low")
    r = await api.post(f"/v1/use-cases/{elsewhere['id']}/evidence", json=body, headers=headers)
    assert (r.status_code, r.json()["type"]) == (422, REUSED)


# ----------------------------------------------------------------------------- routes added later
# break-glass, governed exceptions and the running bundle: each bound to its first request too

WHY = "payments outage: the fraud model must ship tonight, COO approved by phone"


async def test_override_is_bound_to_its_first_request(expiring_api: httpx.AsyncClient) -> None:
    api = expiring_api
    uc = await stalled(api)
    run = f"/v1/use-cases/{uc['id']}"
    case = Case(
        run, f"{run}/gates/risk_signoff/override", {"justification": WHY},
        {"justification": f"{WHY}, again"}, "eve", "bo", 200,
    )  # fmt: skip
    key = f"k-{uuid.uuid4().hex[:8]}"
    first = await send(api, case, "eve", case.body, key)
    assert first.status_code == 200, first.text
    assert first.headers["etag"] == etag_of(first.json())
    after_first = await recorded(api, case)
    again = await send(api, case, "eve", case.body, key)
    assert (again.status_code, again.json()) == (200, first.json())
    other = await send(api, case, "eve", case.other_body, key)
    assert (other.status_code, other.json()["type"]) == (422, REUSED)
    assert await recorded(api, case) == after_first
    theirs = await send(api, case, "bo", case.body, key)
    assert theirs.status_code == 403, theirs.text  # bo's own answer: not in the break-glass group


async def test_waiver_request_and_decision_are_bound_to_their_first_request(
    api: httpx.AsyncClient,
) -> None:
    from tests.waivers.test_http import body as waiver_body

    uc = await create(api, "medium")
    await walk(api, uc, "risk_signoff")
    run = f"/v1/use-cases/{uc['id']}"
    ask = Case(
        run, f"{run}/waivers", waiver_body(), waiver_body(justification=f"{WHY}, and more"),
        "dana", "tom", 201,
    )  # fmt: skip
    key = f"k-{uuid.uuid4().hex[:8]}"
    first = await send(api, ask, "dana", ask.body, key)
    assert first.status_code == 201, first.text
    after_first = await recorded(api, ask)
    again = await send(api, ask, "dana", ask.body, key)
    assert (again.status_code, again.json()) == (201, first.json())
    other = await send(api, ask, "dana", ask.other_body, key)
    assert (other.status_code, other.json()["type"]) == (422, REUSED)
    assert await recorded(api, ask) == after_first
    theirs = await send(api, ask, "tom", ask.body, key)
    assert theirs.status_code not in (422, 500), theirs.text
    assert theirs.json() != first.json()

    waiver = first.json()["id"]
    grant = Case(
        run, f"{run}/waivers/{waiver}/decisions", {"decision": "grant"},
        {"decision": "grant", "comment": "fine"}, "raj", "bo", 200,
    )  # fmt: skip
    key = f"k-{uuid.uuid4().hex[:8]}"
    first = await send(api, grant, "raj", grant.body, key)
    assert first.status_code == 200, first.text
    after_first = await recorded(api, grant)
    again = await send(api, grant, "raj", grant.body, key)
    assert (again.status_code, again.json()) == (200, first.json())
    other = await send(api, grant, "raj", grant.other_body, key)
    assert (other.status_code, other.json()["type"]) == (422, REUSED)
    assert await recorded(api, grant) == after_first
    theirs = await send(api, grant, "bo", grant.body, key)  # bo's own seat
    assert theirs.status_code == 200, theirs.text
    assert theirs.json() != first.json()
    assert [a["actor"] for a in theirs.json()["approvals"]] == ["raj", "bo"]


async def test_a_runtime_report_is_bound_to_its_first_request(api: httpx.AsyncClient) -> None:
    from tests.signals.test_bundles import BUNDLE, replaced

    r = await api.post("/v1/use-cases", json=new_body("low", bundle=BUNDLE), headers=auth("dana"))
    assert r.status_code == 201, r.text
    uc = await walk(api, r.json(), "live")
    run = f"/v1/use-cases/{uc['id']}"
    case = Case(
        run, f"{run}/runtime", {"bundle": BUNDLE}, {"bundle": replaced("prompt", "other")},
        "tom", "olga", 200,
    )  # fmt: skip
    key = f"k-{uuid.uuid4().hex[:8]}"
    first = await send(api, case, "tom", case.body, key)
    assert first.status_code == 200, first.text
    assert first.headers["etag"]  # of the evidence and the bundle (etag_of knows no bundle)
    after_first = await recorded(api, case)
    again = await send(api, case, "tom", case.body, key)
    assert (again.status_code, again.json()) == (200, first.json())
    assert await recorded(api, case) == after_first
    # another bundle under the same key: refused, and no unauthorized_change incident
    other = await send(api, case, "tom", case.other_body, key)
    assert (other.status_code, other.json()["type"]) == (422, REUSED)
    assert await recorded(api, case) == after_first
    # olga's same key is hers: never "reused", and her other bundle is judged on its merits
    theirs = await send(api, case, "olga", case.other_body, key)
    assert theirs.status_code == 200, theirs.text
    assert theirs.json()["runtime"]["matches"] is False
    assert await recorded(api, case) > after_first
