"""Who may send what, person by person: every person in the demo directory × every command route,
on a low-tier and a high-tier use case (issue 11).

The expected table is written out below, from config/policy.yaml (who decides each gate) and the
contract's "who" column (who sends every other command), for runs dana starts with ``OWNERS``.
It is deliberately not computed with ``workflows.policy``: that is what this test checks.

For every command, on a run at a stage where it applies: everyone not eligible is refused 403
``not-eligible`` — never 409 or 422, since authorization comes before the run's state — and the
run records nothing (its event count and its ledger stay as they were); then every eligible
person succeeds. Refusals come first; a success that changes the run comes last on its run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml

from services.settings import Settings
from tests.api.conftest import auth
from tests.harness import api_client, policy_variant
from tests.security import runs
from tests.security.runs import PROBLEM, approval, ev
from tests.workflows.helpers import POLICY, ROOT

# ----------------------------------------------------------------------------- the table

PEOPLE = (
    "dana", "tom", "bo", "olga", "rita", "raj", "eve", "sam", "priya", "lee", "carla", "omar",
)  # fmt: skip
# The runs' people: dana starts them (delivery lead); rita and raj are the risk committee; stop
# authority is the policy's default (business, technical and operations owners); priya is the
# business owner's deputy (so that a resume bo asks for, or a change tom raises, can be staffed).
OWNERS: dict[str, Any] = {
    **runs.OWNERS,
    "deputies": {"business_owner": ["priya"]},
}
# who may send each command (the contract's "who" column, with the people above)
SENDERS: dict[str, frozenset[str]] = {
    "complete_stage": frozenset({"dana", "tom"}),  # delivery lead or technical owner
    "add_evidence": frozenset({"dana", "tom"}),  # delivery lead or technical owner
    "reopen_gate": frozenset({"dana"}),  # delivery lead
    "cancel": frozenset({"dana", "bo"}),  # delivery lead or business owner
    # any owner: delivery lead, business, technical, operations, escalation owner, stop authority
    "report_incident": frozenset({"dana", "bo", "tom", "olga", "eve"}),
    "suspend": frozenset({"bo", "tom", "olga"}),  # stop authority
    "resume": frozenset({"bo", "tom", "olga"}),  # stop authority
    "raise_change": frozenset({"dana", "tom"}),  # delivery lead or technical owner
    "retire": frozenset({"bo"}),  # business owner
    "set_deputies": frozenset({"bo"}),  # business owner
}
# who may decide each release gate (config/policy.yaml's deciders, a deputy standing in for the
# business owner; whoever asked — the delivery lead — never decides, and neither the delivery
# lead nor the technical owner counts toward risk_signoff)
DECIDERS: dict[str, dict[str, frozenset[str]]] = {
    "low": {
        "risk_signoff": frozenset({"rita", "raj"}),  # one risk approver
        "ops_handoff": frozenset({"olga"}),  # operations owner
        "go_live": frozenset({"bo", "priya"}),  # business owner
    },
    "high": {
        # business owner and one risk approver
        "scope_approval": frozenset({"bo", "priya", "rita", "raj"}),
        "risk_signoff": frozenset({"rita", "raj"}),  # two risk approvers
        "ops_handoff": frozenset({"olga"}),  # operations owner
        "go_live": frozenset({"bo", "priya", "tom"}),  # business owner and technical owner
    },
}
# who approves on each of the two walks to live, so that every decider approves once
WALKS: dict[str, tuple[dict[str, list[str]], dict[str, list[str]]]] = {
    "low": (
        {"risk_signoff": ["rita"], "ops_handoff": ["olga"], "go_live": ["bo"]},
        {"risk_signoff": ["raj"], "ops_handoff": ["olga"], "go_live": ["priya"]},
    ),
    "high": (
        {
            "scope_approval": ["bo", "rita"],
            "risk_signoff": ["rita", "raj"],
            "ops_handoff": ["olga"],
            "go_live": ["bo", "tom"],
        },
        {
            "scope_approval": ["raj", "priya"],
            "risk_signoff": ["raj", "rita"],
            "ops_handoff": ["olga"],
            "go_live": ["tom", "priya"],
        },
    ),
}
# resume_approval, by who asked to resume: one risk approver and the business owner (or
# deputy), never the asker
RESUME_DECIDERS: dict[str, frozenset[str]] = {
    "tom": frozenset({"rita", "raj", "bo", "priya"}),
    "olga": frozenset({"rita", "raj", "bo", "priya"}),
    "bo": frozenset({"rita", "raj", "priya"}),
}
# change_approval of a minor change, by who raised it: the technical owner, never the raiser;
# the business owner (or deputy) when the technical owner raised it
CHANGE_DECIDERS: dict[str, frozenset[str]] = {
    "dana": frozenset({"tom"}),
    "tom": frozenset({"bo", "priya"}),
}

TIERS = ("low", "high")

# ----------------------------------------------------------------------------- driving


@dataclass(frozen=True)
class Run:
    """A run as the routes name it: ``path`` for its state and commands, ``wid`` its run id
    (its ledger's name)."""

    path: str
    wid: str

    @classmethod
    def of(cls, uc: dict[str, Any]) -> Run:
        return cls(f"/v1/use-cases/{uc['id']}", uc["id"])

    def change(self, change_id: str) -> Run:
        return Run(f"{self.path}/changes/{change_id}", f"{self.wid}-{change_id}")


async def recorded(api: httpx.AsyncClient, run: Run) -> tuple[int, int]:
    """(events the run recorded, ledger entries), once the ledger holds every event."""
    for _ in range(200):  # 10 s
        count = (await runs.state(api, run.path))["event_count"]
        r = await api.get(f"/v1/use-cases/{run.wid}/ledger", headers=auth(runs.READER))
        # 404 until the run's first entries are in the store
        assert r.status_code in (200, 404), r.text
        if r.status_code == 200 and len(r.json()) == count:
            return count, len(r.json())
        await asyncio.sleep(0.05)
    raise AssertionError(f"the ledger of {run.wid} did not catch up")


@dataclass
class Matrix:
    """Sends commands person by person and keeps every answer that is not the expected one."""

    api: httpx.AsyncClient
    wrong: list[str]

    async def refused(
        self,
        run: Run,
        method: str,
        route: str,
        doc: dict[str, Any] | None,
        eligible: Iterable[str],
    ) -> None:
        """Everyone not ``eligible`` sends the command: 403 not-eligible, nothing recorded."""
        before = await recorded(self.api, run)
        allowed = set(eligible)
        for person in PEOPLE:
            if person in allowed:
                continue
            r = await self.api.request(method, f"{run.path}{route}", json=doc, headers=auth(person))
            typ = r.json().get("type", "") if r.headers["content-type"] == PROBLEM else ""
            if r.status_code != 403 or not typ.endswith("not-eligible"):
                self.wrong.append(f"{method} {route} by {person}: {r.status_code} {r.text[:200]}")
        if await recorded(self.api, run) != before:
            self.wrong.append(f"{method} {route}: refusals were recorded on {run.wid}")

    async def succeeds(
        self,
        run: Run,
        method: str,
        route: str,
        doc: dict[str, Any] | None,
        person: str,
        status: int = 200,
    ) -> dict[str, Any]:
        r = await self.api.request(method, f"{run.path}{route}", json=doc, headers=auth(person))
        if r.status_code != status:
            self.wrong.append(f"{method} {route} by {person}: {r.status_code} {r.text[:300]}")
            return {}
        return dict(r.json())

    async def decided(self, run: Run, gate: str, eligible: frozenset[str]) -> None:
        """The open ``gate`` lists exactly ``eligible``, and everyone else is refused it."""
        seen = await runs.state(self.api, run.path)
        listed = set(seen["open_gate"]["eligible"]) if seen["open_gate"] else set()
        if listed != eligible:
            self.wrong.append(f"{gate} on {run.wid} lists {sorted(listed)}, not {sorted(eligible)}")
        await self.refused(run, "POST", f"/gates/{gate}/decisions", approval(seen), eligible)

    async def approved(self, run: Run, gate: str, person: str) -> dict[str, Any]:
        seen = await runs.state(self.api, run.path)
        return await self.succeeds(run, "POST", f"/gates/{gate}/decisions", approval(seen), person)

    async def change_settled(self, run: Run) -> None:
        """Wait until no change of ``run`` is open: a passed change is applied by its use
        case's run after the change's own run ends, which records on the use case."""
        for _ in range(200):  # 10 s
            changes = (await runs.state(self.api, run.path))["changes"]
            if all(c["status"] != "open" for c in changes):
                return
            await asyncio.sleep(0.05)
        self.wrong.append(f"a change of {run.wid} is still open")

    def check(self) -> None:
        assert not self.wrong, "\n".join(self.wrong)


@pytest.fixture
def matrix(api: httpx.AsyncClient) -> Matrix:
    return Matrix(api, [])


async def start(api: httpx.AsyncClient, tier: str) -> dict[str, Any]:
    return await runs.start(api, tier, owners=OWNERS)


async def live(api: httpx.AsyncClient, tier: str) -> Run:
    uc = await runs.walk(api, await start(api, tier), "live", approvers=WALKS[tier][0])
    return Run.of(uc)


SENT: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    # command: (method, route under the run, body)
    "complete_stage": ("POST", "/stages/scoping/complete", {"evidence": [], "comment": "done"}),
    "set_deputies": (
        "PUT",
        "/deputies",
        {"deputies": {"business_owner": ["priya"]}, "comment": "holiday cover"},
    ),
    "cancel": ("POST", "/cancel", {"reason": "no longer needed"}),
    "reopen_gate": ("POST", "/gates/risk_signoff/reopen", {"reason": "still wanted"}),
    "report_incident": ("POST", "/incidents", {"severity": "sev4", "summary": "a typo"}),
    "suspend": ("POST", "/suspend", {"reason": "stop-ship drill"}),
    "resume": ("POST", "/resume", {"reason": "fixed"}),
    "raise_change": ("POST", "/changes", {"summary": "prompt tweak", "materiality": "minor"}),
    "retire": ("POST", "/retire", {"reason": "replaced"}),
}


