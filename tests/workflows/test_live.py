"""Life after go-live on the real dev server: incidents, stop-ship, resume, changes, retire,
signed deploy/rollback hooks and continue-as-new."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError

from services.store.ledger import LedgerRepository
from tests.harness import HOOK_SECRET, ReleaseHarness
from tests.workflows.drive import advance_to, complete, decide, pass_gate, refusal_of
from tests.workflows.helpers import make_input
from tests.workflows.test_release import wait_ledger
from workflows.model import (
    Gate,
    Hooks,
    Materiality,
    RaiseChange,
    ReportIncident,
    Resume,
    Retire,
    RunLimits,
    Severity,
    Stage,
    Suspend,
    UseCaseView,
)
from workflows.release import UseCaseRelease


class HookReceiver:
    """A real HTTP endpoint on loopback that records hook calls and checks their signature."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                timestamp = self.headers["X-ReleaseGate-Timestamp"]
                expected = (
                    "sha256="
                    + hmac.new(
                        HOOK_SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256
                    ).hexdigest()
                )
                receiver.calls.append(
                    {
                        "path": self.path,
                        "body": json.loads(body),
                        "signed": hmac.compare_digest(
                            expected, self.headers.get("X-ReleaseGate-Signature", "")
                        ),
                        "key": self.headers["Idempotency-Key"],
                    }
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def hooks(self) -> Hooks:
        return Hooks(deploy_url=f"{self.url}/deploy", rollback_url=f"{self.url}/rollback")

    async def wait_for(self, path: str, count: int = 1) -> list[dict[str, Any]]:
        for _ in range(100):
            got = [c for c in self.calls if c["path"] == path]
            if len(got) >= count:
                return got
            await asyncio.sleep(0.05)
        raise AssertionError(f"{path} called {len(got)} times, expected {count}")


@pytest.fixture(scope="module")
def receiver() -> Iterator[HookReceiver]:
    r = HookReceiver()
    yield r
    r.server.shutdown()


# per-run limits that let a test's flood of commands through (the policy's default refuses it)
FLOOD_ALLOWED = RunLimits(max_incidents_per_reporter=10_000)


async def live_use_case(
    release: ReleaseHarness, receiver: HookReceiver | None = None, tier: str = "low", **kw: Any
) -> WorkflowHandle:
    hooks = receiver.hooks() if receiver else None
    handle = await release.start(make_input(tier, hooks=hooks, **kw))
    await advance_to(handle, "live", tier)
    return handle


async def events_of(handle: WorkflowHandle, kind: str) -> list[Any]:
    return [e for e in await handle.query(UseCaseRelease.events) if e.kind == kind]


async def test_go_live_calls_the_signed_deploy_hook(
    release: ReleaseHarness, receiver: HookReceiver
) -> None:
    handle = await live_use_case(release, receiver)
    calls = [
        c for c in await receiver.wait_for("/deploy", 1) if c["body"]["workflow_id"] == handle.id
    ]
    assert len(calls) == 1
    assert calls[0]["signed"]
    assert calls[0]["body"]["live_version"] == 1
    for _ in range(50):
        if await events_of(handle, "hook_called"):
            break
        await asyncio.sleep(0.05)
    recorded = await events_of(handle, "hook_called")
    assert len(recorded) == 1


async def test_incidents_and_sev1_suspends(release: ReleaseHarness, receiver: HookReceiver) -> None:
    handle = await live_use_case(release, receiver)
    err = await refusal_of(
        handle.execute_update(
            UseCaseRelease.report_incident,
            ReportIncident(actor="priya", severity=Severity.SEV2, summary="slow"),
        )
    )
    assert err.type == "not_eligible"

    view = await handle.execute_update(
        UseCaseRelease.report_incident,
        ReportIncident(actor="olga", severity=Severity.SEV3, summary="latency p99 up"),
    )
    assert view.stage == Stage.LIVE
    assert [i.severity for i in view.incidents] == [Severity.SEV3]

    view = await handle.execute_update(
        UseCaseRelease.report_incident,
        ReportIncident(actor="olga", severity=Severity.SEV1, summary="wrong denials"),
    )
    assert view.stage == Stage.SUSPENDED
    assert view.incidents[-1].suspended
    rollbacks = [
        c for c in await receiver.wait_for("/rollback") if c["body"]["workflow_id"] == handle.id
    ]
    assert len(rollbacks) == 1
    assert rollbacks[0]["signed"]


async def test_suspend_resume_cycle(release: ReleaseHarness, receiver: HookReceiver) -> None:
    handle = await live_use_case(release, receiver)

    err = await refusal_of(
        handle.execute_update(
            UseCaseRelease.suspend, Suspend(actor="rita", reason="I think it is wrong")
        )
    )
    assert err.type == "not_eligible"
    err = await refusal_of(handle.execute_update(UseCaseRelease.resume, Resume(actor="olga")))
    assert err.type == "wrong_stage"

    view = await handle.execute_update(
        UseCaseRelease.suspend, Suspend(actor="olga", reason="drift alarm")
    )
    assert view.stage == Stage.SUSPENDED
    err = await refusal_of(
        handle.execute_update(UseCaseRelease.suspend, Suspend(actor="bo", reason="again"))
    )
    assert err.type == "wrong_stage"

    view = await handle.execute_update(UseCaseRelease.resume, Resume(actor="tom", reason="fixed"))
    assert view.stage == Stage.SUSPENDED
    assert view.open_gate is not None
    assert view.open_gate.gate == Gate.RESUME_APPROVAL
    assert view.open_gate.eligible == ["bo", "raj", "rita"]
    err = await refusal_of(handle.execute_update(UseCaseRelease.resume, Resume(actor="tom")))
    assert err.type == "wrong_stage"

    await decide(handle, "rita", "resume_approval")
    view = await decide(handle, "bo", "resume_approval")
    assert view.stage == Stage.LIVE
    assert view.open_gate is None
    assert [e.kind for e in await handle.query(UseCaseRelease.events)][-3:].count("resumed") == 1


async def test_retire_by_business_owner_only(release: ReleaseHarness) -> None:
    handle = await live_use_case(release)
    err = await refusal_of(handle.execute_update(UseCaseRelease.retire, Retire(actor="tom")))
    assert err.type == "not_eligible"
    view = await handle.execute_update(UseCaseRelease.retire, Retire(actor="bo", reason="sunset"))
    assert view.stage == Stage.RETIRED
    assert view.closed
    assert (await handle.result()).outcome == "retired"


async def test_live_verbs_refused_before_live(release: ReleaseHarness) -> None:
    handle = await release.start(make_input("low"))
    await complete(handle, "scoping", "low")
    for update, cmd in [
        (UseCaseRelease.suspend, Suspend(actor="bo", reason="x")),
        (UseCaseRelease.retire, Retire(actor="bo")),
        (
            UseCaseRelease.raise_change,
            RaiseChange(actor="dana", summary="x", materiality=Materiality.MINOR),
        ),
        (
            UseCaseRelease.report_incident,
            ReportIncident(actor="olga", severity=Severity.SEV2, summary="x"),
        ),
    ]:
        err = await refusal_of(handle.execute_update(update, cmd))
        assert err.type == "wrong_stage", (update, err)


async def child(release: ReleaseHarness, view: UseCaseView) -> WorkflowHandle:
    return release.client.get_workflow_handle(view.changes[-1].workflow_id)


async def wait_change(handle: WorkflowHandle, status: str) -> UseCaseView:
    for _ in range(100):
        view = await handle.query(UseCaseRelease.state)
        if view.changes and view.changes[-1].status == status:
            return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"change never became {status}")


