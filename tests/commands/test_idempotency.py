"""The command layer binds each idempotency key to its first request, and an approval to the
evidence its approver saw (over a gateway double)."""

from __future__ import annotations

from typing import Any

import pytest

from services.commands.errors import (
    CommandRefused,
    EvidenceChangedSince,
    IdempotencyKeyReused,
    PreconditionRequired,
)
from services.commands.evidence import (
    bound_digests,
    etag_matches,
    evidence_etag,
    evidence_fingerprint,
    state_etag,
)
from services.commands.idempotency import body_document, request_sha256
from services.commands.service import CommandService, Sender
from tests.commands.fakes import (
    DIRECTORY,
    POLICY,
    WID,
    FakeGateway,
    FakeIdempotencyKeys,
    change,
    open_gate,
    view_of,
)
from tests.commands.test_service import COMMANDS
from tests.workflows.helpers import evidence
from workflows.model import (
    Channel,
    CommandName,
    Decision,
    DeputiesIn,
    DeputyIn,
    EvidenceRecord,
    Gate,
    Refusal,
    Role,
)

DIGESTS = ["b" * 64, "a" * 64]
ROUTE = "POST /v1/use-cases/{use_case_id}/cancel"


def keyed(gateway: FakeGateway) -> tuple[CommandService, FakeIdempotencyKeys]:
    keys = FakeIdempotencyKeys()
    commands = CommandService(gateway, POLICY, DIRECTORY, idempotency_keys=keys)  # type: ignore[arg-type]
    return commands, keys


def sender(person: str, key: str | None = "k-1", digest: str | None = "1" * 64) -> Sender:
    return Sender(person, Channel.API, key, digest)


# --------------------------------------------------------------------------- request digests


def test_a_request_digest_is_canonical_json_of_route_params_body_and_if_match() -> None:
    params = {"use_case_id": WID}
    base = request_sha256(ROUTE, params, {"reason": "x", "n": 1})
    assert base == request_sha256(ROUTE, dict(params), body_document(b' {"n": 1,\n "reason":"x"}'))
    for other in (
        request_sha256(ROUTE.replace("cancel", "retire"), params, {"reason": "x", "n": 1}),
        request_sha256(ROUTE, {"use_case_id": WID + "-change-1"}, {"reason": "x", "n": 1}),
        request_sha256(ROUTE, params, {"reason": "y", "n": 1}),
        request_sha256(ROUTE, params, {"reason": "x", "n": 1}, if_match='"e"'),
    ):
        assert other != base


def test_a_body_is_its_json_or_stands_for_its_bytes() -> None:
    assert body_document(b"") is None
    assert body_document(b"  ") is None
    assert body_document(b'{"a": [1, 2]}') == {"a": [1, 2]}
    assert body_document(b"{nope") != body_document(b"{nope!")


# --------------------------------------------------------------------------- keys bound


@pytest.mark.parametrize(
    ("command", "method", "args", "allowed", "refused"),
    COMMANDS,
    ids=[c[0].value for c in COMMANDS],
)
async def test_every_command_binds_its_key_to_its_first_request(
    command: CommandName, method: str, args: tuple[Any, ...], allowed: str, refused: str
) -> None:
    gateway = FakeGateway()
    gateway.views[WID] = view_of(
        "cancelled", changes=[change(1, allowed, f"{command}:{allowed}:k-1")]
    )
    gateway.views[f"{WID}-change-1"] = view_of("change_approval", wid=f"{WID}-change-1")
    commands, keys = keyed(gateway)

    await getattr(commands, method)(WID, sender(allowed), *args)
    await getattr(commands, method)(WID, sender(allowed), *args)  # the same request again
    assert [s.update_id for s in gateway.sent] == [f"{command.value}:{allowed}:k-1"] * 2
    assert keys.bindings == {f"{command.value}:{allowed}:k-1": "1" * 64}

    with pytest.raises(IdempotencyKeyReused):
        await getattr(commands, method)(WID, sender(allowed, digest="2" * 64), *args)
    assert len(gateway.sent) == 2  # nothing sent

    # a caller who may never send it hears so first, and binds nothing
    with pytest.raises(CommandRefused):
        await getattr(commands, method)(WID, sender(refused, digest="2" * 64), *args)
    assert set(keys.bindings) == {f"{command.value}:{allowed}:k-1"}


async def test_set_deputies_binds_its_key() -> None:
    gateway = FakeGateway()
    commands, keys = keyed(gateway)
    deputies: DeputiesIn = {Role.TECHNICAL_OWNER: [DeputyIn(who="lee")]}
    await commands.set_deputies(WID, sender("bo"), deputies)
    with pytest.raises(IdempotencyKeyReused):
        await commands.set_deputies(WID, sender("bo", digest="2" * 64), deputies)
    assert len(gateway.sent) == 1
    assert keys.bindings == {"set_deputies:bo:k-1": "1" * 64}


async def test_keys_are_the_callers_own_and_unkeyed_requests_bind_nothing() -> None:
    gateway = FakeGateway()
    commands, keys = keyed(gateway)
    await commands.cancel(WID, sender("bo", digest="1" * 64))
    await commands.cancel(WID, sender("dana", digest="2" * 64))  # dana's k-1 is not bo's
    await commands.cancel(WID, sender("dana", key=None, digest=None))
    await commands.cancel(WID, Sender("dana", Channel.SLACK, "s-1"))  # a key, no request digest
    assert keys.bindings == {"cancel:bo:k-1": "1" * 64, "cancel:dana:k-1": "2" * 64}
    assert len(gateway.sent) == 4


