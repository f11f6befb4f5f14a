"""What the command layer raises when a command or read cannot be carried out.

Typed, without HTTP in them: the API maps each to a problem document, the Slack bot branches on
``CommandRefused.refusal``. ``code`` is a stable slug (the problem ``type``'s last part and the
metrics label), never something a caller should branch on.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from workflows.model import Refusal


class CommandError(Exception):
    """Base class: ``detail`` is safe to show to the caller."""

    CODE: ClassVar[str] = "error"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.CODE


class CommandRefused(CommandError):
    """The policy or the workflow refused the command; nothing was recorded."""

    def __init__(self, refusal: Refusal, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(detail, code=refusal.value.replace("_", "-"))
        self.refusal = refusal
        # seconds until the command may succeed (a rate limit), as the workflow said
        self.retry_after = retry_after


class WorkflowRejected(CommandError):
    """The workflow failed the command for a reason outside ``Refusal`` (nothing recorded)."""

    CODE = "refused"


class RunNotFound(CommandError):
    """No such run (or not a ReleaseGate run)."""

    CODE = "not-found"


class KeyConflict(CommandError):
    """A start whose key already runs with another definition."""

    CODE = "key-conflict"


class InvalidOwners(CommandError):
    """A start whose owners break separation of duties or leave a gate unstaffed."""

    CODE = "invalid-owners"

    @property
    def field(self) -> str | None:
        """The owners field the refusal names (``business_owner``, ``risk_approvers``, …), or
        None when it concerns a gate's staffing as a whole: a form marks that field, and no
        front door reads the detail's words itself. The policy names the field as the
        detail's location, ``owners.<field>[.<index>]: …``."""
        where, sep, _ = self.detail.partition(":")
        if not sep or not where.startswith("owners."):
            return None
        return where.removeprefix("owners.").split(".", 1)[0]


class ReplayUnresolved(CommandError):
    """An idempotency key was replayed, but its first answer cannot be rebuilt."""

    CODE = "idempotency-conflict"


class IdempotencyKeyReused(CommandError):
    """The caller sent this Idempotency-Key before with another request (body, path or
    precondition); nothing was sent. A new request needs a new key."""

    CODE = "idempotency-key-reused"


class SeenEvidence(CommandError):
    """An approval that does not name the run's current evidence; nothing was recorded.

    ``evidence_digests`` and ``etag`` are the current set an approval would bind to, so the
    caller can review it and approve again."""

    def __init__(self, detail: str, *, evidence_digests: list[str], etag: str) -> None:
        super().__init__(detail)
        self.evidence_digests = evidence_digests
        self.etag = etag


class PreconditionRequired(SeenEvidence):
    """An approval that names neither ``evidence_digests`` nor an ``If-Match`` ETag."""

    CODE = "precondition-required"


class EvidenceChangedSince(SeenEvidence):
    """An approval whose ``If-Match`` ETag is not the current evidence set's."""

    CODE = "evidence-changed"


class Outage(StrEnum):
    """Why Temporal could not carry a command or answer a read (values are the slugs)."""

    UNREACHABLE = "temporal-unavailable"
    REFUSED_START = "temporal-error"
    QUERY_FAILED = "query-failed"
    # no worker polls the task queue: nothing can run a command or answer a read
    NO_WORKER = "no-worker"
    # the run is open, but its workflow task keeps failing (a bug in the workflow code, or a
    # history it cannot replay): it takes nothing until an operator fixes and redeploys
    WORKFLOW_TASK_FAILING = "workflow-task-failing"
    # the store that binds idempotency keys to requests cannot be reached: nothing was sent
    DB_UNAVAILABLE = "db-unavailable"


class Unavailable(CommandError):
    """Temporal (or the run's worker) cannot be reached now; retrying later may work.

    ``facts`` are what the caller may read about the outage (e.g. the run's real status),
    added to the problem document as they are."""

    def __init__(self, outage: Outage, detail: str, **facts: Any) -> None:
        super().__init__(detail, code=outage.value)
        self.outage = outage
        self.facts = facts


__all__ = [
    "CommandError",
    "CommandRefused",
    "EvidenceChangedSince",
    "IdempotencyKeyReused",
    "InvalidOwners",
    "KeyConflict",
    "Outage",
    "PreconditionRequired",
    "ReplayUnresolved",
    "RunNotFound",
    "SeenEvidence",
    "Unavailable",
    "WorkflowRejected",
]
