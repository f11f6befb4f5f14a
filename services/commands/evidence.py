"""What a reader saw of a run's evidence: the set a decision binds to, its ETag, its fingerprint.

A state response carries the ``ETag`` of the evidence set an approval would bind to now; an
approval over HTTP names what its approver saw with that ETag (``If-Match``) or with the
digests themselves. A Slack card's buttons carry the shorter fingerprint of the digests the
card showed. Either way a decision binds to those digests only while the current ones match.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from workflows.model import UseCaseView

FINGERPRINT_LENGTH = 16


def _digest_of_set(digests: Iterable[str]) -> str:
    """The sha256 (hex) of a set of evidence digests: order and case do not matter."""
    joined = ",".join(sorted({d.lower() for d in digests}))
    return hashlib.sha256(joined.encode()).hexdigest()


def bound_digests(view: UseCaseView) -> list[str]:
    """The evidence set an approval would bind to now, sorted: the open gate's digests, or,
    while no gate is open, the run's evidence (what a gate binds to when it opens)."""
    if view.open_gate is not None:
        return sorted({d.lower() for d in view.open_gate.evidence_digests})
    # the view lists only the latest items; its digests name them all (a view from a worker
    # older than the bounded view lists every item and names no digests)
    present = view.evidence_digests or (e.sha256 for e in view.evidence)
    return sorted({d.lower() for d in present})


def evidence_etag(digests: Iterable[str]) -> str:
    """The strong ETag (quoted, RFC 9110) of a set of evidence digests."""
    return f'"{_digest_of_set(digests)}"'


def state_etag(view: UseCaseView) -> str:
    """The ``ETag`` of a state response: that of the evidence an approval would bind to."""
    return evidence_etag(bound_digests(view))


def etag_matches(if_match: str, etag: str) -> bool:
    """Whether an ``If-Match`` field value names ``etag`` (strong comparison, RFC 9110 13.1.1).

    ``*`` names no evidence, so it never matches here; weak tags never match strongly."""
    for candidate in if_match.split(","):
        tag = candidate.strip()
        if tag and not tag.startswith("W/") and tag == etag:
            return True
    return False


def evidence_fingerprint(digests: Iterable[str]) -> str:
    """A short, order-free fingerprint of a set of evidence digests (its ETag's first hex)."""
    return _digest_of_set(digests)[:FINGERPRINT_LENGTH]


__all__ = [
    "FINGERPRINT_LENGTH",
    "bound_digests",
    "etag_matches",
    "evidence_etag",
    "evidence_fingerprint",
    "state_etag",
]