async def test_minor_change_by_technical_owner_is_approved_by_business_owner(
    release: ReleaseHarness,
) -> None:
    handle = await live_use_case(release)
    view = await handle.execute_update(
        UseCaseRelease.raise_change,
        RaiseChange(actor="tom", summary="prompt wording", materiality=Materiality.MINOR),
    )
    assert view.changes[-1].change_id == "change-1"
    change = await child(release, view)
    state = await change.query(UseCaseRelease.state)
    assert state.stage == Stage.CHANGE_APPROVAL
    assert state.open_gate is not None
    assert state.open_gate.eligible == ["bo"]  # never the requester
    err = await refusal_of(decide(change, "tom", "change_approval"))
    assert err.type == "not_eligible"
    state = await decide(change, "bo", "change_approval")
    assert state.closed
    assert state.outcome == "applied"

    view = await wait_change(handle, "applied")
    assert view.live_version == 2
    assert view.stage == Stage.LIVE
    assert await events_of(handle, "change_applied")
    # the change's own report, confirmed with its run, is never kept as a refused attempt
    assert await handle.query(UseCaseRelease.refused_attempts) == []


async def test_minor_change_by_delivery_lead_goes_to_technical_owner(
    release: ReleaseHarness,
) -> None:
    handle = await live_use_case(release)
    view = await handle.execute_update(
        UseCaseRelease.raise_change,
        RaiseChange(actor="dana", summary="threshold", materiality=Materiality.MINOR),
    )
    change = await child(release, view)
    state = await change.query(UseCaseRelease.state)
    assert state.open_gate is not None
    assert state.open_gate.eligible == ["tom"]
    await decide(change, "tom", "change_approval", "reject", "not now")
    view = await wait_change(handle, "rejected")
    assert view.live_version == 1


