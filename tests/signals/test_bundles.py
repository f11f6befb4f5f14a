"""What runs is what was approved, through the real API, worker and dev server: a release's
bundle bound into every approval, sent with the deploy hook, changed only by a change request
as material as the policy says, and a running bundle other than the approved one opening an
``unauthorized_change`` incident that suspends (the rollback hook called once)."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import httpx

from tests.api.conftest import auth, seen
from tests.api.test_use_cases import new_body, walk
from tests.signals.conftest import DEPLOY_TOKEN
from tests.workflows.test_live import HookReceiver

DEPLOY = {"Authorization": f"Bearer {DEPLOY_TOKEN}"}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


BUNDLE = [
    {"name": "model", "sha256": sha("claims-llm@2026-10-01")},
    {"name": "prompt", "sha256": sha("You triage insurance claims…")},
    {"name": "config", "sha256": sha("temperature: 0.1")},
    {"name": "code", "sha256": sha("git:5f1c2e7")},
]


def digest_of(bundle: list[dict[str, str]]) -> str:
    lines = "".join(f"{a['name']}:{a['sha256']}\n" for a in sorted(bundle, key=lambda a: a["name"]))
    return sha(lines)


def replaced(name: str, content: str) -> list[dict[str, str]]:
    return [
        {"name": a["name"], "sha256": sha(content) if a["name"] == name else a["sha256"]}
        for a in BUNDLE
    ]


async def start(
    api: httpx.AsyncClient, tier: str, receiver: HookReceiver, bundle: list[dict[str, str]]
) -> dict[str, Any]:
    hooks = receiver.hooks()
    body = new_body(
        tier,
        bundle=bundle,
        hooks={"deploy_url": hooks.deploy_url, "rollback_url": hooks.rollback_url},
    )
    r = await api.post("/v1/use-cases", json=body, headers=auth("dana"))
    assert r.status_code == 201, r.text
    return dict(r.json())


async def hook_calls(receiver: HookReceiver, path: str, wid: str, count: int) -> list[Any]:
    for _ in range(100):
        calls = [c for c in receiver.calls if c["path"] == path and c["body"]["workflow_id"] == wid]
        if len(calls) >= count:
            return calls
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} for {wid}: {len(calls)} calls, expected {count}")


async def test_approvals_bind_to_the_bundle_and_the_deploy_hook_sends_it(
    sapi: httpx.AsyncClient, receiver: HookReceiver
) -> None:
    uc = await start(sapi, "low", receiver, BUNDLE)
    bundle_digest = digest_of(BUNDLE)
    state = await walk(sapi, uc, "risk_signoff")
    gate = state["open_gate"]
    assert bundle_digest in gate["evidence_digests"]
    assert state["bundle_digest"] == bundle_digest
    # an approval that names the evidence but not the bundle it saw binds to nothing
    evidence_only = [d for d in gate["evidence_digests"] if d != bundle_digest]
    r = await sapi.post(
        f"/v1/use-cases/{uc['id']}/gates/risk_signoff/decisions",
        json={"decision": "approve", "evidence_digests": evidence_only},
        headers=auth("rita"),
    )
    assert r.status_code == 409, r.text
    assert r.json()["type"].endswith("evidence-changed")
    state = await walk(sapi, state, "live")
    history = (await sapi.get(f"/v1/use-cases/{uc['id']}/history", headers=auth("eve"))).json()
    assert [e["kind"] for e in history].count("decision") == 3
    (deploy,) = await hook_calls(receiver, "/deploy", uc["id"], 1)
    assert deploy["signed"]
    assert deploy["body"]["bundle_digest"] == bundle_digest
    assert deploy["body"]["bundle"] == sorted(BUNDLE, key=lambda a: a["name"])
    ledger = (await sapi.get(f"/v1/use-cases/{uc['id']}/ledger", headers=auth("eve"))).json()
    decisions = [e for e in ledger if e["kind"] == "decision"]
    assert decisions
    assert all(bundle_digest in e["payload"]["evidence_digests"] for e in decisions)


async def test_a_running_bundle_other_than_the_approved_suspends_once(
    sapi: httpx.AsyncClient, receiver: HookReceiver
) -> None:
    uc = await start(sapi, "high", receiver, BUNDLE)
    await walk(sapi, uc, "live")
    runtime = f"/v1/use-cases/{uc['id']}/runtime"
    # the deployment reports what it runs: the approved bundle, twice
    for _ in range(2):
        r = await sapi.post(runtime, json={"bundle": BUNDLE}, headers=DEPLOY)
        assert r.status_code == 200, r.text
    state = r.json()
    assert state["runtime"]["matches"] is True
    assert state["runtime"]["by"] == "signal:deploy"
    assert state["incident_count"] == 0
    # someone hot-swapped the model: not what was approved
    swapped = replaced("model", "claims-llm@2026-11-20-unreviewed")
    for client_headers in (DEPLOY, DEPLOY, auth("olga")):
        r = await sapi.post(runtime, json={"bundle": swapped}, headers=client_headers)
        assert r.status_code == 200, r.text
    state = r.json()
    assert state["stage"] == "suspended"
    (incident,) = state["incidents"]
    assert incident["kind"] == "unauthorized_change"
    assert incident["severity"] == "sev1"  # the policy's default for the high tier
    assert incident["suspended"] is True
    assert state["runtime"] == {**state["runtime"], "matches": False}
    await asyncio.sleep(0.5)  # room for a second rollback, were one (wrongly) queued
    rollbacks = await hook_calls(receiver, "/rollback", uc["id"], 1)
    assert len(rollbacks) == 1
    history = (await sapi.get(f"/v1/use-cases/{uc['id']}/history", headers=auth("eve"))).json()
    reported = [e for e in history if e["kind"] == "runtime_reported"]
    assert len(reported) == 2  # the match, then the mismatch: repeats change nothing

    # who may report: a source, the technical or operations owner; nobody else
    r = await sapi.post(runtime, json={"bundle": BUNDLE}, headers=auth("rita"))
    assert r.status_code == 403, r.text
    r = await sapi.post(runtime, json={"bundle": []}, headers=DEPLOY)
    assert r.status_code == 422, r.text
    r = await sapi.post(runtime, json={"bundle": [BUNDLE[0], BUNDLE[0]]}, headers=DEPLOY)
    assert r.status_code == 422, r.text


async def test_a_bundle_change_is_a_change_request_as_material_as_its_artifacts(
    sapi: httpx.AsyncClient, receiver: HookReceiver
) -> None:
    uc = await start(sapi, "low", receiver, BUNDLE)
    await walk(sapi, uc, "live")
    changes = f"/v1/use-cases/{uc['id']}/changes"
    new_model = replaced("model", "claims-llm@2026-12-01")
    r = await sapi.post(
        changes,
        json={"summary": "new model", "materiality": "minor", "bundle": new_model},
        headers=auth("dana"),
    )
    assert r.status_code == 422, r.text
    assert "model" in r.json()["detail"]

    new_config = replaced("config", "temperature: 0.0")
    r = await sapi.post(
        changes,
        json={"summary": "lower temperature", "materiality": "minor", "bundle": new_config},
        headers=auth("dana"),
    )
    assert r.status_code == 201, r.text
    change = r.json()
    assert change["open_gate"]["gate"] == "change_approval"
    assert digest_of(new_config) in change["open_gate"]["evidence_digests"]
    assert digest_of(BUNDLE) not in change["open_gate"]["evidence_digests"]
    path = r.headers["location"]
    r = await sapi.post(
        f"{path}/gates/change_approval/decisions",
        json={"decision": "approve"},
        headers={**auth("tom"), **await seen(sapi, path, "tom")},
    )
    assert r.status_code == 200, r.text
    for _ in range(100):
        state = (await sapi.get(f"/v1/use-cases/{uc['id']}", headers=auth("eve"))).json()
        if state["live_version"] == 2:
            break
        await asyncio.sleep(0.05)
    assert state["bundle_digest"] == digest_of(new_config)
    deploys = await hook_calls(receiver, "/deploy", uc["id"], 2)
    assert deploys[-1]["body"]["bundle_digest"] == digest_of(new_config)

    # the old bundle still running is now the unauthorized one (low tier: sev2, no suspend)
    r = await sapi.post(
        f"/v1/use-cases/{uc['id']}/runtime", json={"bundle": BUNDLE}, headers=DEPLOY
    )
    assert r.status_code == 200, r.text
    state = r.json()
    assert state["stage"] == "live"
    assert state["incidents"][-1]["kind"] == "unauthorized_change"
    assert state["incidents"][-1]["severity"] == "sev2"
    # once the approved bundle runs, the mismatch's incident is resolved
    r = await sapi.post(
        f"/v1/use-cases/{uc['id']}/runtime", json={"bundle": new_config}, headers=DEPLOY
    )
    assert r.status_code == 200, r.text
    assert r.json()["incidents"][-1]["resolved_at"] is not None
    assert r.json()["open_alerts"] == 0


async def test_a_use_case_without_a_bundle_has_nothing_to_compare(
    sapi: httpx.AsyncClient,
) -> None:
    r = await sapi.post("/v1/use-cases", json=new_body("low"), headers=auth("dana"))
    uc = await walk(sapi, r.json(), "live")
    assert uc["bundle"] is None
    r = await sapi.post(
        f"/v1/use-cases/{uc['id']}/runtime", json={"bundle": BUNDLE}, headers=DEPLOY
    )
    assert r.status_code == 409, r.text
