"""Upgrade: a data directory from the previous version, started with the current `make run`,
carries its in-flight runs to `live` (issue "One state, one command layer", Compatibility).

``fixtures/previous_data_dir.tar.gz`` holds ``temporal.db`` and ``releasegate.db`` of a stack
launched from the previous commit (``fixtures/previous_data_dir.json`` names it) and stopped with
Ctrl-C; ``tests/e2e/make_previous_data_dir.py`` made both. The current launcher starts on the
unpacked directory exactly as the other end-to-end tests start it (``Stack``, whose task queue
the old runs were made on); every run must be found where it stood, then the HTTP calls the
manifest lists take it to ``live``, and its ledger still verifies.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.stack import Stack, call

FIXTURES = Path(__file__).parent / "fixtures"
TARBALL = FIXTURES / "previous_data_dir.tar.gz"
MANIFEST = json.loads((FIXTURES / "previous_data_dir.json").read_text())
RUNS: list[dict[str, Any]] = MANIFEST["runs"]
SETTLE_S = 60  # a change reaches its parent by signal: the parent's live_version follows


@pytest.fixture(scope="module")
def upgraded() -> Iterator[Stack]:
    """The current stack on the previous version's data directory."""
    data_dir = Path(tempfile.mkdtemp(prefix="releasegate-upgrade-"))
    with tarfile.open(TARBALL) as tar:
        tar.extractall(data_dir, filter="data")
    assert sorted(p.name for p in data_dir.iterdir()) == sorted(MANIFEST["files"])
    s = Stack(data_dir)
    s.start()
    try:
        yield s
    finally:
        if s.process is not None:
            s.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def client_for(stack: Stack) -> httpx.Client:
    return httpx.Client(base_url=stack.api, timeout=30)


def expired(at: dict[str, Any]) -> bool:
    """The run's open gate had an expiry, and it has passed since the fixture was made."""
    gate = at["open_gate"]
    if gate is None or gate["expires_at"] is None:
        return False
    expires = datetime.fromisoformat(gate["expires_at"].replace("Z", "+00:00"))
    return expires <= datetime.now(UTC)


def assert_stands_where_it_stood(view: dict[str, Any], at: dict[str, Any]) -> None:
    assert view["closed"] is at["closed"]
    assert view["round"] == at["round"]
    assert view["live_version"] == at["live_version"]
    assert sorted(e["kind"] for e in view["evidence"]) == at["evidence_kinds"]
    assert [(c["change_id"], c["workflow_id"], c["status"]) for c in view["changes"]] == [
        (c["change_id"], c["workflow_id"], c["status"]) for c in at["changes"]
    ]
    if view["stage"] == "stalled" and expired(at):
        # the fixture outlived the gate's expiry: the run waits for the delivery lead
        assert view["stalled_gate"] == at["open_gate"]["gate"]
        return
    assert view["stage"] == at["stage"]
    gate, want = view["open_gate"], at["open_gate"]
    if want is None:
        assert gate is None
        return
    assert gate is not None
    assert gate["gate"] == want["gate"]
    assert gate["quorum"] == want["quorum"]
    assert gate["eligible"] == want["eligible"]
    assert [a["actor"] for a in gate["approvals"]] == want["approvals"]
    assert gate["required_evidence"] == want["required_evidence"]


def seen(client: httpx.Client, step: dict[str, Any]) -> dict[str, str]:
    """For an approval: ``If-Match`` with the ETag of the run's state as its approver reads
    it now. The manifest's steps come from the previous version, whose approvals named no
    evidence; this version wants them to name what was reviewed (README: migration notes)."""
    body = step["body"] or {}
    run, sep, _ = step["path"].partition("/gates/")
    if not sep or body.get("decision") != "approve" or "evidence_digests" in body:
        return {}
    r = client.get(run, headers={"Authorization": f"Bearer {step['token']}"})
    assert r.status_code == 200, f"GET {run}: {r.status_code} {r.text}"
    return {"If-Match": r.headers["etag"]}


