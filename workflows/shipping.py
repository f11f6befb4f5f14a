"""Shipping: what handlers recorded in the outbox leaves the run, in order.

The workflow's run loop calls ``Shipper.flush`` once per turn: the store first (ledger and read
model in one local activity, with activities that never give up behind it), then hooks, the
confirmation of a change's end with its own run, notices and run-to-run messages. Handlers
call ``Shipper.publish`` to bring the run's search attributes and the Temporal UI's current
details up to date. Nothing here decides anything: the rules are in ``policy`` and the pure
modules; this is Temporal plumbing with retry rules that never lose a ledger entry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeout

from workflows import live, outbox, presentation, search, transitions
from workflows.activities import (
    CHANGE_OUTCOME,
    HOOK_CALL,
    LEDGER_APPEND,
    NOTIFY,
    REGISTRY_SYNC,
    STORE_PERSIST,
    ChangeCheck,
    ChangeCheckResult,
    HookFailure,
    HookResult,
    LedgerBatch,
    MessageRef,
    NotificationKind,
    NotifyProgress,
    NotifyResult,
    StoreBatch,
    StoreResult,
)
from workflows.model import ChangeOutcome, EventKind, RunSignal
from workflows.state import Run
from workflows.versions import BOUNDED_RUNS, NOTIFY_PROGRESS, PROMPT_HANDOVER, CodePaths

# Side effects retry until the store is back: losing a ledger entry is never an option.
STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
)
STORE_TIMEOUT = timedelta(seconds=30)
# The fast path (``store.persist``, a local activity in the workflow task that recorded the
# facts): a few quick attempts, bounded so a slow or absent store delays a command's answer by
# seconds at most; then the same writes go to the activities above, which never give up.
LOCAL_STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=50),
    backoff_coefficient=4.0,
    maximum_interval=timedelta(seconds=1),
    maximum_attempts=3,
)
# Both stay below the point (8 s) where the SDK would have to heartbeat the workflow task.
LOCAL_STORE_TIMEOUT = timedelta(seconds=3)
LOCAL_STORE_DEADLINE = timedelta(seconds=6)
# Notifications are worth retrying for a while, but a dead chat service never blocks the run.
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
)
NOTIFY_TIMEOUT = timedelta(seconds=20)
HOOK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
    maximum_attempts=6,
)
HOOK_TIMEOUT = timedelta(seconds=30)


def _hook_failure(err: ActivityError) -> HookFailure:
    """The class of a failed hook call: what the ledger and notices may say about it."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type in set(HookFailure):
        return HookFailure(cause.type)
    if isinstance(cause, ActivityTimeout):  # the call's start-to-close ran out
        return HookFailure.TIMEOUT
    return HookFailure.FAILED


def _posted_before_failing(err: ActivityError) -> list[MessageRef]:
    """The messages a notice that failed for good had posted: its progress, carried by the
    last attempt's heartbeat (a timeout) or by its error's details."""
    cause = err.cause
    details: Sequence[Any] = ()
    if isinstance(cause, ActivityTimeout):
        details = cause.last_heartbeat_details
    elif isinstance(cause, ApplicationError):
        details = cause.details
    for detail in details[:1]:
        try:
            return NotifyProgress.model_validate(detail).refs()
        except ValidationError:
            workflow.logger.warning("unreadable notify progress ignored")
    return []


def _changed_search_attributes(values: presentation.SearchValues) -> list[Any]:
    """The search attribute updates that change what the run carries (none: no upsert)."""
    current = workflow.info().typed_search_attributes
    changes: list[Any] = []
    if current.get(search.STAGE) != values.stage:
        changes.append(search.STAGE.value_set(values.stage))
    if list(current.get(search.PENDING_APPROVERS) or []) != values.waiting_on:
        changes.append(
            search.PENDING_APPROVERS.value_set(values.waiting_on)
            if values.waiting_on
            else search.PENDING_APPROVERS.value_unset()
        )
    if current.get(search.GATE_DUE_AT) != values.gate_due_at:
        changes.append(
            search.GATE_DUE_AT.value_set(values.gate_due_at)
            if values.gate_due_at
            else search.GATE_DUE_AT.value_unset()
        )
    return changes


