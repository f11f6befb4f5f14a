"""A gateway double for the command layer's unit tests: pinned facts in, Updates recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.commands.errors import CommandError
from services.commands.gateway import RunFacts
from services.commands.start import StartPlan
from tests.workflows.helpers import DIRECTORY, POLICY, make_input
from workflows.model import (
    ChangeSummary,
    CommandName,
    Gate,
    HistoryEvent,
    Materiality,
    OpenGate,
    PolicyRef,
    Stage,
    UseCaseView,
)

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
WID = "usecase-kyc"


def view_of(
    stage: str = "scoping",
    *,
    wid: str = WID,
    gate: OpenGate | None = None,
    closed: bool = False,
    changes: list[ChangeSummary] | None = None,
) -> UseCaseView:
    inp = make_input("low", key=wid.removeprefix("usecase-"))
    return UseCaseView(
        id=wid,
        key=inp.key,
        title="KYC onboarding assistant",
        summary="",
        risk_tier=inp.risk_tier,
        stage=Stage(stage),
        closed=closed,
        round=1,
        owners=inp.owners,
        open_gate=gate,
        required_evidence=[],
        evidence=[],
        policy=PolicyRef(version=POLICY.version, sha256=POLICY.sha256),
        stage_entered_at=T0,
        started_at=T0,
        updated_at=T0,
        event_count=3,
        changes=changes or [],
    )


def open_gate(gate: str = "risk_signoff", *, round_: int = 1, digests: list[str] | None = None):
    return OpenGate(
        gate=Gate(gate),
        eligible=["raj", "rita"],
        quorum=1,
        approvals=[],
        opened_at=T0,
        due_at=T0,
        round=round_,
        evidence_digests=digests or [],
    )


def change(number: int, raised_by: str, update_id: str | None) -> ChangeSummary:
    return ChangeSummary(
        change_id=f"change-{number}",
        workflow_id=f"{WID}-change-{number}",
        number=number,
        summary="swap the model",
        materiality=Materiality.MINOR,
        raised_by=raised_by,
        status="open",
        opened_at=T0,
        update_id=update_id,
    )


def facts_of(wid: str = WID, *, tier: str = "low", sha: str | None = None) -> RunFacts:
    inp = make_input(tier, key=wid.removeprefix("usecase-"))
    return RunFacts(wid, inp.roster, tier, sha or POLICY.sha256, "0" * 64)


@dataclass
class Sent:
    workflow_id: str
    command: CommandName
    arg: Any
    update_id: str | None


@dataclass
class FakeGateway:
    """Answers reads from ``views``; records each Update and answers it with ``answer``
    (a view, or a ``CommandError`` to raise)."""

    facts_by_id: dict[str, RunFacts] = field(default_factory=lambda: {WID: facts_of()})
    views: dict[str, UseCaseView] = field(default_factory=lambda: {WID: view_of()})
    answer: UseCaseView | CommandError | None = None
    sent: list[Sent] = field(default_factory=list)
    started: list[StartPlan] = field(default_factory=list)

    fresh_reads: int = 0

    async def facts(self, wid: str, *, fresh: bool = False) -> RunFacts:
        self.fresh_reads += fresh
        return self.facts_by_id[wid]

    async def state(self, wid: str) -> UseCaseView:
        return self.views[wid]

    async def history(self, wid: str) -> list[HistoryEvent]:
        return []

    async def execute(
        self, wid: str, command: CommandName, arg: Any, *, update_id: str | None = None
    ) -> UseCaseView:
        self.sent.append(Sent(wid, command, arg, update_id))
        if isinstance(self.answer, CommandError):
            raise self.answer
        return self.answer or self.views[wid]

    async def start(self, plan: StartPlan) -> tuple[UseCaseView, bool]:
        self.started.append(plan)
        return view_of(wid=plan.workflow_id), True

    async def outcome(self, wid: str, command: CommandName, update_id: str) -> UseCaseView | None:
        """The first answer of an Update sent (and not refused) with ``update_id``."""
        for sent in self.sent:
            if (sent.workflow_id, sent.command, sent.update_id) == (wid, command, update_id):
                return self.answer if isinstance(self.answer, UseCaseView) else self.views[wid]
        return None


@dataclass
class FakeIdempotencyKeys:
    """``IdempotencyKeys`` in a dict: the first digest bound to a scope stays."""

    bindings: dict[str, str] = field(default_factory=dict)

    async def bind(self, scope: str, request_sha256: str) -> str:
        return self.bindings.setdefault(scope, request_sha256)

    async def bound(self, scope: str) -> str | None:
        return self.bindings.get(scope)


__all__ = [
    "DIRECTORY",
    "POLICY",
    "FakeGateway",
    "FakeIdempotencyKeys",
    "Sent",
    "change",
    "facts_of",
    "open_gate",
    "view_of",
]
