"""One trip to the store per command (patch ``one-trip-shipping``).

A command's facts and the read model's row are stored by one local activity inside the
workflow task that recorded them, before the command answers; search attributes are upserted
only when they change; a worker whose only channel is its log schedules no notification
activity; a run that starts on this code records one patch marker, not one per patch.
"""

from __future__ import annotations

from collections import Counter

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from services.store.db import session_scope
from services.store.ledger import LedgerRepository
from services.store.registry import RegistryRepository
from services.worker.main import pure_workflow_modules
from tests.harness import ReleaseHarness
from tests.workflows.drive import complete, pass_gate
from tests.workflows.helpers import make_input
from workflows.model import UseCaseView
from workflows.versions import ONE_TRIP

LOW_PATH = ("scoping", "specification", "implementation", "validation")
LOW_GATES = ("risk_signoff", "ops_handoff", "go_live")


async def _stored(release: ReleaseHarness, wid: str) -> tuple[int, int | None]:
    """(ledger entries, the read model's event id) as the store holds them now."""
    async with session_scope(release.sessionmaker) as session:
        entries = len(await LedgerRepository(session).entries(wid))
        row = await RegistryRepository(session).get(wid)
    return entries, row.event_id if row else None


async def _history(handle: WorkflowHandle) -> list[tuple[str, str]]:
    events = []
    async for event in handle.fetch_history_events():
        name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        detail = ""
        if name == "MARKER_RECORDED":
            detail = event.marker_recorded_event_attributes.marker_name
        elif name == "ACTIVITY_TASK_SCHEDULED":
            detail = event.activity_task_scheduled_event_attributes.activity_type.name
        elif name == "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES":
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
            detail = ",".join(sorted(fields.indexed_fields))
        events.append((name, detail))
    return events


async def test_each_command_answers_once_its_facts_are_stored(release: ReleaseHarness) -> None:
    handle = await release.start(make_input("low"))
    wid = handle.id
    views: list[UseCaseView] = []
    for stage in LOW_PATH:
        views.append(await complete(handle, stage, "low"))
        # no waiting: the ledger and the read model hold the command's facts already
        assert await _stored(release, wid) == (views[-1].event_count, views[-1].event_count)
    for gate in LOW_GATES:
        views.append(await pass_gate(handle, gate, "low"))
        assert await _stored(release, wid) == (views[-1].event_count, views[-1].event_count)
    assert views[-1].stage.value == "live"
    async with session_scope(release.sessionmaker) as session:
        verified = await LedgerRepository(session).verify(wid)
    assert verified.ok


async def test_a_low_tier_path_leaves_a_short_history(release: ReleaseHarness) -> None:
    handle = await release.start(make_input("low"))
    for stage in LOW_PATH:
        await complete(handle, stage, "low")
    for gate in LOW_GATES:
        await pass_gate(handle, gate, "low")

    events = await _history(handle)
    kinds = Counter(name for name, _ in events)
    # the store is written by local activities; the log-only worker sends no notification
    # activity; nothing ships the ledger or the read model as activities of their own
    assert [d for n, d in events if n == "ACTIVITY_TASK_SCHEDULED"] == []
    stores = [d for n, d in events if n == "MARKER_RECORDED" and "local_activity" in d]
    # at most one per workflow task that recorded facts: the start and each of the 7 commands
    # (a command that arrives while the start's task runs shares its trip)
    assert 7 <= len(stores) <= 8
    # a run of a code generation takes its paths from its input: no patch marker (each would
    # cost the marker and the TemporalChangeVersion upsert the SDK adds to it)
    assert [d for n, d in events if n == "MARKER_RECORDED" and "patch" in d] == []
    upserts = [d for n, d in events if n == "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"]
    assert "TemporalChangeVersion" not in upserts
    # at most one upsert per workflow task, and only when what the run carries changed (the
    # start here sets no search attribute; every command moves the stage)
    assert len(upserts) <= 8
    # one workflow task per command: 3 events each, the start's included
    assert kinds["WORKFLOW_TASK_COMPLETED"] <= 9
    # the deadline timer is kept across commands and replaced only by an earlier deadline:
    # the ops hand-off's SLA (36 h) ends before the risk sign-off's (48 h), so its gate
    # replaces the timer; go-live's SLA and the periodic review end later and keep it
    assert kinds["TIMER_STARTED"] == 2, kinds
    assert kinds["TIMER_CANCELED"] == 1, kinds
    assert len(events) <= 60, kinds  # was about 115 with an activity per store write, 65
    # with a patch marker and a timer cancelled and started again by each gate


async def test_a_run_before_generations_keeps_its_patch_marker(release: ReleaseHarness) -> None:
    """A run started without a generation (as front doors did before them) still chooses its
    paths by patch markers, so histories recorded then replay unchanged."""
    handle = await release.start(make_input("low").model_copy(update={"generation": None}))
    for stage in LOW_PATH:
        await complete(handle, stage, "low")
    await pass_gate(handle, "risk_signoff", "low")
    events = await _history(handle)
    assert [d for n, d in events if n == "MARKER_RECORDED" and "patch" in d] == ["core_patch"]
    kinds = Counter(name for name, _ in events)
    assert kinds["TIMER_STARTED"] == 2, kinds
    assert kinds["TIMER_CANCELED"] == 1, kinds


def test_the_workflow_module_alone_is_imported_per_run() -> None:
    """The pure modules pass through the sandbox (imported once per worker, not per run)."""
    modules = pure_workflow_modules()
    assert "workflows.release" not in modules
    assert {"workflows.model", "workflows.policy", "workflows.state"} <= set(modules)
    assert ONE_TRIP == "one-trip-shipping"