async def test_material_change_walks_validation_and_gates_while_live(
    release: ReleaseHarness,
) -> None:
    handle = await live_use_case(release, tier="medium")
    view = await handle.execute_update(
        UseCaseRelease.raise_change,
        RaiseChange(actor="dana", summary="new model", materiality=Materiality.MATERIAL),
    )
    change = await child(release, view)
    state = await change.query(UseCaseRelease.state)
    assert state.stage == Stage.VALIDATION
    assert state.change is not None
    state = await complete(change, "validation", "medium")
    assert state.stage == Stage.RISK_SIGNOFF
    assert (await handle.query(UseCaseRelease.state)).stage == Stage.LIVE  # still running
    for gate in ("risk_signoff", "ops_handoff", "go_live"):
        state = await pass_gate(change, gate, "medium")
    assert state.outcome == "applied"
    view = await wait_change(handle, "applied")
    assert view.live_version == 2


async def test_continue_as_new_keeps_state(release: ReleaseHarness) -> None:
    handle = await live_use_case(release, continue_as_new_after=100, limits=FLOOD_ALLOWED)
    first_run = (await handle.describe()).run_id
    for i in range(25):
        await handle.execute_update(
            UseCaseRelease.report_incident,
            ReportIncident(actor="olga", severity=Severity.SEV4, summary=f"blip {i}"),
        )
    for _ in range(100):
        desc = await handle.describe()
        if desc.run_id != first_run:
            break
        await asyncio.sleep(0.05)
    assert desc.run_id != first_run, "the run never continued as new"
    view = await handle.query(UseCaseRelease.state)
    assert view.stage == Stage.LIVE
    assert view.incident_count == 25
    # the view carries the latest few; the state crossed whole
    assert [i.summary for i in view.incidents] == [f"blip {i}" for i in range(20, 25)]
    assert view.live_version == 1
    events = await handle.query(UseCaseRelease.events)
    assert events[0].kind == "run_started"
    assert len(events) == view.event_count
    # still fully operable after the hand-over
    view = await handle.execute_update(
        UseCaseRelease.report_incident,
        ReportIncident(actor="olga", severity=Severity.SEV4, summary="after"),
    )
    assert view.incident_count == 26
    assert view.incidents[-1].id == "inc-26"


async def test_retiring_cancels_open_changes(release: ReleaseHarness) -> None:
    handle = await live_use_case(release)
    view = await handle.execute_update(
        UseCaseRelease.raise_change,
        RaiseChange(actor="dana", summary="never finished", materiality=Materiality.MINOR),
    )
    change = await child(release, view)
    view = await handle.execute_update(UseCaseRelease.retire, Retire(actor="bo"))
    assert view.changes[-1].status == "cancelled"
    for _ in range(100):
        desc = await change.describe()
        if desc.status is not None and desc.status.name == "CANCELED":
            break
        await asyncio.sleep(0.05)
    assert desc.status is not None
    assert desc.status.name == "CANCELED"


def test_a_state_carried_by_the_previous_version_restores() -> None:
    """Runs that continued-as-new before ReleaseState handed on ``carry`` (the old
    field-by-field shape, without the gate's seats): it restores whole and the seats of a gate
    it carries are computed on restore."""
    from tests.workflows.test_pure_modules import T0, new_run, to_gate
    from workflows import gates
    from workflows.state import ReleaseState, Run

    run = new_run(inp=make_input("low"))
    to_gate(run)
    state = run.state.model_dump(mode="json")
    legacy = {k: v for k, v in state.items() if k not in ("closed", "outcome", "outbox")}
    assert legacy["gate"] is not None
    legacy["gate"] = {k: v for k, v in legacy["gate"].items() if k not in ("seats", "pending")}
    restored = Run(run.inp, ReleaseState.model_validate(legacy), run.workflow_id)
    gates.ensure_seats(restored)
    assert restored.state.started_at == T0
    assert restored.state.event_id == run.state.event_id
    assert restored.state.gate is not None
    assert restored.state.gate.seats == run.state.gate.seats  # type: ignore[union-attr]
    assert restored.state.gate.pending == ["raj", "rita"]