async def refused(matrix: Matrix, run: Run, command: str) -> None:
    method, route, doc = SENT[command]
    await matrix.refused(run, method, route, doc, SENDERS[command])


async def succeeds(
    matrix: Matrix, run: Run, command: str, person: str, status: int = 200
) -> dict[str, Any]:
    method, route, doc = SENT[command]
    return await matrix.succeeds(run, method, route, doc, person, status)


# ----------------------------------------------------------------------------- the tests


def test_the_table_names_everyone_in_the_directory() -> None:
    doc = yaml.safe_load((ROOT / "config" / "directory.example.yaml").read_text())
    assert sorted(PEOPLE) == sorted(p["id"] for p in doc["people"])


@pytest.mark.parametrize("tier", TIERS)
async def test_work_stage_commands(api: httpx.AsyncClient, matrix: Matrix, tier: str) -> None:
    """Evidence, completing a stage, naming deputies and cancelling, at scoping."""
    first = Run.of(await start(api, tier))
    evidence = {"evidence": [ev("notes")], "comment": "notes"}
    await matrix.refused(first, "POST", "/evidence", evidence, SENDERS["add_evidence"])
    for person in sorted(SENDERS["add_evidence"]):  # adding evidence leaves the stage open
        await matrix.succeeds(first, "POST", "/evidence", evidence, person, 201)
    await refused(matrix, first, "set_deputies")
    await succeeds(matrix, first, "set_deputies", "bo")
    await refused(matrix, first, "complete_stage")
    await refused(matrix, first, "cancel")
    # one success per run from here: each moves the run on
    await succeeds(matrix, first, "complete_stage", "dana")
    await succeeds(matrix, first, "cancel", "dana")
    second = Run.of(await start(api, tier))
    await succeeds(matrix, second, "complete_stage", "tom")
    await succeeds(matrix, second, "cancel", "bo")
    matrix.check()


