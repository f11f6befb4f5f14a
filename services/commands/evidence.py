"""What a reader saw of a gate's evidence, when they saw only a short fingerprint of it.

A Slack card's buttons carry the fingerprint of the digests the card showed; a decision from
such a card binds to those digests only while the gate's current ones still match.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

FINGERPRINT_LENGTH = 16


def evidence_fingerprint(digests: Iterable[str]) -> str:
    """A short, order-free fingerprint of a set of evidence digests."""
    joined = ",".join(sorted({d.lower() for d in digests}))
    return hashlib.sha256(joined.encode()).hexdigest()[:FINGERPRINT_LENGTH]


__all__ = ["FINGERPRINT_LENGTH", "evidence_fingerprint"]
