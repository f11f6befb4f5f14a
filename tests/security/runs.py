"""Driving runs over HTTP for the security tests: start, read, approve, walk to a stage.

An approval names the evidence its approver saw (``evidence_digests`` of the open gate), as the
contract asks of every approval.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx

from tests.api.conftest import auth
from tests.api.test_use_cases import OWNERS
from tests.workflows.helpers import GATE_APPROVERS, GATE_EVIDENCE, STAGE_EVIDENCE, evidence

PROBLEM = "application/problem+json"
READER = "carla"  # a member of a policy reader group: reads every run

AtGate = Callable[[dict[str, Any]], Awaitable[None]]


def body(tier: str, **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "key": f"sec-{uuid.uuid4().hex[:10]}",
        "title": "Claims triage assistant",
        "summary": "Routes incoming claims to the right queue",
        "risk_tier": tier,
        "owners": dict(OWNERS),
    }
    doc.update(over)
    return doc


def ev(kind: str) -> dict[str, str]:
    return evidence(kind).model_dump()


async def start(api: httpx.AsyncClient, tier: str, **over: Any) -> dict[str, Any]:
    """A new run started by dana (its delivery lead)."""
    r = await api.post("/v1/use-cases", json=body(tier, **over), headers=auth("dana"))
    assert r.status_code == 201, r.text
    return dict(r.json())


async def state(api: httpx.AsyncClient, path: str) -> dict[str, Any]:
    """The state at ``path`` (``/v1/use-cases/<id>[/changes/<change id>]``)."""
    r = await api.get(path, headers=auth(READER))
    assert r.status_code == 200, r.text
    return dict(r.json())


def approval(gate_state: Mapping[str, Any]) -> dict[str, Any]:
    """An approval of what ``gate_state`` (a run's state with an open gate) shows."""
    return {"decision": "approve", "evidence_digests": gate_state["open_gate"]["evidence_digests"]}


async def approve(api: httpx.AsyncClient, path: str, gate: str, person: str) -> httpx.Response:
    """``person`` approves ``gate`` of the run at ``path`` on the evidence it shows now."""
    seen = await state(api, path)
    return await api.post(
        f"{path}/gates/{gate}/decisions", json=approval(seen), headers=auth(person)
    )


async def walk(
    api: httpx.AsyncClient,
    uc: Mapping[str, Any],
    until: str,
    *,
    approvers: Mapping[str, Sequence[str]] | None = None,
    at_gate: AtGate | None = None,
) -> dict[str, Any]:
    """Drive the use case ``uc`` to stage ``until``: dana completes work stages with their
    evidence, tom submits each gate's evidence, then ``approvers`` of that gate approve
    (``GATE_APPROVERS`` by default). ``at_gate`` sees each gate once its evidence is in."""
    tier = uc["risk_tier"]
    approvers = approvers or GATE_APPROVERS[tier]
    path = f"/v1/use-cases/{uc['id']}"
    current = dict(uc)
    while current["stage"] != until:
        stage = current["stage"]
        if current["open_gate"] is None:
            kinds = STAGE_EVIDENCE[tier].get(stage, [])
            r = await api.post(
                f"{path}/stages/{stage}/complete",
                json={"evidence": [ev(k) for k in kinds], "comment": f"{stage} done"},
                headers=auth("dana"),
            )
            assert r.status_code == 200, r.text
        else:
            kinds = GATE_EVIDENCE[tier].get(stage, [])
            if kinds:
                r = await api.post(
                    f"{path}/evidence",
                    json={"evidence": [ev(k) for k in kinds]},
                    headers=auth("tom"),
                )
                assert r.status_code == 201, r.text
            if at_gate is not None:
                await at_gate(await state(api, path))
            for person in approvers[stage]:
                r = await approve(api, path, stage, person)
                assert r.status_code == 200, (stage, person, r.text)
        current = dict(r.json())
    return current
