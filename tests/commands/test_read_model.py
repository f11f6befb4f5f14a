"""The read model's row built from a command's answer is the workflow's own row for that
state (``workflows.presentation.registry_row``), at every step of a run's life."""

from __future__ import annotations

from services.commands.read_model import row_from_view
from tests.workflows.test_pure_modules import approve, complete, new_run, to_gate, to_live
from workflows import presentation
from workflows.model import Gate, Stage
from workflows.state import Run


def same_row(run: Run) -> None:
    expected = presentation.registry_row(run).model_copy(update={"event_id": 0})
    assert row_from_view(presentation.view(run)) == expected


def test_the_answer_makes_the_workflows_row() -> None:
    run = new_run("high")
    same_row(run)
    complete(run, Stage.SCOPING)
    same_row(run)  # scope_approval open: who it waits on
    approve(run, "bo", Gate.SCOPE_APPROVAL)
    same_row(run)  # one approval in, one seat left
    low = new_run("low")
    to_gate(low)
    same_row(low)
    approve(low, "rita", Gate.RISK_SIGNOFF)
    same_row(low)  # the next gate waits on someone else
    live = new_run("low")
    to_live(live)
    same_row(live)
