"""The ``releasegate`` CLI end to end against a running stack (see conftest.py).

A low-tier use case goes from start to live, through live operation to retirement, by CLI
invocations alone; a high-tier one exercises ``--wait`` on a quorum gate. Every exit code the
CLI documents is provoked, and no error ever prints a traceback.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.api.test_use_cases import OWNERS, walk
from tests.cli.conftest import Cli, Result


def new_key(prefix: str = "cli") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def ok(result: Result) -> Result:
    assert result.code == 0, f"exit {result.code}\nstdout: {result.out}\nstderr: {result.err}"
    assert "Traceback" not in result.err
    return result


def failed(result: Result, code: int) -> str:
    assert result.code == code, f"exit {result.code}\nstdout: {result.out}\nstderr: {result.err}"
    assert "Traceback" not in result.err + result.out
    return result.err


async def decisions_in_ledger(cli: Cli, key: str) -> list[dict[str, Any]]:
    """The payloads of the use case's decisions, as its ledger recorded them."""
    async with httpx.AsyncClient(base_url=cli.url, timeout=30) as api:
        for _ in range(100):  # the ledger follows the run
            r = await api.get(
                f"/v1/use-cases/{key}/ledger", headers={"Authorization": "Bearer dev-eve"}
            )
            decided = [e["payload"] for e in r.json() if e["kind"] == "decision"]
            if decided:
                return decided
            await asyncio.sleep(0.1)
    raise AssertionError(f"no decision of {key} reached the ledger")


def artifact(tmp_path: Path, name: str, content: str) -> tuple[Path, str]:
    path = tmp_path / name
    path.write_text(content)
    return path, hashlib.sha256(content.encode()).hexdigest()