class Shipper:
    """Ships one run's outbox and publishes what the world sees of it."""

    def __init__(self, run: Run, paths: CodePaths, continue_as_new_due: Callable[[], bool]) -> None:
        self.run = run
        self.paths = paths
        self.continue_as_new_due = continue_as_new_due
        self.prompt_handover = False

    def publish(self) -> None:
        """Bring search attributes and the UI's current details up to date with the state.

        One upsert of the values that changed (``ONE_TRIP``); runs recorded before it replay
        with one upsert per publish the pure modules asked for.
        """
        box = self.run.state.outbox
        if not box.publishes:
            return
        values = presentation.search_values(self.run)
        if self.paths.one_trip:
            changed = _changed_search_attributes(values)
            if changed:
                workflow.upsert_search_attributes(changed)
            box.publishes = 0
            workflow.set_current_details(presentation.details(self.run))
            return
        for _ in range(box.publishes):
            workflow.upsert_search_attributes(
                [
                    search.STAGE.value_set(values.stage),
                    search.PENDING_APPROVERS.value_set(values.waiting_on)
                    if values.waiting_on
                    else search.PENDING_APPROVERS.value_unset(),
                    search.GATE_DUE_AT.value_set(values.gate_due_at)
                    if values.gate_due_at
                    else search.GATE_DUE_AT.value_unset(),
                ]
            )
        box.publishes = 0
        workflow.set_current_details(presentation.details(self.run))

    async def flush(self) -> None:
        """Ship what handlers recorded, in order: ledger, hooks, notifications, read model."""
        # One turn per call: what arrives while this turn ships waits for the run loop's next
        # turn, so steady traffic never keeps the loop from its continue-as-new check.
        one_turn = self.paths.patched(BOUNDED_RUNS)
        self.prompt_handover = self.paths.patched(PROMPT_HANDOVER)
        if self._handover_due():
            return
        if self.paths.one_trip:
            await self._ship()
        else:
            await self._ship_in_turns(one_turn)

    async def _ship_in_turns(self, one_turn: bool) -> None:
        """Shipping as runs recorded before ``ONE_TRIP`` did: an activity for each ledger batch,
        then hooks, notices and run-to-run messages, and the read model last."""
        box = self.run.state.outbox
        while box.ledger or box.hooks:
            while box.ledger:
                batch, box.ledger = box.ledger, []
                kinds = ", ".join(dict.fromkeys(r.kind.value for r in batch))
                await workflow.execute_activity(
                    LEDGER_APPEND,
                    LedgerBatch(records=batch),
                    start_to_close_timeout=STORE_TIMEOUT,
                    retry_policy=STORE_RETRY,
                    summary=f"ledger: {kinds} ({self.run.state.stage.value})",
                )
                if one_turn:
                    break
            if box.hooks and not self._handover_due():
                await self._call_hooks()
            if one_turn:
                break
        if self._handover_due():
            return
        await self._confirm_change_reports()
        await self._send_notices()
        if self._handover_due():
            return
        await self._message_runs()
        if box.read_model_stale:
            box.read_model_stale = False
            await workflow.execute_activity(
                REGISTRY_SYNC,
                presentation.registry_row(self.run),
                start_to_close_timeout=STORE_TIMEOUT,
                retry_policy=STORE_RETRY,
                summary=f"read model: {self.run.state.stage.value}",
            )

    async def _ship(self) -> None:
        """One turn of shipping (``ONE_TRIP``): the store first (ledger and read model in one
        local activity, within the workflow task that recorded the facts), then hooks, change
        reports, notices and run-to-run messages. Facts these record (hook outcomes, applied
        changes) are stored by the run loop's next turn."""
        box = self.run.state.outbox
        await self._persist()
        if box.hooks and not self._handover_due():
            await self._call_hooks()
        if self._handover_due():
            return
        await self._confirm_change_reports()
        if box.notices:  # (the log-only worker's store step took them)
            await self._send_notices()
        if self._handover_due():
            return
        await self._message_runs()

    async def _message_runs(self) -> None:
        """Run-to-run messages: cancel the change runs a retirement ended; a change's run tells
        its use case how it ended."""
        box = self.run.state.outbox
        while box.cancel_runs:
            run_id = box.cancel_runs.pop(0)
            await workflow.get_external_workflow_handle(run_id).cancel()
        change = self.run.change
        if box.parent_report is not None and change is not None:
            report, box.parent_report = box.parent_report, None
            parent = workflow.get_external_workflow_handle(change.parent_id)
            await parent.signal(RunSignal.CHANGE_FINISHED.value, report)

    async def _persist(self) -> None:
        """Store the outbox's ledger records and the read-model row as of them, together.

        The fast path is one local activity: no server round trip and no workflow task of its
        own, and the command's answer leaves only once its facts are stored. When it fails
        (the store is down, slow, or refuses a value), the same records go to ``ledger.append``
        and the row to ``registry.sync``, activities that retry with backoff until the store
        takes them: a ledger entry is never lost, and each is written once (both sides are
        idempotent on the event id).
        """
        box = self.run.state.outbox
        if not box.ledger and not box.read_model_stale:
            return
        batch, box.ledger = box.ledger, []
        box.read_model_stale = False
        stage = self.run.state.stage.value
        kinds = ", ".join(dict.fromkeys(r.kind.value for r in batch)) or "read model"
        notices = list(box.notices)
        try:
            result: StoreResult = await workflow.execute_local_activity(
                STORE_PERSIST,
                StoreBatch(records=batch, row=presentation.registry_row(self.run), notices=notices),
                result_type=StoreResult,
                start_to_close_timeout=LOCAL_STORE_TIMEOUT,
                schedule_to_close_timeout=LOCAL_STORE_DEADLINE,
                retry_policy=LOCAL_STORE_RETRY,
                summary=f"store: {kinds} ({stage})",
            )
            if result.notices_logged:
                # the worker's log was their only channel: nothing is left to send
                del box.notices[: len(notices)]
            return
        except (ActivityError, ApplicationError) as err:
            # a local activity's own failure (persist_fallback) arrives as the ApplicationError
            # itself, not wrapped in an ActivityError: uncaught, it failed the whole run
            cause = err.cause if isinstance(err, ActivityError) else err
            workflow.logger.warning("store.persist failed, retrying as activities: %s", cause)
        if batch:
            await workflow.execute_activity(
                LEDGER_APPEND,
                LedgerBatch(records=batch),
                start_to_close_timeout=STORE_TIMEOUT,
                retry_policy=STORE_RETRY,
                summary=f"ledger: {kinds} ({stage})",
            )
        # the row as of what the ledger now holds (records queued meanwhile follow next turn)
        await workflow.execute_activity(
            REGISTRY_SYNC,
            presentation.registry_row(self.run),
            start_to_close_timeout=STORE_TIMEOUT,
            retry_policy=STORE_RETRY,
            summary=f"read model: {self.run.state.stage.value}",
        )

    def _handover_due(self) -> bool:
        """Continue-as-new is due and the rest of the outbox may cross with the state."""
        return self.prompt_handover and self.continue_as_new_due()

    async def _confirm_change_reports(self) -> None:
        """Apply a change's end only as its own run recorded it (its parent is this run)."""
        box = self.run.state.outbox
        while box.change_reports:
            report = box.change_reports.pop(0)
            change = next(
                (c for c in self.run.state.changes if c.change_id == report.change_id), None
            )
            if change is None:
                workflow.logger.warning("report of unknown change %s ignored", report.change_id)
                self._refuse_change_report(report, "no change of this use case has that id")
                continue
            check = ChangeCheck(
                parent_id=self.run.workflow_id,
                workflow_id=change.workflow_id,
                change_id=change.change_id,
            )
            result: ChangeCheckResult = await workflow.execute_activity(
                CHANGE_OUTCOME,
                check,
                result_type=ChangeCheckResult,
                start_to_close_timeout=STORE_TIMEOUT,
                retry_policy=STORE_RETRY,
                summary=f"confirm {change.change_id} with its run",
            )
            if result.outcome is None or result.outcome != report.outcome:
                workflow.logger.warning(
                    "report of %s as %s not confirmed: %s",
                    report.change_id,
                    report.outcome,
                    result.reason or result.outcome,
                )
                self._refuse_change_report(
                    report,
                    f"its run does not confirm it ended {report.outcome.value}: "
                    f"{result.reason or result.outcome}",
                )
                continue
            live.change_finished(self.run, report, workflow.now())
            self.publish()

    def _refuse_change_report(self, report: ChangeOutcome, why: str) -> None:
        """A change's end its own run does not confirm: kept as a refused attempt (generation
        1; earlier runs only logged it)."""
        if self.paths.refuses_run_signals:
            transitions.refuse_run_signal(
                self.run, RunSignal.CHANGE_FINISHED, report.change_id, why, workflow.now()
            )

    async def _call_hooks(self) -> None:
        box = self.run.state.outbox
        while box.hooks:
            request = box.hooks.pop(0)
            extras: dict[str, Any] = {"hook": request.hook, "url": request.url}
            try:
                result: HookResult = await workflow.execute_activity(
                    HOOK_CALL,
                    request,
                    result_type=HookResult,
                    start_to_close_timeout=HOOK_TIMEOUT,
                    retry_policy=HOOK_RETRY,
                    summary=f"{request.hook.value} hook: {request.url}",
                )
            except ActivityError as err:
                failure = _hook_failure(err)
                extras["error"] = failure.value
                now = workflow.now()
                outbox.record(
                    self.run, EventKind.HOOK_FAILED, now, actor=outbox.SYSTEM, extras=extras
                )
                outbox.live_notice(
                    self.run, f"{request.hook.value} hook failed: {failure.value}", now
                )
                continue
            extras |= {"status_code": result.status_code, "ok": result.ok}
            outbox.record(
                self.run, EventKind.HOOK_CALLED, workflow.now(), actor=outbox.SYSTEM, extras=extras
            )

    async def _send_notices(self) -> None:
        box, cards = self.run.state.outbox, self.run.state.cards
        # Notices queued while these are sent wait for the next turn, behind the ledger: a
        # stream of notices never starves the facts recorded meanwhile.
        turn = len(box.notices) if workflow.patched(BOUNDED_RUNS) else None
        while box.notices and (turn is None or turn > 0) and not self._handover_due():
            if turn is not None:
                turn -= 1
            notice = box.notices.pop(0)
            card_key = f"{notice.gate.gate}:{notice.gate.round}" if notice.gate else None
            if notice.kind == NotificationKind.GATE_UPDATED and any(
                n.gate and f"{n.gate.gate}:{n.gate.round}" == card_key for n in box.notices
            ):
                continue  # a newer card for the same gate is queued: send only that one
            if card_key and notice.kind in (
                NotificationKind.GATE_UPDATED,
                NotificationKind.GATE_CLOSED,
            ):
                notice.message_refs = list(cards.get(card_key, []))
            try:
                result: NotifyResult = await workflow.execute_activity(
                    NOTIFY,
                    notice,
                    result_type=NotifyResult,
                    start_to_close_timeout=NOTIFY_TIMEOUT,
                    retry_policy=NOTIFY_RETRY,
                    summary=f"notify: {notice.kind.value} "
                    f"{notice.gate.gate if notice.gate else notice.stage}",
                )
            except ActivityError as err:
                workflow.logger.warning("notification %s not delivered: %s", notice.kind, err)
                if (
                    card_key
                    and notice.kind == NotificationKind.GATE_OPENED
                    and workflow.patched(NOTIFY_PROGRESS)
                ):
                    # cards its attempts did post are this gate's all the same: they close with it
                    cards[card_key] = _posted_before_failing(err)
                continue
            if card_key and notice.kind == NotificationKind.GATE_OPENED:
                cards[card_key] = result.message_refs