async def test_a_client_cannot_start_a_run_with_a_carried_state(release: ReleaseHarness) -> None:
    """Only continue-as-new hands a state on: a start that carries one (forged owners, stage,
    approvals…) fails at once and records nothing."""
    from tests.workflows.test_pure_modules import new_run, to_live

    inp = make_input("low")
    run = new_run(inp=inp)
    to_live(run)
    forged = inp.model_copy(update={"state": run.state.model_dump(mode="json")})
    handle = await release.start(forged)
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    assert isinstance(info.value.cause, ApplicationError)
    assert info.value.cause.type == "unauthenticated"
    async with release.sessionmaker() as session:
        assert await LedgerRepository(session).entries(handle.id) == []


async def test_a_change_passed_while_suspended_waits_for_resume(
    release: ReleaseHarness, receiver: HookReceiver
) -> None:
    """Stop-ship cannot be bypassed: a change raised before a suspend and approved during it is
    not applied and deploys nothing until resume_approval passes (then exactly once)."""
    handle = await live_use_case(release, receiver)
    key = (await handle.query(UseCaseRelease.state)).key

    def calls(path: str) -> list[dict[str, Any]]:
        # the receiver is shared by the module's tests: count only this use case's calls
        return [c for c in receiver.calls if c["path"] == path and c["body"]["use_case"] == key]

    view = await handle.execute_update(
        UseCaseRelease.raise_change,
        RaiseChange(actor="dana", summary="new retrieval index", materiality=Materiality.MINOR),
    )
    change = await child(release, view)
    view = await handle.execute_update(
        UseCaseRelease.suspend, Suspend(actor="olga", reason="bad answers in production")
    )
    assert view.stage == Stage.SUSPENDED
    for _ in range(100):
        if calls("/rollback"):
            break
        await asyncio.sleep(0.05)
    assert len(calls("/rollback")) == 1
    deploys_before = len(calls("/deploy"))
    assert deploys_before == 1  # go-live

    await decide(change, "tom", "change_approval")
    view = await wait_change(handle, "awaiting_resume")
    assert view.stage == Stage.SUSPENDED
    assert view.live_version == 1  # nothing applied while suspended
    await asyncio.sleep(0.5)
    assert len(calls("/deploy")) == deploys_before
    assert not await events_of(handle, "change_applied")

    await handle.execute_update(UseCaseRelease.resume, Resume(actor="tom", reason="fixed"))
    await decide(handle, "rita", "resume_approval")
    view = await decide(handle, "bo", "resume_approval")
    assert view.stage == Stage.LIVE
    view = await wait_change(handle, "applied")
    assert view.live_version == 2
    for _ in range(100):
        if len(calls("/deploy")) > deploys_before:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # a second deploy, if one were coming, lands meanwhile
    after_resume = calls("/deploy")[deploys_before:]
    assert len(after_resume) == 1  # one deploy, of the resumed version with the change in it
    assert after_resume[0]["body"]["live_version"] == 2
    assert after_resume[0]["body"]["stage"] == "live"
    assert len(await events_of(handle, "change_applied")) == 1


async def test_continue_as_new_happens_under_steady_traffic(release: ReleaseHarness) -> None:
    """Issue 13: continue-as-new used to wait for a moment with nothing left to ship, which
    steady traffic never gives. The outbox now crosses with the state, so the hand-over happens
    while commands keep coming, and nothing accepted is lost on the way. The senders stop only
    after they have seen the hand-over (or after a cap the old code would reach first)."""
    # more incidents from one reporter than the policy's rate limit lets through
    handle = await live_use_case(release, continue_as_new_after=100, limits=FLOOD_ALLOWED)
    first_run = (await handle.describe()).run_id
    handed_over = asyncio.Event()
    sent = 0

    async def watcher() -> None:
        while (await handle.describe()).run_id == first_run:
            await asyncio.sleep(0.05)
        handed_over.set()

    async def sender() -> None:
        nonlocal sent
        after = 0
        for i in range(60):
            await handle.execute_update(
                UseCaseRelease.report_incident,
                ReportIncident(actor="olga", severity=Severity.SEV4, summary=f"blip {i}"),
            )
            sent += 1
            if handed_over.is_set():
                after += 1
                if after >= 5:
                    return

    watch = asyncio.create_task(watcher())
    await asyncio.gather(*(sender() for _ in range(6)))
    assert handed_over.is_set(), f"the run never continued as new while {sent} commands came"
    await watch
    # later runs handled some of the same traffic: the hand-over did not wait for it to stop
    first = release.client.get_workflow_handle(handle.id, run_id=first_run)
    in_first = [
        e
        for e in (await first.fetch_history()).events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]
    assert len(in_first) < sent, (len(in_first), sent)
    view = await handle.query(UseCaseRelease.state)
    assert view.stage == Stage.LIVE
    assert len(await events_of(handle, "incident_reported")) == sent
    await wait_ledger(release, handle.id, view.event_count)
