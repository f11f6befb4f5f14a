"""End to end: the stack started the way `make run` starts it, driven over HTTP alone.

A high-tier use case goes from POST to live; the stack is stopped with Ctrl-C (SIGINT) and
started again on the same data directory, and the run is found intact and still operable.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.e2e.stack import OWNERS, Stack, approve, call, evidence


def walk_high_tier_to_live(client: httpx.Client, uc: str) -> dict[str, Any]:
    call(client, "POST", f"/v1/use-cases/{uc}/stages/scoping/complete", "dana", json={})
    for person in ("bo", "rita"):
        state = approve(client, uc, "scope_approval", person)
    assert state["stage"] == "specification"
    for stage in ("specification", "implementation"):
        call(client, "POST", f"/v1/use-cases/{uc}/stages/{stage}/complete", "tom", json={})
    state = call(
        client,
        "POST",
        f"/v1/use-cases/{uc}/stages/validation/complete",
        "dana",
        json={"evidence": [evidence(k) for k in ("evaluation_report", "model_card", "dpia")]},
    )
    assert state["stage"] == "risk_signoff"
    assert state["required_evidence"] == ["risk_assessment"]
    call(
        client,
        "POST",
        f"/v1/use-cases/{uc}/evidence",
        "dana",
        json={"evidence": [evidence("risk_assessment")]},
    )
    for person in ("rita", "raj"):
        state = approve(client, uc, "risk_signoff", person)
    assert state["stage"] == "ops_handoff"
    call(
        client,
        "POST",
        f"/v1/use-cases/{uc}/evidence",
        "tom",
        json={"evidence": [evidence("runbook"), evidence("monitoring_plan")]},
    )
    state = approve(client, uc, "ops_handoff", "olga")
    assert state["stage"] == "go_live"
    for person in ("bo", "tom"):
        state = approve(client, uc, "go_live", person)
    return state


def test_high_tier_to_live_survives_restart(stack: Stack) -> None:
    assert "temporal" in stack.child_pids  # it started its own dev server
    key = f"e2e-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=stack.api, timeout=30) as client:
        state = call(
            client,
            "POST",
            "/v1/use-cases",
            "dana",
            json={
                "key": key,
                "title": "KYC onboarding assistant",
                "summary": "Drafts KYC onboarding decisions for analysts",
                "risk_tier": "high",
                "owners": OWNERS,
            },
        )
        uc = state["id"]
        state = walk_high_tier_to_live(client, uc)
        assert state["stage"] == "live"
        history_before = call(client, "GET", f"/v1/use-cases/{uc}/history", "eve")
        kinds = [e["kind"] for e in history_before]
        assert kinds.count("gate_passed") == 4, kinds  # scope, risk, ops, go-live

    assert stack.stop() == 0, stack.output.read_text()
    assert stack.leftovers() == []
    assert "stopped." in stack.output.read_text()

    stack.start()
    with httpx.Client(base_url=stack.api, timeout=30) as client:
        state = call(client, "GET", f"/v1/use-cases/{uc}", "eve")
        assert state["stage"] == "live"
        assert state["closed"] is False
        assert state["live_version"] == 1
        assert call(client, "GET", f"/v1/use-cases/{uc}/history", "eve") == history_before
        # able to continue: the live run still takes commands
        state = call(
            client,
            "POST",
            f"/v1/use-cases/{uc}/incidents",
            "olga",
            json={"severity": "sev3", "summary": "after restart"},
        )
        assert [i["summary"] for i in state["incidents"]] == ["after restart"]