async def test_low_tier_use_case_walked_to_live_and_retired_by_cli(
    cli: Cli, tmp_path: Path
) -> None:
    key = new_key("low")
    spec = tmp_path / "use-case.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "key": key,
                "title": "Claims triage assistant",
                "summary": "Routes incoming claims",
                "tier": "low",
                "owners": OWNERS,
            }
        )
    )
    state = ok(await cli("start", "--file", str(spec), "--json")).json()
    assert (state["key"], state["stage"], state["owners"]["delivery_lead"]) == (
        key,
        "scoping",
        "dana",
    )

    state = ok(await cli("complete", key, "scoping", "-m", "scoped", "--json")).json()
    assert state["stage"] == "specification"
    human = ok(await cli("complete", key, "specification"))
    assert "implementation" in human.out
    ok(await cli("complete", key, "implementation"))

    report_file, digest = artifact(tmp_path, "eval.md", "precision 0.94, recall 0.91\n")
    state = ok(
        await cli(
            "complete",
            key,
            "validation",
            "--evidence-file",
            f"evaluation_report={report_file}",
            "--wait",
            "--json",
        )
    ).json()
    assert state["stage"] == "risk_signoff"
    [item] = [e for e in state["evidence"] if e["kind"] == "evaluation_report"]
    assert item["sha256"] == digest
    assert item["uri"] == report_file.resolve().as_uri()
    assert item["name"] == "eval.md"

    inbox = ok(await cli("pending", "--json", person="rita")).json()
    assert [(i["key"], i["gate"]) for i in inbox["items"] if i["key"] == key] == [
        (key, "risk_signoff")
    ]
    assert key in ok(await cli("pending", person="rita")).out

    approve = ("decide", key, "risk_signoff", "approve", "-m", "ok", "--idempotency-key")
    approved = ok(await cli(*approve, f"{key}-rita", "--json", person="rita"))
    state = approved.json()
    assert state["stage"] == "ops_handoff"
    # the approval showed what it binds to, and bound to exactly that
    for shown in ("evaluation_report", "eval.md", digest[:12]):
        assert shown in approved.err
    [risk] = [d for d in await decisions_in_ledger(cli, key) if d["gate"] == "risk_signoff"]
    assert risk["evidence_digests"] == [digest]
    # the same idempotency key again is the same decision, not a second one (or a refusal)
    again = ok(await cli(*approve, f"{key}-rita", "--json", person="rita")).json()
    assert again["stage"] == "ops_handoff"

    state = ok(
        await cli("decide", key, "ops_handoff", "approve", "--wait", "--json", person="olga")
    )
    assert state.json()["stage"] == "go_live"
    state = ok(await cli("decide", key, "go-live", "approve", "--json", person="bo")).json()
    assert state["stage"] == "live"

    status = ok(await cli("status", key, "--json", person="eve")).json()
    assert (status["stage"], status["closed"], status["open_gate"]) == ("live", False, None)
    assert "live" in ok(await cli("status", f"usecase-{key}", person="eve")).out

    events = ok(await cli("history", key, "--json", person="eve")).json()
    decisions = [(e["actor"], e["gate"], e["decision"]) for e in events if e["kind"] == "decision"]
    assert decisions == [
        ("rita", "risk_signoff", "approve"),
        ("olga", "ops_handoff", "approve"),
        ("bo", "go_live", "approve"),
    ]
    table = ok(await cli("history", key, person="eve")).out
    assert "risk_signoff" in table
    assert "stage_entered" in table

    listed = ok(await cli("list", "--json", "--stage", "live", person="eve")).json()
    assert key in [i["key"] for i in listed["items"]]

    # live operation
    state = ok(
        await cli(
            "incident", key, "--severity", "sev3", "--summary", "slow answers", "--json",
            person="olga",
        )
    ).json()  # fmt: skip
    assert [i["severity"] for i in state["incidents"]] == ["sev3"]
    change = ok(
        await cli("change", key, "--summary", "prompt tweak", "--materiality", "minor", "--json")
    ).json()
    assert (change["stage"], change["change"]["change_id"]) == ("change_approval", "change-1")
    state = ok(await cli("suspend", key, "--reason", "bad answers", "--json", person="bo")).json()
    assert state["stage"] == "suspended"
    state = ok(await cli("resume", key, "-m", "fixed", "--json", person="tom")).json()
    assert state["open_gate"]["gate"] == "resume_approval"
    ok(await cli("decide", key, "resume_approval", "approve", person="rita"))
    state = ok(await cli("decide", key, "resume_approval", "approve", "--json", person="bo")).json()
    assert (state["stage"], state["open_gate"]) == ("live", None)
    state = ok(await cli("retire", key, "--reason", "replaced", "--json", person="bo")).json()
    assert (state["stage"], state["closed"]) == ("retired", True)

    # audit
    verdict = ok(await cli("audit", "verify", key, "--json", person="eve")).json()
    assert verdict["ok"] is True
    assert verdict["entries"] > 10
    assert "intact" in ok(await cli("audit", "verify", key, person="eve")).out
    pack_file = tmp_path / "pack.json"
    done = ok(await cli("audit", "export", "--use-case", key, "--out", str(pack_file)))
    assert "intact" in done.err
    pack = json.loads(pack_file.read_text())
    assert pack["use_case"]["key"] == key
    assert {d["gate"] for d in pack["decisions"]} >= {"risk_signoff", "ops_handoff", "go_live"}


async def test_flow_metrics_and_report_from_the_cli(cli: Cli, tmp_path: Path) -> None:
    key = new_key("flow")
    ok(
        await cli(
            "start", "--key", key, "--title", "Flow sample", "--tier", "low",
            "--business-owner", "bo", "--technical-owner", "tom", "--operations-owner", "olga",
            "--risk-approver", "group:risk-committee", "--escalation-owner", "eve",
        )
    )  # fmt: skip
    ok(await cli("cancel", key, "-m", "not needed", person="bo"))

    data = ok(await cli("metrics", "--json", person="eve")).json()
    assert data["runs"] >= 1
    assert {"lead_time_hours", "stages", "gates", "rates", "by_tier", "approvers"} <= set(data)
    low = ok(await cli("metrics", "--tier", "low", "--since", "2020-01-01", "--json")).json()
    assert (low["tier"], low["since"]) == ("low", "2020-01-01T00:00:00Z")
    human = ok(await cli("metrics", person="eve")).out
    assert "Flow metrics" in human
    assert "Gate waits" in human

    out = tmp_path / "report.html"
    done = ok(await cli("report", "--out", str(out), person="eve"))
    assert "wrote" in done.err
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "data-chart='stage-durations'" in page
    assert key in page
    for fetches in ("<script", "<link", "src=", "href=", "url(", "@import"):
        assert fetches not in page  # self-contained: nothing to load from anywhere

    failed(await cli("metrics", "--since", "yesterday"), 3)  # the API's 422
    failed(await cli("metrics", "--tier", "extreme"), 2)