@pytest.mark.parametrize("tier", TIERS)
async def test_release_gates(api: httpx.AsyncClient, matrix: Matrix, tier: str) -> None:
    """Every release gate of the tier: refused to everyone but its deciders, and each decider
    approves on one of two walks to live."""
    first, second = WALKS[tier]
    covered: dict[str, set[str]] = {gate: set(first[gate]) | set(second[gate]) for gate in first}
    assert covered == DECIDERS[tier]  # the walks between them let every decider approve

    async def at_gate(seen: dict[str, Any]) -> None:
        gate = seen["open_gate"]["gate"]
        await matrix.decided(Run.of(seen), gate, DECIDERS[tier][gate])

    for approvers, check in ((first, at_gate), (second, None)):
        uc = await runs.walk(
            api, await start(api, tier), "live", approvers=approvers, at_gate=check
        )
        assert uc["stage"] == "live"
    matrix.check()


@pytest.mark.parametrize("tier", TIERS)
async def test_live_operation_first_run(api: httpx.AsyncClient, matrix: Matrix, tier: str) -> None:
    """Incidents, a change dana raises, stop-ship by bo, a resume tom asks for, retirement."""
    run = await live(api, tier)
    await refused(matrix, run, "report_incident")
    for person in sorted(SENDERS["report_incident"]):  # a sev4 changes nothing but the record
        await succeeds(matrix, run, "report_incident", person, 201)

    await refused(matrix, run, "raise_change")
    change = await succeeds(matrix, run, "raise_change", "dana", 201)
    change_run = run.change(change.get("change_id", "change-1"))
    await matrix.decided(change_run, "change_approval", CHANGE_DECIDERS["dana"])
    await matrix.approved(change_run, "change_approval", "tom")
    await matrix.change_settled(run)

    await refused(matrix, run, "suspend")
    await refused(matrix, run, "retire")
    await succeeds(matrix, run, "suspend", "bo")
    await refused(matrix, run, "resume")
    await succeeds(matrix, run, "resume", "tom")
    await matrix.decided(run, "resume_approval", RESUME_DECIDERS["tom"])
    await matrix.approved(run, "resume_approval", "rita")
    await matrix.approved(run, "resume_approval", "bo")
    await succeeds(matrix, run, "retire", "bo")
    matrix.check()


