"""Controls over HTTP, against real runs: the view at every stage of a low- and a high-tier use
case, the FRIA only for an EU Annex III use case, gaps that reach the inbox and leave it when the
fact lands, need-to-know, and OSCAL documents validated against NIST's schema."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.api.conftest import approve, auth
from tests.api.test_ledger import settled
from tests.api.test_use_cases import new_body
from tests.workflows.helpers import (
    EXPECTED_PATH,
    GATE_APPROVERS,
    GATE_EVIDENCE,
    STAGE_EVIDENCE,
    evidence,
)

PROBLEM = "application/problem+json"
SETTLE_S = 15.0


class Run:
    """A use case driven over HTTP, remembering every evidence item it submitted."""

    def __init__(self, api: httpx.AsyncClient, state: dict[str, Any]) -> None:
        self.api = api
        self.state = state
        self.id = state["id"]
        self.base = f"/v1/use-cases/{self.id}"
        self.submitted: dict[str, dict[str, str]] = {}

    def ev(self, kind: str) -> dict[str, str]:
        item = evidence(kind).model_dump()
        self.submitted[kind] = item
        return item

    async def step(self, *, extra: dict[str, list[str]] | None = None) -> dict[str, Any]:
        """Complete the open work stage or pass the open gate, with the policy's evidence
        (and ``extra`` kinds at that stage or gate)."""
        tier, stage = self.state["risk_tier"], self.state["stage"]
        more = (extra or {}).get(stage, [])
        if self.state["open_gate"] is None:
            kinds = STAGE_EVIDENCE[tier].get(stage, []) + more
            r = await self.api.post(
                f"{self.base}/stages/{stage}/complete",
                json={"evidence": [self.ev(k) for k in kinds]},
                headers=auth("dana"),
            )
        else:
            kinds = GATE_EVIDENCE[tier].get(stage, []) + more
            if kinds:
                r = await self.api.post(
                    f"{self.base}/evidence",
                    json={"evidence": [self.ev(k) for k in kinds]},
                    headers=auth("tom"),
                )
                assert r.status_code == 201, r.text
            for person in GATE_APPROVERS[tier][stage]:
                r = await approve(self.api, self.base, stage, person)
                assert r.status_code == 200, r.text
        assert r.status_code == 200, r.text
        self.state = r.json()
        return self.state

    async def controls(self, person: str = "eve") -> dict[str, Any]:
        """The controls view once the ledger holds everything the run recorded."""
        await settled(self.api, self.id)
        r = await self.api.get(f"{self.base}/controls", headers=auth(person))
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def ledger(self) -> list[dict[str, Any]]:
        return await settled(self.api, self.id)


async def start(api: httpx.AsyncClient, tier: str, **over: Any) -> Run:
    r = await api.post("/v1/use-cases", json=new_body(tier, **over), headers=auth("dana"))
    assert r.status_code == 201, r.text
    return Run(api, r.json())


def by_id(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in view["controls"]}


def statuses(view: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["status"] for c in view["controls"]}


# --------------------------------------------------------------------------- low tier


async def test_low_tier_view_at_every_stage(api: httpx.AsyncClient) -> None:
    run = await start(api, "low")
    seen: dict[str, dict[str, str]] = {}
    while True:
        view = await run.controls()
        assert view["stage"] == run.state["stage"]
        seen[view["stage"]] = statuses(view)
        if run.state["stage"] == "live":
            break
        await run.step()

    assert list(seen) == EXPECTED_PATH["low"]
    # registered with its owners from the first fact on; the ledger verifies all along
    for stage, st in seen.items():
        assert st["nist-ai-rmf.govern-1.6"] == "satisfied", stage
        assert st["sr-11-7.inventory"] == "satisfied", stage
        assert st["iso-42001.a.6.2.8"] == "satisfied", stage
        # medium/high-only and EU controls never apply to a low-tier use case
        for control in ("nist-ai-rmf.map-1.5", "nist-ai-rmf.measure-2.4", "eu-ai-act.art-9"):
            assert st[control] == "not_applicable", (stage, control)
        assert st["eu-ai-act.art-27"] == "not_applicable", stage
    # validation and independent sign-off: pending until risk_signoff passes
    for stage in ("scoping", "validation", "risk_signoff"):
        assert seen[stage]["iso-42001.a.6.2.4"] == "pending", stage
        assert seen[stage]["nist-ai-rmf.measure-1.3"] == "pending", stage
    for stage in ("ops_handoff", "go_live", "live"):
        assert seen[stage]["iso-42001.a.6.2.4"] == "satisfied", stage
        assert seen[stage]["sr-11-7.effective-challenge"] == "satisfied", stage
    # deployment approved once go-live passed; live capabilities only once live
    assert seen["go_live"]["iso-42001.a.6.2.5"] == "pending"
    assert seen["go_live"]["nist-ai-rmf.manage-2.4"] == "pending"
    live = seen["live"]
    assert live["iso-42001.a.6.2.5"] == "satisfied"
    assert live["nist-ai-rmf.manage-2.4"] == "satisfied"
    assert live["sr-11-7.annual-review"] == "satisfied"
    assert "gap" not in live.values()

    view = await run.controls()
    assert view["summary"]["gap"] == 0
    assert view["pinned_catalog"] == view["catalog"]
    assert view["catalog_matches_pin"] is True
    # the facts behind a satisfied control: the evidence item submitted, the decision recorded
    ledger = await run.ledger()
    v_and_v = by_id(view)["iso-42001.a.6.2.4"]
    report = run.submitted["evaluation_report"]
    assert [(e["kind"], e["name"], e["sha256"]) for e in v_and_v["evidence"]] == [
        (report["kind"], report["name"], report["sha256"])
    ]
    decision = next(
        e for e in ledger if e["kind"] == "decision" and e["payload"]["gate"] == "risk_signoff"
    )
    assert [(d["actor"], d["seq"], d["gate"]) for d in v_and_v["decisions"]] == [
        (decision["actor"], decision["seq"], "risk_signoff")
    ]
    assert v_and_v["decisions"][0]["roles"] == ["risk_approver"]
    evidence_entry = next(
        e for e in ledger if e["kind"] == "stage_completed" and e["payload"].get("evidence")
    )
    assert v_and_v["evidence"][0]["seq"] == evidence_entry["seq"]


# --------------------------------------------------------------------------- high tier


async def test_high_tier_view_at_every_stage_and_fria_for_annex_iii(
    api: httpx.AsyncClient,
) -> None:
    run = await start(api, "high", eu_ai_act={"annex_iii": ["5b"]})
    seen: dict[str, dict[str, str]] = {}
    views: dict[str, dict[str, Any]] = {}
    while True:
        view = await run.controls()
        seen[view["stage"]] = statuses(view)
        views[view["stage"]] = view
        if run.state["stage"] == "live":
            break
        if run.state["stage"] == "risk_signoff":
            # the FRIA was not handed in with validation: a gap now, closed when it lands
            fria = by_id(view)["eu-ai-act.art-27"]
            assert fria["status"] == "gap"
            assert "no fria evidence at validation or risk_signoff" in fria["reason"]
            assert "passed validation" in fria["reason"]
            await run.step(extra={"risk_signoff": ["fria"]})
            continue
        await run.step()

    assert view["eu_annex_iii"] == ["5b"]
    assert list(seen) == EXPECTED_PATH["high"]
    for stage, st in seen.items():
        # every control applies to a high-tier use case marked Annex III 5(b)
        assert "not_applicable" not in st.values(), stage
        assert st["eu-ai-act.art-12"] == "satisfied", stage
    assert seen["validation"]["eu-ai-act.art-27"] == "pending"
    assert seen["validation"]["eu-ai-act.art-11"] == "pending"
    assert seen["risk_signoff"]["eu-ai-act.art-11"] == "satisfied"  # model card at validation
    assert seen["risk_signoff"]["iso-42001.a.5.2"] == "satisfied"  # dpia at validation
    assert seen["risk_signoff"]["eu-ai-act.art-9"] == "pending"
    assert seen["ops_handoff"]["eu-ai-act.art-9"] == "satisfied"
    assert seen["ops_handoff"]["eu-ai-act.art-27"] == "satisfied"
    assert seen["go_live"]["eu-ai-act.art-72"] == "pending"  # monitoring plan, then live
    assert set(seen["live"].values()) == {"satisfied"}

    live = by_id(views["live"])
    oversight = live["eu-ai-act.art-14"]
    assert sorted(d["actor"] for d in oversight["decisions"]) == ["bo", "tom"]
    fria = live["eu-ai-act.art-27"]
    assert [(e["kind"], e["sha256"], e["scope"]) for e in fria["evidence"]] == [
        ("fria", run.submitted["fria"]["sha256"], "risk_signoff")
    ]
    # two distinct risk approvers, neither of them the builders
    challenge = live["sr-11-7.effective-challenge"]
    assert sorted(d["actor"] for d in challenge["decisions"]) == ["raj", "rita"]


async def test_fria_does_not_apply_without_the_annex_iii_marker(api: httpx.AsyncClient) -> None:
    run = await start(api, "high")
    view = await run.controls()
    fria = by_id(view)["eu-ai-act.art-27"]
    assert fria["status"] == "not_applicable"
    assert "Annex III" in fria["reason"]
    assert view["eu_annex_iii"] == []
    # a marker that is not an Annex III point is refused at the door and starts nothing
    bad = new_body("high", eu_ai_act={"annex_iii": ["9z"]})
    r = await api.post("/v1/use-cases", json=bad, headers=auth("dana"))
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    r = await api.get(f"/v1/use-cases/usecase-{bad['key']}", headers=auth("dana"))
    assert r.status_code == 404


# --------------------------------------------------------------------------- gaps that act


async def inbox_gaps(api: httpx.AsyncClient, person: str, uc_id: str) -> list[str]:
    r = await api.get("/v1/approvals/pending", headers=auth(person))
    assert r.status_code == 200, r.text
    page = r.json()
    for item in page["items"]:  # the gate items keep their shape (with the side-decision keys)
        assert set(item) - {"kind", "waiver_id", "decide_url"} == {
            "id",
            "key",
            "title",
            "risk_tier",
            "gate",
            "quorum",
            "approvals",
            "due_at",
            "round",
            "url",
        }
    mine = [g for g in page["control_gaps"] if g["id"] == uc_id]
    assert all(g["kind"] == "control_gap" for g in mine)
    return [gap["control"] for item in mine for gap in item["gaps"]]


async def test_live_gap_reaches_the_inbox_and_leaves_when_the_fact_lands(
    api: httpx.AsyncClient,
) -> None:
    # medium tier: the policy asks no monitoring plan, the catalog's monitoring controls do
    run = await start(api, "medium")
    while run.state["stage"] != "live":
        await run.step()
    view = await run.controls()
    gaps = {c["id"]: c for c in view["controls"] if c["status"] == "gap"}
    assert set(gaps) == {"nist-ai-rmf.measure-2.4", "sr-11-7.ongoing-monitoring"}
    assert "no monitoring_plan evidence" in gaps["nist-ai-rmf.measure-2.4"]["reason"]
    assert "passed ops_handoff" in gaps["nist-ai-rmf.measure-2.4"]["reason"]

    expected = sorted(gaps)
    for person in ("bo", "rita", "raj"):  # business owner and risk approvers
        assert sorted(await inbox_gaps(api, person, run.id)) == expected, person
    for person in ("olga", "dana", "eve"):  # not theirs to close
        assert await inbox_gaps(api, person, run.id) == [], person

    # the monitoring plan lands with the next live gate: suspend, ask to resume, hand it in
    r = await api.post(f"{run.base}/suspend", json={"reason": "drill"}, headers=auth("tom"))
    assert r.status_code == 200, r.text
    assert sorted(await inbox_gaps(api, "bo", run.id)) == expected  # still live, suspended
    r = await api.post(f"{run.base}/resume", json={"reason": "plan"}, headers=auth("tom"))
    assert r.status_code == 200, r.text
    r = await api.post(
        f"{run.base}/evidence",
        json={"evidence": [run.ev("monitoring_plan")]},
        headers=auth("tom"),
    )
    assert r.status_code == 201, r.text
    for person in ("raj", "bo"):
        r = await approve(api, run.base, "resume_approval", person)
        assert r.status_code == 200, r.text
    assert r.json()["stage"] == "live"

    view = await run.controls()
    assert view["summary"]["gap"] == 0
    monitoring = by_id(view)["nist-ai-rmf.measure-2.4"]
    assert monitoring["status"] == "satisfied"
    assert [(e["sha256"], e["scope"]) for e in monitoring["evidence"]] == [
        (run.submitted["monitoring_plan"]["sha256"], "resume_approval")
    ]
    stop = by_id(view)["nist-ai-rmf.manage-2.4"]
    assert [(d["actor"], d["action"]) for d in stop["decisions"]] == [("tom", "suspend")]
    for person in ("bo", "rita", "raj"):
        assert await inbox_gaps(api, person, run.id) == [], person


# --------------------------------------------------------------------------- reads, OSCAL


async def test_need_to_know_and_bad_input(api: httpx.AsyncClient) -> None:
    run = await start(api, "low")
    await run.ledger()
    for fmt in ("json", "oscal"):
        r = await api.get(f"{run.base}/controls?format={fmt}", headers=auth("priya"))
        assert r.status_code == 404, r.text
        assert r.headers["content-type"] == PROBLEM
    missing = f"/v1/use-cases/usecase-nope-{uuid.uuid4().hex[:8]}/controls"
    r = await api.get(missing, headers=auth("eve"))
    assert r.status_code == 404
    r = await api.get(f"{run.base}/controls?format=xml", headers=auth("eve"))
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    r = await api.get(f"{run.base}/controls")
    assert r.status_code == 401
    r = await api.get("/v1/controls/catalog?format=yaml", headers=auth("eve"))
    assert r.status_code == 422


async def test_oscal_documents_validate_against_nist_schema(
    api: httpx.AsyncClient, oscal_errors: Any
) -> None:
    r = await api.get("/v1/controls/catalog?format=oscal", headers=auth("priya"))
    assert r.status_code == 200, r.text
    catalog = r.json()
    assert oscal_errors(catalog) == []
    groups = {g["id"]: g for g in catalog["catalog"]["groups"]}
    assert set(groups) == {"nist-ai-rmf", "iso-42001", "eu-ai-act", "sr-11-7"}
    plain = (await api.get("/v1/controls/catalog", headers=auth("priya"))).json()
    assert sum(len(g["controls"]) for g in groups.values()) == len(plain["document"]["controls"])

    # a use case part-way (gaps, pending, not applicable) and one live with everything
    partway = await start(api, "medium")
    while partway.state["stage"] != "live":
        await partway.step()
    fresh = await start(api, "high", eu_ai_act={"annex_iii": ["5c"]})
    for run in (partway, fresh):
        view = await run.controls()
        r = await api.get(f"{run.base}/controls?format=oscal", headers=auth("eve"))
        assert r.status_code == 200, r.text
        doc = r.json()
        assert oscal_errors(doc) == [], run.id
        result = doc["assessment-results"]["results"][0]
        applicable = [c for c in view["controls"] if c["status"] != "not_applicable"]
        assert len(result["findings"]) == len(applicable)
        states = {
            f["target"]["target-id"]: f["target"]["status"]["state"] for f in result["findings"]
        }
        for c in applicable:
            want = "satisfied" if c["status"] == "satisfied" else "not-satisfied"
            assert states[f"{c['id']}_smt"] == want
        excluded = result["reviewed-controls"]["control-selections"][0].get("exclude-controls", [])
        assert {x["control-id"] for x in excluded} == {
            c["id"] for c in view["controls"] if c["status"] == "not_applicable"
        }
    # evidence items travel with their sha256
    resources = doc_resources = [
        r
        for r in (
            await api.get(f"{partway.base}/controls?format=oscal", headers=auth("eve"))
        ).json()["assessment-results"]["back-matter"]["resources"]
        if r.get("rlinks") and r["rlinks"][0].get("hashes")
    ]
    hashes = {h["value"] for res in doc_resources for h in res["rlinks"][0]["hashes"]}
    assert {item["sha256"] for item in partway.submitted.values()} <= hashes
    assert resources


@pytest.mark.parametrize("tier", ["low"])
async def test_catalog_pin_is_in_the_ledger(api: httpx.AsyncClient, tier: str) -> None:
    run = await start(api, tier)
    ledger = await run.ledger()
    plain = (await api.get("/v1/controls/catalog", headers=auth("dana"))).json()
    assert ledger[0]["payload"]["controls"] == {
        "version": plain["version"],
        "sha256": plain["sha256"],
    }
    assert "eu_ai_act" not in ledger[0]["payload"]
    await asyncio.sleep(0)