async def test_wait_follows_a_quorum_gate(cli: Cli, api_url: str, tmp_path: Path) -> None:
    """High tier: risk_signoff needs two risk approvers, go_live the business and technical
    owners. ``--wait`` returns when the other approver moves the run on, and gives up with
    exit code 6 when nobody does."""
    body = {"key": new_key("high"), "title": "KYC assistant", "risk_tier": "high", "owners": OWNERS}
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as api:
        r = await api.post("/v1/use-cases", json=body, headers={"Authorization": "Bearer dev-dana"})
        assert r.status_code == 201, r.text
        await walk(api, r.json(), "risk_signoff")
        key = body["key"]

        assessment, _ = artifact(tmp_path, "risk.md", "residual risk: low\n")
        ok(await cli("evidence", key, "--kind", "risk_assessment", "--file", str(assessment)))

        rita = await cli.spawn(
            "decide", key, "risk_signoff", "approve", "--wait", "--wait-timeout", "60",
            "--poll-interval", "0.2", "--json", person="rita",
        )  # fmt: skip
        for _ in range(300):
            state = (
                await api.get(f"/v1/use-cases/{key}", headers={"Authorization": "Bearer dev-eve"})
            ).json()
            if [a["actor"] for a in (state["open_gate"] or {}).get("approvals", [])] == ["rita"]:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"rita's approval never landed: {state}")
        assert rita.returncode is None  # still waiting for a second risk approver
        ok(await cli("decide", key, "risk_signoff", "approve", person="raj"))
        assert ok(await cli.finish(rita)).json()["stage"] == "ops_handoff"

    _, digest = artifact(tmp_path, "runbook.md", "restart the pod\n")
    ok(
        await cli(
            "evidence", key, "--kind", "runbook", "--uri", "https://wiki.example.com/runbook",
            "--sha256", digest, person="tom",
        )
    )  # fmt: skip
    plan, _ = artifact(tmp_path, "monitoring.md", "alert on drift\n")
    ok(await cli("evidence", key, "--kind", "monitoring_plan", "--file", str(plan), person="tom"))
    ok(await cli("decide", key, "ops_handoff", "approve", person="olga"))

    gave_up = await cli(
        "decide", key, "go_live", "approve", "--wait", "--wait-timeout", "0.5",
        "--poll-interval", "0.1", person="bo",
    )  # fmt: skip
    assert "gave up waiting" in failed(gave_up, 6)
    state = ok(await cli("decide", key, "go_live", "approve", "--wait", "--json", person="tom"))
    assert state.json()["stage"] == "live"