@pytest.mark.parametrize("tier", TIERS)
async def test_live_operation_other_runs(api: httpx.AsyncClient, matrix: Matrix, tier: str) -> None:
    """Changes tom raises (approved by the business owner and its deputy), stop-ship by tom and
    olga, resumes olga and bo ask for."""
    run = await live(api, tier)
    for number, approver in ((1, "priya"), (2, "bo")):
        change = await succeeds(matrix, run, "raise_change", "tom", 201)
        change_run = run.change(change.get("change_id", f"change-{number}"))
        await matrix.decided(change_run, "change_approval", CHANGE_DECIDERS["tom"])
        await matrix.approved(change_run, "change_approval", approver)
        await matrix.change_settled(run)
    await succeeds(matrix, run, "suspend", "tom")
    await succeeds(matrix, run, "resume", "olga")
    await matrix.decided(run, "resume_approval", RESUME_DECIDERS["olga"])
    await matrix.approved(run, "resume_approval", "priya")
    await matrix.approved(run, "resume_approval", "raj")

    other = await live(api, tier)
    await succeeds(matrix, other, "suspend", "olga")
    await succeeds(matrix, other, "resume", "bo")
    await matrix.decided(other, "resume_approval", RESUME_DECIDERS["bo"])
    await matrix.approved(other, "resume_approval", "raj")
    await matrix.approved(other, "resume_approval", "priya")
    matrix.check()


# ----------------------------------------------------------------------------- reopen


