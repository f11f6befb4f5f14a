"""The command layer's errors as problem documents: the statuses and types REST always had."""

from __future__ import annotations

import pytest

from services.api.problems import problem_of
from services.commands.errors import (
    CommandError,
    CommandRefused,
    EvidenceChangedSince,
    IdempotencyKeyReused,
    InvalidOwners,
    KeyConflict,
    Outage,
    PreconditionRequired,
    ReplayUnresolved,
    RunNotFound,
    Unavailable,
    WorkflowRejected,
)
from workflows.model import Refusal


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (CommandRefused(Refusal.NOT_ELIGIBLE, "x"), 403, "not-eligible"),
        (CommandRefused(Refusal.INVALID, "x"), 422, "invalid"),
        (CommandRefused(Refusal.WRONG_STAGE, "x"), 409, "wrong-stage"),
        (CommandRefused(Refusal.GATE_NOT_OPEN, "x"), 409, "gate-not-open"),
        (CommandRefused(Refusal.RUN_CLOSED, "x"), 409, "run-closed"),
        (CommandRefused(Refusal.ALREADY_DECIDED, "x"), 409, "already-decided"),
        (CommandRefused(Refusal.EVIDENCE_MISSING, "x"), 409, "evidence-missing"),
        (CommandRefused(Refusal.EVIDENCE_CHANGED, "x"), 409, "evidence-changed"),
        (WorkflowRejected("x"), 409, "refused"),
        (RunNotFound("x"), 404, "not-found"),
        (KeyConflict("x"), 409, "key-conflict"),
        (InvalidOwners("x"), 422, "invalid-owners"),
        (ReplayUnresolved("x"), 409, "idempotency-conflict"),
        (Unavailable(Outage.UNREACHABLE, "x"), 503, "temporal-unavailable"),
        (Unavailable(Outage.REFUSED_START, "x"), 503, "temporal-error"),
        (Unavailable(Outage.QUERY_FAILED, "x"), 503, "query-failed"),
        (Unavailable(Outage.DB_UNAVAILABLE, "x"), 503, "db-unavailable"),
        (IdempotencyKeyReused("x"), 422, "idempotency-key-reused"),
        (PreconditionRequired("x", evidence_digests=[], etag='"e"'), 428, "precondition-required"),
        (EvidenceChangedSince("x", evidence_digests=[], etag='"e"'), 412, "evidence-changed"),
    ],
)
def test_command_errors_keep_their_status_and_type(
    error: CommandError, status: int, code: str
) -> None:
    problem = problem_of(error)
    assert (problem.status, problem.code, problem.detail) == (status, code, "x")


def test_an_approval_refused_for_what_it_saw_carries_the_current_set() -> None:
    problem = problem_of(PreconditionRequired("x", evidence_digests=["a" * 64], etag='"e"'))
    assert problem.extra == {"evidence_digests": ["a" * 64], "etag": '"e"'}
    assert problem.headers == {"ETag": '"e"'}


def test_every_refusal_has_a_status() -> None:
    for refusal in Refusal:
        status = problem_of(CommandRefused(refusal, "x")).status
        if refusal == Refusal.UNAUTHENTICATED:
            # the run could not verify the API's own signature: a key configuration fault
            assert status == 503
        elif refusal == Refusal.RATE_LIMITED:
            assert status == 429  # with Retry-After (tests/api/test_bounded_runs.py)
        else:
            assert status in (403, 409, 422)
