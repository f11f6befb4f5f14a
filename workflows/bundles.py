"""What runs is what was approved: a release's bundle, its digest, and what a change of it is.

A bundle is the list of artifacts that make a use case's behaviour (model id and version,
prompt and configuration digests, code commit), each by name and sha256. Its digest is bound
into every gate beside the evidence digests, so an approval names the bundle it saw; the deploy
hook carries the approved bundle; a running bundle other than the approved one is an
``unauthorized_change`` incident (``workflows.live.report_runtime``). Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from workflows.model import BundleArtifact, BundleRule, Materiality

if TYPE_CHECKING:
    from workflows.state import Run


def digest(bundle: Sequence[BundleArtifact] | None) -> str | None:
    """The sha256 of a bundle: of its ``name:sha256`` lines, sorted by name (order-free)."""
    if not bundle:
        return None
    lines = "".join(f"{a.name}:{a.sha256.lower()}\n" for a in sorted(bundle, key=lambda a: a.name))
    return hashlib.sha256(lines.encode()).hexdigest()


def approved(run: Run) -> list[BundleArtifact] | None:
    """The bundle the run's gates approve, or approved: the release's own (or, on a change
    request's run, the change's), replaced by each applied change that named one."""
    if run.state.approved_bundle is not None:
        return run.state.approved_bundle
    return run.inp.bundle


def bound_digests(run: Run, evidence_digests: Iterable[str]) -> list[str]:
    """What a gate binds to: the run's evidence digests and, when it names one, its bundle's
    digest. Without a bundle exactly the evidence digests, as before bundles existed."""
    out = set(evidence_digests)
    named = digest(approved(run))
    if named is not None:
        out.add(named)
    return sorted(out)


def changed(before: Sequence[BundleArtifact] | None, after: Sequence[BundleArtifact]) -> list[str]:
    """Names of the artifacts ``after`` adds, removes or changes against ``before``."""
    old = {a.name: a.sha256 for a in before or []}
    new = {a.name: a.sha256 for a in after}
    return sorted(n for n in old.keys() | new.keys() if old.get(n) != new.get(n))


def materiality_of(rule: BundleRule, names: Iterable[str]) -> Materiality:
    """Material when any changed artifact is one the policy names material, else minor."""
    material = set(rule.material_artifacts)
    return Materiality.MATERIAL if material & set(names) else Materiality.MINOR


def hook_fields(run: Run) -> dict[str, Any]:
    """What the deploy hook says of the bundle it deploys (nothing without one)."""
    bundle = approved(run)
    if not bundle:
        return {}
    return {
        "bundle": [a.model_dump(mode="json") for a in bundle],
        "bundle_digest": digest(bundle),
    }


__all__ = ["approved", "bound_digests", "changed", "digest", "hook_fields", "materiality_of"]
