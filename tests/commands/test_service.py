"""The command layer over a gateway double: authorization first, the Update second."""

from __future__ import annotations

from typing import Any

import pytest

from services.commands.errors import CommandRefused, ReplayUnresolved, RunNotFound
from services.commands.evidence import evidence_fingerprint
from services.commands.service import CommandService, Sender, raised_by_update, workflow_id
from tests.commands.fakes import (
    DIRECTORY,
    POLICY,
    WID,
    FakeGateway,
    change,
    facts_of,
    open_gate,
    view_of,
)
from tests.workflows.helpers import evidence
from workflows import policy
from workflows.model import (
    Channel,
    CommandName,
    Decision,
    Gate,
    GateDecision,
    Materiality,
    Refusal,
    ReopenGate,
    Severity,
    Stage,
    UseCaseCreate,
)

DIGESTS = ["a" * 64, "b" * 64]


def service(gateway: FakeGateway) -> CommandService:
    return CommandService(gateway, POLICY, DIRECTORY)  # type: ignore[arg-type]


def api(person: str, key: str | None = None) -> Sender:
    return Sender(person, Channel.API, key)


# every command, as (method name, args after the workflow id and sender); who may send it
COMMANDS: list[tuple[CommandName, str, tuple[Any, ...], str, str]] = [
    (CommandName.COMPLETE_STAGE, "complete_stage", (Stage.SCOPING,), "tom", "rita"),
    (CommandName.ADD_EVIDENCE, "add_evidence", ([evidence("design_doc")],), "dana", "bo"),
    (
        CommandName.DECIDE,
        "decide",
        (Gate.RISK_SIGNOFF, Decision.APPROVE),
        "rita",
        "dana",  # the delivery lead never decides risk_signoff
    ),
    (CommandName.REOPEN_GATE, "reopen_gate", (Gate.RISK_SIGNOFF,), "dana", "tom"),
    (CommandName.CANCEL, "cancel", (), "bo", "rita"),
    (CommandName.REPORT_INCIDENT, "report_incident", (Severity.SEV2, "slow"), "olga", "rita"),
    (CommandName.SUSPEND, "suspend", ("stop-ship",), "tom", "rita"),
    (CommandName.RESUME, "resume", (), "olga", "dana"),
    (CommandName.RAISE_CHANGE, "raise_change", ("swap", Materiality.MINOR), "dana", "olga"),
    (CommandName.RETIRE, "retire", (), "bo", "tom"),
]


@pytest.mark.parametrize(
    ("command", "method", "args", "allowed", "refused"),
    COMMANDS,
    ids=[c[0].value for c in COMMANDS],
)
async def test_each_command_is_authorized_before_anything_is_sent(
    command: CommandName, method: str, args: tuple[Any, ...], allowed: str, refused: str
) -> None:
    gateway = FakeGateway()
    # a closed run: the state would refuse anyone, but the caller who may never send the
    # command hears "not eligible" first, and nothing reaches the workflow
    gateway.views[WID] = view_of("cancelled", closed=True, changes=[change(1, allowed, None)])
    gateway.views[f"{WID}-change-1"] = view_of("change_approval", wid=f"{WID}-change-1")
    commands = service(gateway)
    with pytest.raises(CommandRefused) as refusal:
        await getattr(commands, method)(WID, api(refused), *args)
    assert refusal.value.refusal == Refusal.NOT_ELIGIBLE
    assert gateway.sent == []

    await getattr(commands, method)(WID, api(allowed, "k-1"), *args)
    [sent] = gateway.sent
    assert (sent.workflow_id, sent.command) == (WID, command)
    assert sent.arg.actor == allowed
    assert sent.arg.channel == Channel.API
    assert sent.update_id == f"{command.value}:{allowed}:k-1"


def test_update_ids_are_scoped_to_caller_and_command() -> None:
    rita, raj = Sender("rita", Channel.API, "k"), Sender("raj", Channel.API, "k")
    assert rita.update_id(CommandName.DECIDE) == rita.update_id(CommandName.DECIDE)
    assert rita.update_id(CommandName.DECIDE) != raj.update_id(CommandName.DECIDE)
    assert rita.update_id(CommandName.DECIDE) != rita.update_id(CommandName.CANCEL)
    keyless = Sender("rita", Channel.API)
    assert keyless.update_id(CommandName.DECIDE) != keyless.update_id(CommandName.DECIDE)


