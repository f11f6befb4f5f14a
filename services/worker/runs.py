"""Run-to-run facts, asked of Temporal instead of taken from a signal.

A change request's run signals its use case when it ends; anyone with access to the Temporal
frontend could send the same signal. So the use case's run treats the signal as a hint and asks
here, through the worker's own client: is that run a child of this use case, and did it really
end that way?
"""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from workflows.activities import CHANGE_OUTCOME, ChangeCheck, ChangeCheckResult
from workflows.model import ChangeStatus, RunOutcome, UseCaseView

_ENDED = {
    RunOutcome.APPLIED: ChangeStatus.APPLIED,
    RunOutcome.REJECTED: ChangeStatus.REJECTED,
    RunOutcome.CANCELLED: ChangeStatus.CANCELLED,
}


class RunActivities:
    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name=CHANGE_OUTCOME)
    async def change_outcome(self, check: ChangeCheck) -> ChangeCheckResult:
        handle = self.client.get_workflow_handle(check.workflow_id)
        try:
            desc = await handle.describe()
        except RPCError as exc:
            return ChangeCheckResult(reason=f"no such run ({exc.status.name})")
        if desc.parent_id != check.parent_id:
            return ChangeCheckResult(reason="that run is not a change of this use case")
        if desc.status == WorkflowExecutionStatus.CANCELED:
            return ChangeCheckResult(outcome=ChangeStatus.CANCELLED)
        view: UseCaseView = await handle.query("state", result_type=UseCaseView)
        if view.change is None or view.change.change_id != check.change_id:
            return ChangeCheckResult(reason="that run is another change")
        if not view.closed or view.outcome is None:
            return ChangeCheckResult(reason="that run has not ended")
        return ChangeCheckResult(outcome=_ENDED.get(view.outcome))


__all__ = ["RunActivities"]
