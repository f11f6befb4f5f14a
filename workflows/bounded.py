"""What a run hands on at continue-as-new: its state, with the lists that grow with its life cut
to what the next run still needs.

Continue-as-new carries the state in the next run's input, which Temporal refuses beyond 2 MB
and which opens the next history. Every incident, change, history event and refused attempt is
in the ledger already (``GET …/incidents|changes|history``), so the next run keeps only what it
acts on or shows: the latest few of each, the incidents the policy's rate window still counts,
and every change that is not closed. Counters keep numbering (``inc-N``, ``change-N``) going.
Pure, like the other modules under the shell.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from workflows.model import ChangeStatus, RunLimits
from workflows.presentation import VIEW_CHANGES, VIEW_INCIDENTS
from workflows.state import ReleaseState

# the history events the next run keeps (the `events` query; the ledger has them all)
KEEP_HISTORY: Final = 50
KEEP_REFUSED: Final = 20
KEEP_VOIDED: Final = 20
_OPEN: Final = (ChangeStatus.OPEN, ChangeStatus.AWAITING_RESUME)


def handed_on(state: ReleaseState, limits: RunLimits, now: datetime) -> ReleaseState:
    """``state`` as the next run starts with it (a copy; ``state`` is left as it is)."""
    window_start = now - timedelta(seconds=limits.incident_window_seconds)
    incidents = [
        inc
        for n, inc in enumerate(state.incidents)
        # the latest few for the view, and those the incident rate limit still counts
        if n >= len(state.incidents) - VIEW_INCIDENTS or inc.at > window_start
    ]
    closed = [c for c in state.changes if c.status not in _OPEN]
    kept_closed = {id(c) for c in closed[-VIEW_CHANGES:]}
    changes = [c for c in state.changes if c.status in _OPEN or id(c) in kept_closed]
    history = state.history[-KEEP_HISTORY:]
    return state.model_copy(
        update={
            "incidents": incidents,
            "incidents_before": state.incidents_before + len(state.incidents) - len(incidents),
            "changes": changes,
            "changes_before": state.changes_before + len(state.changes) - len(changes),
            "history": history,
            "history_before": state.history_before + len(state.history) - len(history),
            "refused": state.refused[-KEEP_REFUSED:],
            "voided": state.voided[-KEEP_VOIDED:],
        }
    )


__all__ = ["KEEP_HISTORY", "KEEP_REFUSED", "KEEP_VOIDED", "handed_on"]
