"""The ledger over HTTP: entries, verification, the evidence pack, tampering and the audit CLI.

Runs against the real dev server, worker and SQLite store of ``tests/api/conftest.py``;
tampering edits that store directly, as an attacker with database access would.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.settings import PROJECT_ROOT, Settings
from services.store import audit_cli
from services.store.audit import build_evidence_pack
from services.store.db import make_engine, make_sessionmaker, session_scope
from services.store.ledger import GENESIS_HASH, LedgerRepository, entry_hash
from services.store.migrate import upgrade_head
from services.store.models import EvidenceItem, LedgerEntry
from services.store.tempdb import temporary_sqlite_database
from tests.api.conftest import approve, auth
from tests.api.test_use_cases import PROBLEM, create, ev, walk
from tests.harness import ReleaseHarness, api_client
from tests.store.factories import batch, new_workflow_id
from workflows.model import Decision, Gate, GateDecision
from workflows.release import UseCaseRelease

Sessions = async_sessionmaker[AsyncSession]
POLICY_FILE = PROJECT_ROOT / "config" / "policy.yaml"
SETTLE_TIMEOUT_S = 15.0


@pytest.fixture
def db(release: ReleaseHarness) -> Sessions:
    """The store the API and the worker share (the attacker's way in)."""
    return release.sessionmaker


async def settled(api: httpx.AsyncClient, uc_id: str) -> list[dict[str, Any]]:
    """The ledger once it holds every event the workflow has recorded so far."""
    deadline = asyncio.get_running_loop().time() + SETTLE_TIMEOUT_S
    while True:
        state = await api.get(f"/v1/use-cases/{uc_id}", headers=auth("eve"))
        assert state.status_code == 200, state.text
        ledger = await api.get(f"/v1/use-cases/{uc_id}/ledger", headers=auth("eve"))
        if ledger.status_code == 200 and len(ledger.json()) == state.json()["event_count"]:
            entries: list[dict[str, Any]] = ledger.json()
            return entries
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"ledger of {uc_id} did not catch up: {ledger.text[:300]}")
        await asyncio.sleep(0.1)