async def test_exit_codes(cli: Cli, tmp_path: Path) -> None:
    key = new_key("codes")
    ok(
        await cli(
            "start", "--key", key, "--title", "Exit codes", "--tier", "low",
            "--business-owner", "bo", "--technical-owner", "tom", "--operations-owner", "olga",
            "--risk-approver", "rita", "--escalation-owner", "eve", "--json",
        )
    )  # fmt: skip
    evaluation, _ = artifact(tmp_path, "eval.md", "fine\n")
    for stage in ("scoping", "specification", "implementation"):
        ok(await cli("complete", key, stage))
    ok(
        await cli(
            "complete", key, "validation", "--evidence-file", f"evaluation_report={evaluation}"
        )
    )

    # 2: usage — bad arguments, files and configuration
    failed(await cli("decide", key), 2)
    failed(await cli("decide", key, "risk_signoff", "maybe"), 2)
    failed(await cli("decide", key, "no_such_gate", "approve"), 2)
    failed(await cli("frobnicate"), 2)
    assert "give --file" in failed(await cli("evidence", key, "--kind", "runbook"), 2)
    missing = tmp_path / "nope.pdf"
    assert "does not exist" in failed(
        await cli("complete", key, "validation", "--evidence-file", f"dpia={missing}"), 2
    )
    failed(await cli("complete", key, "validation", "--evidence-file", "no-equals-sign"), 2)
    assert "no token" in failed(await cli("status", key, person=None), 2)
    assert "check your token" in failed(await cli("status", key, person="nobody"), 2)
    assert "not valid TOML" in failed(
        await cli("--config", str(artifact(tmp_path, "bad.toml", "url = [")[0]), "status", key),
        2,
    )
    failed(await cli("start", "--key", key), 2)  # owners missing: caught before any call

    # 3: refused by policy — 403 not eligible, 409 gate not open, 422 invalid
    err = failed(await cli("decide", key, "risk_signoff", "approve", person="olga"), 3)
    # an approval shows the evidence it would bind to before it is sent (and refused)
    assert err.strip().splitlines()[-1] == "error: Forbidden: not eligible for this gate"
    assert "Conflict:" in failed(await cli("decide", key, "go_live", "approve", person="bo"), 3)
    assert "Unprocessable" in failed(
        await cli("decide", key, "risk_signoff", "request-changes", person="rita"), 3
    )
    assert "Conflict:" in failed(await cli("complete", key, "scoping"), 3)
    # break-glass: only the emergency group, and only a stalled gate
    why = ("--justification", "regulator deadline tonight; approved by the COO")
    err = failed(await cli("override", key, "risk_signoff", *why, person="bo"), 3)
    assert "break-glass group" in err
    assert "not stalled" in failed(
        await cli("override", key, "risk_signoff", *why, person="eve"), 3
    )

    # 4: not found
    err = failed(await cli("status", f"no-such-{uuid.uuid4().hex[:8]}", "--json"), 4)
    assert err.startswith("error: Not found: no use case 'usecase-no-such-")
    failed(await cli("history", "no-such-use-case"), 4)
    failed(await cli("audit", "verify", "no-such-use-case"), 4)

    # 5: unreachable
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, never listening
        err = failed(await cli("--url", dead, "status", key), 5)
    assert err.startswith(f"error: cannot reach the ReleaseGate API at {dead}")

    # and the happy path still answers 0 with parseable JSON
    state = ok(await cli("decide", key, "risk_signoff", "approve", "--json", person="rita"))
    assert state.json()["stage"] == "ops_handoff"


async def test_config_file_supplies_url_and_token(cli: Cli, tmp_path: Path) -> None:
    config = cli.home / ".config" / "releasegate" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'url = "{cli.url}"\ntoken = "dev-eve"\n')
    # default location (XDG_CONFIG_HOME), no URL or token in the environment
    env_free = {"RELEASEGATE_URL": ""}
    page = ok(await cli("list", "--json", person=None, **env_free)).json()
    assert "items" in page

    explicit = tmp_path / "other.toml"
    explicit.write_text(f'url = "{cli.url}"\ntoken = "dev-rita"\n')
    inbox: dict[str, Any] = ok(
        await cli("--config", str(explicit), "pending", "--json", person="nobody")
    ).json()  # --config beats RELEASEGATE_TOKEN=dev-nobody
    assert "items" in inbox
    failed(await cli("--config", str(tmp_path / "absent.toml"), "pending"), 2)


@pytest.mark.parametrize("verb", ["suspend", "incident"])
async def test_live_verbs_refused_before_live(cli: Cli, verb: str) -> None:
    key = new_key("early")
    ok(
        await cli(
            "start", "--key", key, "--title", "Too early", "--tier", "low",
            "--business-owner", "bo", "--technical-owner", "tom", "--operations-owner", "olga",
            "--risk-approver", "rita", "--escalation-owner", "eve",
        )
    )  # fmt: skip
    args = {
        "suspend": ("suspend", key, "--reason", "stop"),
        "incident": ("incident", key, "--severity", "sev1", "--summary", "down"),
    }[verb]
    assert "Conflict:" in failed(await cli(*args, person="bo"), 3)
