"""Which code paths a run takes, so that histories recorded by earlier code replay unchanged.

A run started with a code ``generation`` in its input (``workflows.model.GENERATION``) takes
every path of that generation, and records no patch marker. A run started before generations
chooses each path with ``workflow.patched`` as the code of its time did.
"""

from __future__ import annotations

from temporalio import workflow

# workflow.patched id of the bounded-run changes: continue-as-new carries the outbox, notices
# are sent in turns behind the ledger
BOUNDED_RUNS = "bounded-runs"
# workflow.patched id of authenticated commands: starts, Updates and the decision Signal carry
# a front door's credential; run-to-run facts come from the runs themselves
AUTHENTICATED_COMMANDS = "authenticated-commands"
# workflow.patched id of the prompt hand-over: once continue-as-new is due, shipping stops
# between steps and the rest of the outbox crosses with the state
PROMPT_HANDOVER = "prompt-handover"
# workflow.patched id of the bounded hand-over: continue-as-new carries the latest incidents,
# changes and history events (and counts), not all of them (workflows/bounded.py)
BOUNDED_STATE = "bounded-state"
# workflow.patched id of one-trip shipping: a workflow task's ledger records and read-model row
# go to the store together in one local activity, search attributes are upserted only when
# their values change, and the read model no longer waits behind notices. A run that starts
# with it records no marker for the patches before it: they are all in force for such a run
# (``CodePaths.patched``), and each marker costs two history events (the marker and
# the TemporalChangeVersion upsert the SDK adds).
ONE_TRIP = "one-trip-shipping"
# workflow.patched id of notices' progress: a gate card notice that failed for good still
# hands the run the cards its attempts posted (services/worker/notify.py), so they close too
NOTIFY_PROGRESS = "notify-progress"


class CodePaths:
    """A run's code paths, fixed when its workflow object is made (before any other call that
    records a command: ``ONE_TRIP`` must be the first patch a run before generations asks)."""

    def __init__(self, generation: int | None) -> None:
        self.generation = generation or 0
        # one-trip shipping, and with it every patch before it, in force
        self.one_trip = self.generation >= 1 or workflow.patched(ONE_TRIP)
        # Generation 1: the deadline timer is kept across commands, and run-to-run signals
        # that cannot be verified are kept as refused attempts.
        self.steady_timer = self.generation >= 1
        # A fresh run's first facts are dated by its start event, not its first workflow
        # task: that task may be completed empty while the store step runs (nothing else to
        # say yet), and a replay then sees the start in the next task, at a later time.
        # Runs before generations always recorded a patch marker in their first task.
        self.start_at_start_event = self.generation >= 1
        self.refuses_run_signals = self.generation >= 1

    def patched(self, patch_id: str) -> bool:
        """``workflow.patched(patch_id)`` for a patch older than ``ONE_TRIP``: in force, with no
        marker recorded, for a run that started on ONE_TRIP code; asked as before otherwise."""
        return self.one_trip or workflow.patched(patch_id)