async def test_decide_prechecks_only_runs_pinned_to_the_loaded_policy() -> None:
    gateway = FakeGateway(facts_by_id={WID: facts_of(sha="f" * 64)})
    # another policy version: the workflow alone judges, so the Update goes
    await service(gateway).decide(WID, api("dana"), Gate.RISK_SIGNOFF, Decision.APPROVE)
    assert len(gateway.sent) == 1


async def test_decide_on_a_gate_off_the_path_is_left_to_the_workflow() -> None:
    gateway = FakeGateway()
    gateway.answer = CommandRefused(Refusal.GATE_NOT_OPEN, "gate scope_approval is not open")
    with pytest.raises(CommandRefused) as refusal:
        await service(gateway).decide(WID, api("bo"), Gate.SCOPE_APPROVAL, Decision.APPROVE)
    assert refusal.value.refusal == Refusal.GATE_NOT_OPEN
    assert len(gateway.sent) == 1


async def test_reopen_names_the_gate_and_reads_nothing_first() -> None:
    gateway = FakeGateway()
    gateway.views.clear()  # a read would fail: the workflow's check_reopen decides
    gateway.answer = view_of("risk_signoff")
    await service(gateway).reopen_gate(WID, api("dana"), Gate.OPS_HANDOFF, comment="again")
    [sent] = gateway.sent
    assert sent.arg == ReopenGate(
        actor="dana", gate=Gate.OPS_HANDOFF, comment="again", channel=Channel.API
    )


async def test_a_run_without_a_pinned_roster_is_left_to_the_workflow() -> None:
    facts = facts_of()
    gateway = FakeGateway(facts_by_id={WID: type(facts)(WID, {}, "", "", "")})
    await service(gateway).retire(WID, api("anyone"))
    assert len(gateway.sent) == 1


async def test_raise_change_finds_the_change_by_its_update_id() -> None:
    gateway = FakeGateway()
    sender = api("dana", "raise-1")
    uid = sender.update_id(CommandName.RAISE_CHANGE)
    # tom raised a change at the same moment: "the newest by the caller" would be wrong too
    gateway.answer = view_of(
        "live",
        changes=[change(1, "dana", uid), change(2, "dana", "raise_change:dana:other")],
    )
    gateway.views[f"{WID}-change-1"] = view_of("change_approval", wid=f"{WID}-change-1")
    raised = await service(gateway).raise_change(WID, sender, "swap", Materiality.MINOR)
    assert raised.change_id == "change-1"
    assert raised.view.id == f"{WID}-change-1"


def test_change_lookup_falls_back_for_workflows_that_record_no_update_id() -> None:
    parent = view_of("live", changes=[change(1, "dana", None), change(2, "tom", None)])
    found = raised_by_update(parent, "raise_change:dana:k", "dana")
    assert found is not None
    assert found.change_id == "change-1"
    marked = view_of("live", changes=[change(1, "dana", "raise_change:dana:other")])
    assert raised_by_update(marked, "raise_change:dana:k", "dana") is None


async def test_a_replayed_key_whose_change_cannot_be_found_is_a_conflict() -> None:
    gateway = FakeGateway()
    gateway.answer = view_of("live", changes=[change(1, "dana", "raise_change:dana:other")])
    with pytest.raises(ReplayUnresolved):
        await service(gateway).raise_change(WID, api("dana", "k"), "swap", Materiality.MINOR)


def test_workflow_ids_come_from_one_place() -> None:
    assert workflow_id("kyc") == WID
    assert workflow_id(WID) == WID
    assert workflow_id("kyc", "change-3") == f"{WID}-change-3"
    for bad in ("change-0", "bogus", "change-1/../x", "1"):
        with pytest.raises(RunNotFound):
            workflow_id("kyc", bad)


async def test_an_approval_binds_to_the_digests_its_card_showed() -> None:
    gateway = FakeGateway()
    gateway.views[WID] = view_of("risk_signoff", gate=open_gate(digests=DIGESTS))
    commands = service(gateway)
    seen = evidence_fingerprint(DIGESTS)
    await commands.approve_as_seen(
        WID, Sender("rita", Channel.SLACK, "s-1"), Gate.RISK_SIGNOFF, 1, seen
    )
    [sent] = gateway.sent
    assert sent.arg == GateDecision(
        actor="rita",
        gate=Gate.RISK_SIGNOFF,
        decision=Decision.APPROVE,
        evidence_digests=DIGESTS,
        channel=Channel.SLACK,
    )