# --------------------------------------------------------------------------- evidence seen


def gate_view() -> FakeGateway:
    gateway = FakeGateway()
    gateway.views[WID] = view_of("risk_signoff", gate=open_gate(digests=DIGESTS))
    return gateway


def test_the_etag_is_of_the_set_an_approval_binds_to() -> None:
    view = view_of("risk_signoff", gate=open_gate(digests=DIGESTS))
    assert bound_digests(view) == sorted(DIGESTS)
    assert (
        state_etag(view)
        == evidence_etag(reversed(DIGESTS))
        == evidence_etag([d.upper() for d in DIGESTS])
    )
    assert state_etag(view)[1:17] == evidence_fingerprint(DIGESTS)
    # no gate open: the run's evidence
    item = evidence("design_doc").model_dump()
    record = EvidenceRecord.model_validate(
        {**item, "scope": "scoping", "round": 1, "submitted_by": "dana", "at": view.started_at}
    )
    idle = view_of("scoping").model_copy(update={"evidence": [record, record]})
    assert bound_digests(idle) == [item["sha256"]]
    assert state_etag(view_of("scoping")) == evidence_etag([])


def test_if_match_compares_strongly() -> None:
    etag = evidence_etag(DIGESTS)
    assert etag_matches(etag, etag)
    assert etag_matches(f'"x", {etag}', etag)
    assert not etag_matches(f"W/{etag}", etag)
    assert not etag_matches("*", etag)
    assert not etag_matches(etag.strip('"'), etag)


async def test_an_approval_naming_nothing_is_refused_with_the_current_set() -> None:
    gateway = gate_view()
    commands, _ = keyed(gateway)
    for if_match in (None, "*"):
        with pytest.raises(PreconditionRequired) as refused:
            await commands.decide_as_seen(
                WID, sender("rita"), Gate.RISK_SIGNOFF, Decision.APPROVE, if_match=if_match
            )
        assert refused.value.evidence_digests == sorted(DIGESTS)
        assert refused.value.etag == evidence_etag(DIGESTS)
    assert gateway.sent == []


async def test_an_approval_with_the_etag_sends_the_digests_it_stands_for() -> None:
    gateway = gate_view()
    commands, _ = keyed(gateway)
    await commands.decide_as_seen(
        WID, sender("rita"), Gate.RISK_SIGNOFF, Decision.APPROVE, if_match=evidence_etag(DIGESTS)
    )
    [sent] = gateway.sent
    assert sent.arg.evidence_digests == sorted(DIGESTS)


async def test_a_stale_etag_is_refused_unless_this_request_was_answered_before() -> None:
    gateway = gate_view()
    commands, _ = keyed(gateway)
    stale = evidence_etag(["c" * 64])
    with pytest.raises(EvidenceChangedSince) as refused:
        await commands.decide_as_seen(
            WID, sender("rita"), Gate.RISK_SIGNOFF, Decision.APPROVE, if_match=stale
        )
    assert refused.value.evidence_digests == sorted(DIGESTS)
    assert gateway.sent == []

    # the first request went with the ETag of its time; the evidence changed since
    answered = view_of("risk_signoff", gate=open_gate(digests=["c" * 64]))
    gateway.views[WID] = answered
    await commands.decide_as_seen(
        WID, sender("rita", key="k-2"), Gate.RISK_SIGNOFF, Decision.APPROVE, if_match=stale
    )
    gateway.views[WID] = view_of("risk_signoff", gate=open_gate(digests=DIGESTS))
    gateway.answer = answered
    again = await commands.decide_as_seen(
        WID, sender("rita", key="k-2"), Gate.RISK_SIGNOFF, Decision.APPROVE, if_match=stale
    )
    assert again is answered
    assert len(gateway.sent) == 1  # answered from the run's record, not sent again
    with pytest.raises(IdempotencyKeyReused):  # the same key, another request
        await commands.decide_as_seen(
            WID,
            sender("rita", key="k-2", digest="2" * 64),
            Gate.RISK_SIGNOFF,
            Decision.APPROVE,
            if_match=stale,
        )


async def test_digests_and_other_decisions_go_for_the_workflow_to_judge() -> None:
    gateway = gate_view()
    gateway.answer = gateway.views.pop(WID)  # nothing is read first
    commands, _ = keyed(gateway)
    await commands.decide_as_seen(
        WID, sender("rita", key=None), Gate.RISK_SIGNOFF, Decision.APPROVE, evidence_digests=DIGESTS
    )
    await commands.decide_as_seen(
        WID, sender("rita", key=None), Gate.RISK_SIGNOFF, Decision.REJECT, comment="no"
    )
    assert [s.arg.evidence_digests for s in gateway.sent] == [DIGESTS, None]


async def test_who_may_not_decide_is_told_so_before_the_evidence() -> None:
    gateway = gate_view()
    gateway.views.clear()
    commands, _ = keyed(gateway)
    with pytest.raises(CommandRefused) as refused:
        await commands.decide_as_seen(WID, sender("dana"), Gate.RISK_SIGNOFF, Decision.APPROVE)
    assert refused.value.refusal == Refusal.NOT_ELIGIBLE
    assert gateway.sent == []