def perform(client: httpx.Client, step: dict[str, Any]) -> dict[str, Any]:
    r = client.request(
        step["method"],
        step["path"],
        headers={"Authorization": f"Bearer {step['token']}", **seen(client, step)},
        json=step["body"],
    )
    assert r.status_code in (200, 201), f"{step['method']} {step['path']}: {r.status_code} {r.text}"
    view: dict[str, Any] = r.json()
    for field, want in step.get("expect", {}).items():
        assert view[field] == want, f"{step['method']} {step['path']}: {field}"
    return view


def settled(client: httpx.Client, run: dict[str, Any]) -> dict[str, Any]:
    """The run's view once it shows ``final`` (or the last view seen, to fail on)."""
    final = run["final"]
    deadline = time.monotonic() + SETTLE_S
    while True:
        view: dict[str, Any] = call(client, "GET", f"/v1/use-cases/{run['workflow_id']}", "eve")
        statuses = {c["change_id"]: c["status"] for c in view["changes"]}
        done = (
            view["stage"] == final["stage"]
            and view["live_version"] == final["live_version"]
            and (
                "change_status" not in final
                or statuses.get(run["change"]["change_id"]) == final["change_status"]
            )
        )
        if done or time.monotonic() > deadline:
            return view
        time.sleep(0.5)


def verify_ledger(client: httpx.Client, workflow_id: str, at_least: int) -> None:
    result = call(client, "GET", f"/v1/use-cases/{workflow_id}/ledger/verify", "eve")
    assert result["ok"] is True, result
    assert result["entries"] > at_least, result


def test_manifest_is_the_previous_version() -> None:
    assert MANIFEST["commit"]
    assert MANIFEST["task_queue"] == "e2e"  # what Stack sets: the old runs are bound to it
    assert {r["tier"] for r in RUNS} == {"low", "medium", "high"}
    assert all(r["final"]["stage"] == "live" for r in RUNS)


def test_read_model_survives(upgraded: Stack) -> None:
    """Before anything moves: the listing and the approvers' inboxes (the read model in
    releasegate.db) show every run as it stood."""
    with client_for(upgraded) as client:
        listed = call(client, "GET", "/v1/use-cases", "eve", params={"limit": 200})["items"]
        stages = {item["id"]: item["stage"] for item in listed}
        for run in RUNS:
            at = run["at"]
            assert stages.get(run["workflow_id"]) in (at["stage"], "stalled"), run["name"]
            if "change" in run:
                change = run["change"]
                assert stages.get(change["workflow_id"]) == change["at"]["stage"]
            gate = at["open_gate"]
            if gate is None or expired(at):
                continue
            for person in sorted(set(gate["eligible"]) - set(gate["approvals"])):
                inbox = call(client, "GET", "/v1/approvals/pending", person)["items"]
                assert run["workflow_id"] in {i["id"] for i in inbox}, (run["name"], person)


@pytest.mark.parametrize("run", RUNS, ids=[r["name"] for r in RUNS])
def test_in_flight_run_reaches_live(upgraded: Stack, run: dict[str, Any]) -> None:
    uc = run["workflow_id"]
    with client_for(upgraded) as client:
        view = call(client, "GET", f"/v1/use-cases/{uc}", "eve")
        assert view["risk_tier"] == run["tier"]
        assert_stands_where_it_stood(view, run["at"])
        steps = run["steps"]
        if view["stage"] == "stalled":
            steps = run["steps_if_stalled"]
        change = run.get("change")
        if change is not None:
            change_view = call(
                client, "GET", f"/v1/use-cases/{uc}/changes/{change['change_id']}", "eve"
            )
            assert change_view["id"] == change["workflow_id"]
            assert_stands_where_it_stood(change_view, change["at"])

        for step in steps:
            perform(client, step)

        view = settled(client, run)
        assert view["stage"] == "live", view
        assert view["closed"] is False
        assert view["live_version"] == run["final"]["live_version"], view
        verify_ledger(client, uc, run["at"]["ledger_entries"])
        if change is not None:
            statuses = {c["change_id"]: c["status"] for c in view["changes"]}
            assert statuses[change["change_id"]] == run["final"]["change_status"]
            change_view = call(
                client, "GET", f"/v1/use-cases/{uc}/changes/{change['change_id']}", "eve"
            )
            assert change_view["stage"] == "live"
            assert change_view["outcome"] == "applied"
            verify_ledger(client, change["workflow_id"], change["at"]["ledger_entries"])