@pytest.mark.parametrize(
    ("gate", "round_", "fingerprint", "refusal"),
    [
        (open_gate(digests=DIGESTS), 1, evidence_fingerprint(["c" * 64]), Refusal.EVIDENCE_CHANGED),
        (
            open_gate(round_=2, digests=DIGESTS),
            1,
            evidence_fingerprint(DIGESTS),
            Refusal.GATE_NOT_OPEN,
        ),
    ],
    ids=["evidence-changed", "another-round"],
)
async def test_a_card_that_no_longer_shows_the_gate_sends_nothing(
    gate: Any, round_: int, fingerprint: str, refusal: Refusal
) -> None:
    gateway = FakeGateway()
    gateway.views[WID] = view_of("risk_signoff", gate=gate)
    with pytest.raises(CommandRefused) as refused:
        await service(gateway).approve_as_seen(
            WID, Sender("rita", Channel.SLACK, "s-1"), Gate.RISK_SIGNOFF, round_, fingerprint
        )
    assert refused.value.refusal == refusal
    assert gateway.sent == []


async def test_an_approval_for_a_gate_no_longer_open_goes_for_the_workflow_to_answer() -> None:
    # a redelivered click gets its first answer back from the workflow (same update id)
    gateway = FakeGateway()
    gateway.views[WID] = view_of("ops_handoff", gate=open_gate("ops_handoff"))
    await service(gateway).approve_as_seen(
        WID, Sender("rita", Channel.SLACK, "s-1"), Gate.RISK_SIGNOFF, 1, "0" * 16
    )
    [sent] = gateway.sent
    assert sent.arg.evidence_digests is None
    assert sent.update_id == "decide:rita:s-1"


async def test_an_ineligible_approval_from_a_card_reads_and_sends_nothing() -> None:
    gateway = FakeGateway()
    gateway.views.clear()
    with pytest.raises(CommandRefused) as refused:
        await service(gateway).approve_as_seen(
            WID, Sender("bo", Channel.SLACK, "s-1"), Gate.RISK_SIGNOFF, 1, "0" * 16
        )
    assert refused.value.refusal == Refusal.NOT_ELIGIBLE
    assert gateway.sent == []


async def test_start_plans_from_the_request_and_the_loaded_policy() -> None:
    gateway = FakeGateway()
    body = {
        "key": "fraud-alerts",
        "title": "Fraud alerts",
        "risk_tier": "low",
        "owners": {
            "business_owner": "bo",
            "technical_owner": "tom",
            "operations_owner": "olga",
            "risk_approvers": ["group:risk-committee"],
            "escalation_owner": "eve",
        },
    }
    view, created = await service(gateway).start(UseCaseCreate.model_validate(body), api("dana"))
    [plan] = gateway.started
    assert created
    assert plan.workflow_id == "usecase-fraud-alerts"
    assert plan.input.owners.delivery_lead == "dana"
    assert plan.input.policy.sha256 == POLICY.sha256


# --------------------------------------------------------------------------- need-to-know


def person(person_id: str) -> policy.Person:
    found = DIRECTORY.get(person_id)
    assert found is not None
    return found


@pytest.mark.parametrize("reader", ["dana", "bo", "tom", "olga", "rita", "raj", "eve", "carla"])
async def test_the_runs_people_and_reader_groups_may_read_it(reader: str) -> None:
    facts = await service(FakeGateway()).readable(WID, person(reader))
    assert facts.workflow_id == WID


@pytest.mark.parametrize("outsider", ["priya", "lee"])
async def test_anyone_else_reads_it_as_an_unknown_run(outsider: str) -> None:
    commands = service(FakeGateway())
    with pytest.raises(RunNotFound) as hidden:
        await commands.readable(WID, person(outsider))
    assert hidden.value.detail == f"no use case '{WID}'"
    assert hidden.value.code == RunNotFound.CODE
    assert not commands.reads_every_run(person(outsider))
    assert commands.reads_every_run(person("carla"))  # compliance, a policy reader group
    # the store's copy of a roster (role names as strings) is judged by the same rule
    assert commands.may_read({"risk_approver": ["rita"]}, person("rita"))
    assert not commands.may_read({"risk_approver": ["rita"]}, person(outsider))