@pytest.fixture(scope="module")
async def expiring_api(
    api_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with a policy whose risk_signoff expires about a second after it opens, in
    every tier (the dev server has no time skipping; the worker runs what a run pinned)."""

    def expiring(doc: dict[str, Any]) -> None:
        for tier in TIERS:
            gate = next(g for g in doc["tiers"][tier]["gates"] if g["gate"] == "risk_signoff")
            gate.update(sla_hours=0.0002, remind_before_hours=[], expire_after_hours=0.0003)

    version = f"{POLICY.version}-expiring"
    path = policy_variant(tmp_path_factory.mktemp("policy"), version, expiring)
    async with api_client(api_settings.model_copy(update={"policy_path": path})) as client:
        yield client


@pytest.mark.parametrize("tier", TIERS)
async def test_reopen_an_expired_gate(expiring_api: httpx.AsyncClient, tier: str) -> None:
    matrix = Matrix(expiring_api, [])
    uc = await runs.walk(
        expiring_api, await start(expiring_api, tier), "risk_signoff", approvers=WALKS[tier][0]
    )
    run = Run.of(uc)
    for _ in range(100):  # 10 s
        if (await runs.state(expiring_api, run.path))["stage"] == "stalled":
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"risk_signoff of {run.wid} did not expire")
    await refused(matrix, run, "reopen_gate")
    state = await succeeds(matrix, run, "reopen_gate", "dana")
    matrix.check()
    assert state["open_gate"]["gate"] == "risk_signoff"


# ----------------------------------------------------------------------------- added later
# exceptions (waivers), what runs (the bundle), break-glass: the same table, the same rules

SENDERS["request_waiver"] = frozenset({"dana", "tom"})  # delivery lead or technical owner
SENDERS["report_runtime"] = frozenset({"tom", "olga"})  # technical or operations owner
SENDERS["override_gate"] = frozenset({"eve", "sam"})  # the policy's break-glass group
# the tier's grantors (config/policy.yaml ``waivers``), the business owner's deputy standing in
GRANTORS: dict[str, frozenset[str]] = {
    "low": frozenset({"rita", "raj"}),  # one risk approver
    "high": frozenset({"rita", "raj", "bo", "priya"}),  # two risk approvers, business owner
}
BUNDLE = [{"name": "model", "sha256": "b" * 64}]
WHY = "the go-live window is the vendor's, not ours; a week more is needed"


@pytest.mark.parametrize("tier", TIERS)
async def test_exceptions_and_what_runs(api: httpx.AsyncClient, matrix: Matrix, tier: str) -> None:
    uc = await runs.walk(
        api,
        await runs.start(api, tier, owners=OWNERS, bundle=BUNDLE),
        "risk_signoff",
        approvers=WALKS[tier][0],
    )
    run = Run.of(uc)
    ask = {
        "requirement": {"kind": "sla", "gate": "go_live"},
        "justification": WHY,
        "expires_at": (datetime.now(UTC) + timedelta(days=10)).isoformat(),
    }
    await matrix.refused(run, "POST", "/waivers", ask, SENDERS["request_waiver"])
    waiver = await matrix.succeeds(run, "POST", "/waivers", ask, "tom", 201)
    decisions = f"/waivers/{waiver.get('id', 'w-1')}/decisions"
    await matrix.refused(run, "POST", decisions, {"decision": "grant"}, GRANTORS[tier])
    # every seat filled: one risk approver (low); both, and bo for the business owner (high)
    for person in ("rita",) if tier == "low" else ("rita", "raj", "bo"):
        await matrix.succeeds(run, "POST", decisions, {"decision": "grant"}, person)
    granted = await runs.state(api, run.path)
    if not any(w["status"] == "granted" for w in granted["waivers"]):
        matrix.wrong.append(f"the exception on {run.wid} was not granted: {granted['waivers']}")

    live_run = Run.of(await runs.walk(api, granted, "live", approvers=WALKS[tier][0]))
    runtime = {"bundle": BUNDLE}
    await matrix.refused(live_run, "POST", "/runtime", runtime, SENDERS["report_runtime"])
    for person in sorted(SENDERS["report_runtime"]):
        state = await matrix.succeeds(live_run, "POST", "/runtime", runtime, person)
        if state and state["runtime"]["matches"] is not True:
            matrix.wrong.append(f"the approved bundle reported by {person} did not match")
    matrix.check()


@pytest.mark.parametrize("tier", TIERS)
async def test_override_a_stalled_gate(expiring_api: httpx.AsyncClient, tier: str) -> None:
    matrix = Matrix(expiring_api, [])
    uc = await runs.walk(
        expiring_api, await start(expiring_api, tier), "risk_signoff", approvers=WALKS[tier][0]
    )
    run = Run.of(uc)
    for _ in range(100):  # 10 s
        if (await runs.state(expiring_api, run.path))["stage"] == "stalled":
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"risk_signoff of {run.wid} did not expire")
    override = {"justification": "payments outage: the fraud model must ship tonight"}
    route = "/gates/risk_signoff/override"
    await matrix.refused(run, "POST", route, override, SENDERS["override_gate"])
    state = await matrix.succeeds(run, "POST", route, override, "sam")
    matrix.check()
    assert state["override"]["by"] == "sam"