async def verify(api: httpx.AsyncClient, uc_id: str) -> dict[str, Any]:
    r = await api.get(f"/v1/use-cases/{uc_id}/ledger/verify", headers=auth("rita"))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def recomputed_hash(workflow_id: str, entry: dict[str, Any]) -> str:
    """An auditor's own implementation of the documented recipe, from the JSON alone."""
    document = {
        "workflow_id": workflow_id,
        **{k: entry[k] for k in ("seq", "at", "kind", "actor", "channel", "payload")},
        "policy_version": entry["policy_version"],
        "prev_hash": entry["prev_hash"],
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- entries, verify


async def test_walked_use_case_has_a_contiguous_verified_chain(api: httpx.AsyncClient) -> None:
    uc = await create(api, "low")
    await walk(api, uc, "live")
    entries = await settled(api, uc["id"])

    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert entries[0]["kind"] == "run_started"
    assert entries[0]["prev_hash"] == GENESIS_HASH
    for before, after in zip(entries, entries[1:], strict=False):
        assert after["prev_hash"] == before["hash"]
    for entry in entries:
        assert set(entry) >= {
            "seq",
            "at",
            "kind",
            "actor",
            "channel",
            "payload",
            "prev_hash",
            "hash",
        }
        assert entry["hash"] == recomputed_hash(uc["id"], entry)
    kinds = {e["kind"] for e in entries}
    assert {"stage_entered", "stage_completed", "decision", "gate_passed"} <= kinds
    decisions = [(e["actor"], e["payload"]["gate"]) for e in entries if e["kind"] == "decision"]
    assert decisions == [("rita", "risk_signoff"), ("olga", "ops_handoff"), ("bo", "go_live")]
    assert (
        entries[0]["payload"]["policy"]["sha256"]
        == hashlib.sha256(POLICY_FILE.read_bytes()).hexdigest()
    )

    r = await api.get(f"/v1/use-cases/{uc['id']}/ledger/verify", headers=auth("rita"))
    assert r.status_code == 200
    # expected_entries: the read model's count, which may trail the ledger by a sync
    assert r.json().items() >= {"ok": True, "entries": len(entries), "first_bad_seq": None}.items()

    # the bare key addresses the same run
    by_key = await api.get(f"/v1/use-cases/{uc['key']}/ledger", headers=auth("bo"))
    assert by_key.json() == entries
    assert (await verify(api, uc["key"]))["ok"] is True


async def test_unknown_use_case_is_404_and_token_is_required(api: httpx.AsyncClient) -> None:
    for path in ("ledger", "ledger/verify", "evidence-pack"):
        r = await api.get(f"/v1/use-cases/usecase-never-started/{path}", headers=auth("bo"))
        assert r.status_code == 404, r.text
        assert r.headers["content-type"] == PROBLEM
        r = await api.get(f"/v1/use-cases/never-started/{path}")
        assert r.status_code == 401


# --------------------------------------------------------------------------- evidence pack


async def test_evidence_pack_binds_decisions_to_evidence(
    api: httpx.AsyncClient, release: ReleaseHarness
) -> None:
    uc = await create(api, "high")
    uc_id = uc["id"]
    await walk(api, uc, "risk_signoff")
    first = ev("risk_assessment")
    r = await api.post(
        f"/v1/use-cases/{uc_id}/evidence", json={"evidence": [first]}, headers=auth("tom")
    )
    assert r.status_code == 201, r.text
    r = await approve(api, f"/v1/use-cases/{uc_id}", "risk_signoff", "rita")
    assert r.status_code == 200, r.text

    # new evidence while the gate is open voids rita's approval
    second = ev("risk_assessment")
    r = await api.post(
        f"/v1/use-cases/{uc_id}/evidence", json={"evidence": [second]}, headers=auth("tom")
    )
    assert r.status_code == 201, r.text
    assert r.json()["open_gate"]["approvals"] == []

    # a decision by Signal from someone not eligible: refused, and kept on the record
    handle = release.client.get_workflow_handle(uc_id)
    await handle.signal(
        UseCaseRelease.decide_signal,
        GateDecision(actor="olga", gate=Gate.RISK_SIGNOFF, decision=Decision.APPROVE),
    )
    for person in ("rita", "raj"):
        r = await approve(api, f"/v1/use-cases/{uc_id}", "risk_signoff", person)
        assert r.status_code == 200, r.text
    await walk(api, r.json(), "live")
    entries = await settled(api, uc_id)

    for _ in range(100):  # the pack's stage comes from the read model, synced after the ledger
        r = await api.get(f"/v1/use-cases/{uc_id}/evidence-pack", headers=auth("eve"))
        assert r.status_code == 200, r.text
        pack = r.json()
        if pack["use_case"]["stage"] == "live":
            break
        await asyncio.sleep(0.05)

    assert pack["use_case"]["id"] == uc_id
    assert pack["use_case"]["key"] == uc["key"]
    assert pack["use_case"]["title"] == uc["title"]
    assert pack["use_case"]["risk_tier"] == "high"
    assert pack["use_case"]["stage"] == "live"
    assert pack["use_case"]["path"][0] == "scoping"
    assert pack["owners"]["delivery_lead"] == "dana"
    assert pack["owners"]["risk_approvers"] == ["group:risk-committee"]
    assert sorted(pack["roster"]["risk_approver"]) == ["raj", "rita"]

    policy_bytes = POLICY_FILE.read_bytes()
    assert pack["policy"]["version"] == "2026.3"
    assert pack["policy"]["sha256"] == hashlib.sha256(policy_bytes).hexdigest()
    assert pack["policy"]["content"] == policy_bytes.decode("utf-8")
    assert pack["policy"]["content_available"] is True

    risk = [d for d in pack["decisions"] if d["gate"] == "risk_signoff"]
    assert [(d["actor"], d["decision"], d["voided"]) for d in risk] == [
        ("rita", "approve", True),
        ("rita", "approve", False),
        ("raj", "approve", False),
    ]
    voided_entry = next(e for e in entries if e["kind"] == "approvals_voided")
    assert voided_entry["payload"]["voided"] == ["rita"]
    assert risk[0]["voided_at_seq"] == voided_entry["seq"]
    assert risk[0]["voided_by"] == "tom"
    assert risk[0]["seq"] < voided_entry["seq"] < risk[1]["seq"]
    # each approval names exactly the evidence its approver saw
    assert first["sha256"] in risk[0]["evidence_digests"]
    assert second["sha256"] not in risk[0]["evidence_digests"]
    assert {first["sha256"], second["sha256"]} <= set(risk[1]["evidence_digests"])
    assert {e["sha256"] for e in risk[1]["evidence"]} == set(risk[1]["evidence_digests"])
    assert all(not d["voided"] for d in pack["decisions"] if d["gate"] != "risk_signoff")
    assert {d["gate"] for d in pack["decisions"]} == {
        "scope_approval",
        "risk_signoff",
        "ops_handoff",
        "go_live",
    }
    assert [g["gate"] for g in pack["gates_passed"]] == [
        "scope_approval",
        "risk_signoff",
        "ops_handoff",
        "go_live",
    ]

    sha_by_kind: dict[str, set[str]] = {}
    for item in pack["evidence"]:
        sha_by_kind.setdefault(item["kind"], set()).add(item["sha256"])
        assert item["ledger_seq"] in {e["seq"] for e in entries}
    assert sha_by_kind["risk_assessment"] == {first["sha256"], second["sha256"]}
    assert {"evaluation_report", "model_card", "dpia", "runbook"} <= set(sha_by_kind)

    assert [(x["actor"], x["refusal"], x["channel"]) for x in pack["refused"]] == [
        ("olga", "not_eligible", "signal")
    ]
    assert pack["ledger"]["entries"] == len(entries)
    assert pack["ledger"]["head_hash"] == entries[-1]["hash"]
    assert pack["ledger"]["verify"]["ok"] is True
    assert pack["ledger"]["chain"] == entries


async def test_pack_says_when_the_policy_file_changed_since_the_pin(
    api: httpx.AsyncClient, db: Sessions, tmp_path: Path
) -> None:
    uc = await create(api, "low")
    await settled(api, uc["id"])
    edited = tmp_path / "policy.yaml"
    edited.write_bytes(POLICY_FILE.read_bytes() + b"\n# edited after the run started\n")
    async with session_scope(db) as session:
        pack = await build_evidence_pack(session, uc["key"], policy_path=edited)
    assert pack.policy.sha256 == hashlib.sha256(POLICY_FILE.read_bytes()).hexdigest()
    assert pack.policy.content is None
    assert pack.policy.content_available is False
    assert pack.policy.content_note
    assert "content unavailable" in pack.policy.content_note


# --------------------------------------------------------------------------- tampering


async def _row(session: AsyncSession, workflow_id: str, seq: int) -> LedgerEntry:
    statement = select(LedgerEntry).where(
        LedgerEntry.workflow_id == workflow_id, LedgerEntry.seq == seq
    )
    return (await session.scalars(statement)).one()


async def edit_payload(session: AsyncSession, wf: str, n: int) -> tuple[int, int]:
    await session.execute(
        update(LedgerEntry)
        .where(LedgerEntry.workflow_id == wf, LedgerEntry.seq == 3)
        .values(payload={"stage": "scoping", "round": 1, "comment": "approved after all"})
    )
    return 3, n


async def delete_row(session: AsyncSession, wf: str, n: int) -> tuple[int, int]:
    await session.execute(
        delete(LedgerEntry).where(LedgerEntry.workflow_id == wf, LedgerEntry.seq == 3)
    )
    return 3, n - 1


async def insert_row(session: AsyncSession, wf: str, n: int) -> tuple[int, int]:
    # Shift 3..n up and forge a row at 3 whose own hash and link to 2 are right: the forgery
    # looks fine by itself, the chain breaks at the next row.
    for seq in range(n, 2, -1):
        await session.execute(
            update(LedgerEntry)
            .where(LedgerEntry.workflow_id == wf, LedgerEntry.seq == seq)
            .values(seq=seq + 1, event_id=seq + 1)
        )
    previous = await _row(session, wf, 2)
    forged: dict[str, Any] = {
        "workflow_id": wf,
        "seq": 3,
        "at": previous.at + timedelta(milliseconds=1),
        "kind": "decision",
        "actor": "mallory",
        "channel": "api",
        "payload": {"gate": "go_live", "decision": "approve"},
        "policy_version": previous.policy_version,
        "prev_hash": previous.hash,
    }
    session.add(
        LedgerEntry(
            **forged, use_case_key=previous.use_case_key, event_id=3, hash=entry_hash(**forged)
        )
    )
    return 4, n + 1


async def reorder_rows(session: AsyncSession, wf: str, n: int) -> tuple[int, int]:
    # swap positions 2 and 4 (seq and event_id both: only the hashes can tell)
    for old, new in ((2, -1), (4, 2), (-1, 4)):
        await session.execute(
            update(LedgerEntry)
            .where(LedgerEntry.workflow_id == wf, LedgerEntry.seq == old)
            .values(seq=new, event_id=new)
        )
    return 2, n


Tamper = Callable[[AsyncSession, str, int], Awaitable[tuple[int, int]]]


@pytest.mark.parametrize("tamper", [edit_payload, delete_row, insert_row, reorder_rows])
async def test_tampering_is_reported_with_the_first_bad_seq(
    api: httpx.AsyncClient, db: Sessions, tamper: Tamper
) -> None:
    uc = await create(api, "low")
    for stage in ("scoping", "specification"):
        r = await api.post(
            f"/v1/use-cases/{uc['id']}/stages/{stage}/complete", json={}, headers=auth("dana")
        )
        assert r.status_code == 200, r.text
    entries = await settled(api, uc["id"])
    n = len(entries)
    assert n >= 5
    verified = await verify(api, uc["id"])
    assert verified.items() >= {"ok": True, "entries": n, "first_bad_seq": None}.items()

    async with session_scope(db) as session:
        first_bad, remaining = await tamper(session, uc["id"], n)

    result = await verify(api, uc["id"])
    assert result["ok"] is False
    assert result["first_bad_seq"] == first_bad
    assert result["entries"] == remaining
    assert result["reason"]
    # the tampered ledger is still readable, and the pack carries the same verdict
    r = await api.get(f"/v1/use-cases/{uc['id']}/ledger", headers=auth("eve"))
    assert r.status_code == 200
    assert len(r.json()) == remaining
    pack = (await api.get(f"/v1/use-cases/{uc['id']}/evidence-pack", headers=auth("eve"))).json()
    assert pack["ledger"]["verify"]["ok"] is False
    assert pack["ledger"]["verify"]["first_bad_seq"] == first_bad


# --------------------------------------------------------------------------- bad evidence


async def _stored_evidence(db: Sessions, workflow_id: str) -> int:
    async with session_scope(db) as session:
        count = await session.scalar(
            select(func.count())
            .select_from(EvidenceItem)
            .where(EvidenceItem.workflow_id == workflow_id)
        )
    return int(count or 0)


async def test_malformed_evidence_is_422_and_nothing_is_stored(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    uc = await create(api, "low")
    await walk(api, uc, "validation")
    before = await settled(api, uc["id"])
    good = ev("evaluation_report")
    bad_items = [
        {**good, "sha256": "abc"},  # too short
        {**good, "sha256": "g" * 64},  # not hex
        {**good, "sha256": "a" * 65},  # too long
        {**good, "uri": "not a uri"},  # no scheme
        {**good, "uri": "https://docs.example.com/a b"},  # whitespace
        {**good, "uri": ""},
    ]
    for item in bad_items:
        # alone, and next to a valid item: the whole request is refused
        for items in ([item], [good, item]):
            r = await api.post(
                f"/v1/use-cases/{uc['id']}/evidence",
                json={"evidence": items},
                headers=auth("dana"),
            )
            assert r.status_code == 422, (item, r.text)
            assert r.headers["content-type"] == PROBLEM
            r = await api.post(
                f"/v1/use-cases/{uc['id']}/stages/validation/complete",
                json={"evidence": items},
                headers=auth("dana"),
            )
            assert r.status_code == 422, (item, r.text)

    assert await _stored_evidence(db, uc["id"]) == 0
    assert await settled(api, uc["id"]) == before
    state = (await api.get(f"/v1/use-cases/{uc['id']}", headers=auth("dana"))).json()
    assert state["evidence"] == []
    assert state["stage"] == "validation"

    # the valid item alone goes through and is stored once, digest lower-cased
    r = await api.post(
        f"/v1/use-cases/{uc['id']}/evidence",
        json={"evidence": [{**good, "sha256": good["sha256"].upper()}]},
        headers=auth("dana"),
    )
    assert r.status_code == 201, r.text
    await settled(api, uc["id"])
    assert await _stored_evidence(db, uc["id"]) == 1


# --------------------------------------------------------------------------- database down


async def test_ledger_endpoints_answer_503_when_the_database_is_unreachable(
    api_settings: Settings,
) -> None:
    # nothing listens on port 1: every connection attempt is refused
    settings = api_settings.model_copy(
        update={"database_url": "postgresql+asyncpg://postgres@127.0.0.1:1/releasegate"}
    )
    async with api_client(settings) as client:
        for path in ("ledger", "ledger/verify", "evidence-pack"):
            r = await client.get(f"/v1/use-cases/usecase-anything/{path}", headers=auth("bo"))
            assert r.status_code == 503, r.text
            assert r.headers["content-type"] == PROBLEM
            assert r.json()["type"].endswith("db-unavailable")


# --------------------------------------------------------------------------- audit CLI


async def run_cli(*argv: str, settings: Settings) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    # main() runs its own event loop, so it cannot run on this one
    code = await asyncio.to_thread(
        audit_cli.main, list(argv), settings=settings, stdout=out, stderr=err
    )
    return code, out.getvalue(), err.getvalue()


async def test_audit_cli_verify_and_export_from_the_api_store(
    api: httpx.AsyncClient, api_settings: Settings, db: Sessions, tmp_path: Path
) -> None:
    uc = await create(api, "low")
    await walk(api, uc, "live")
    entries = await settled(api, uc["id"])

    code, out, _ = await run_cli("verify", "--use-case", uc["key"], settings=api_settings)
    assert code == 0
    assert out.strip() == f"{uc['id']}: ok ({len(entries)} entries)"

    target = tmp_path / "pack.json"
    code, out, _ = await run_cli(
        "export", "--use-case", uc["id"], "--out", str(target), settings=api_settings
    )
    assert code == 0, out
    exported = json.loads(target.read_text())
    served = (await api.get(f"/v1/use-cases/{uc['id']}/evidence-pack", headers=auth("eve"))).json()
    exported.pop("generated_at")
    served.pop("generated_at")
    assert exported == served  # one builder for both

    async with session_scope(db) as session:
        await session.execute(
            update(LedgerEntry)
            .where(LedgerEntry.workflow_id == uc["id"], LedgerEntry.seq == 5)
            .values(actor="mallory")
        )
    code, out, _ = await run_cli("verify", "--use-case", uc["key"], settings=api_settings)
    assert code == 1
    assert "BROKEN at seq 5" in out
    code, out, _ = await run_cli(
        "export", "--use-case", uc["key"], "--out", str(target), settings=api_settings
    )
    assert code == 1
    assert json.loads(target.read_text())["ledger"]["verify"]["first_bad_seq"] == 5

    code, _, err = await run_cli("verify", "--use-case", "never-started", settings=api_settings)
    assert code == 2
    assert "no use case 'usecase-never-started'" in err


async def test_audit_cli_verifies_every_chain(tmp_path: Path) -> None:
    async with temporary_sqlite_database(prefix="releasegate-audit-") as url:
        await upgrade_head(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        intact, broken = new_workflow_id(), new_workflow_id()
        async with session_scope(sessions) as session:
            await LedgerRepository(session).append(batch(intact, range(1, 4)))
        async with session_scope(sessions) as session:
            await LedgerRepository(session).append(batch(broken, range(1, 6)))
        settings = Settings(RELEASEGATE_DATABASE_URL=url)

        code, out, _ = await run_cli("verify", settings=settings)
        assert code == 0, out
        assert f"{intact}: ok (3 entries)" in out
        assert "2 chains verified, 0 broken" in out

        async with session_scope(sessions) as session:
            await session.execute(
                delete(LedgerEntry).where(LedgerEntry.workflow_id == broken, LedgerEntry.seq == 2)
            )
        await engine.dispose()

        # as an auditor runs it: a separate process, the database from the environment
        result = subprocess.run(
            [sys.executable, "-m", "services.store.audit_cli", "verify"],
            cwd=PROJECT_ROOT,
            env={**os.environ, "RELEASEGATE_DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1, result.stderr
        assert f"{broken}: BROKEN at seq 2" in result.stdout
        assert f"{intact}: ok (3 entries)" in result.stdout
        assert "2 chains verified, 1 broken" in result.stdout

    missing = Settings(RELEASEGATE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'none.db'}")
    code, _, err = await run_cli("verify", settings=missing)
    assert code == 2
    assert "no ledger database" in err
    assert not (tmp_path / "none.db").exists()
