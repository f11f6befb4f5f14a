"""Portfolio coverage and the inbox's gap items, from judged controls views. Pure.

Coverage answers "how many live use cases have open gaps, by framework": a live use case counts
under a framework when at least one of that framework's controls applies to it, and as having a
gap there when at least one of those controls is a ``gap``.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, Field

from services.controls.catalog import LoadedCatalog
from services.controls.evaluate import CatalogRef, ControlStatus, ControlsView

CONTROL_GAP = "control_gap"  # the inbox item's kind, beside the gates waiting on the caller


class GapRef(BaseModel):
    control: str
    framework: str
    ref: str
    title: str
    reason: str


class ControlGapItem(BaseModel):
    """A live use case with open control gaps, in its business owner's and risk approvers'
    inbox until the missing facts land."""

    kind: str = CONTROL_GAP
    id: str
    key: str
    title: str
    risk_tier: str
    stage: str
    gaps: list[GapRef]
    url: str


class FrameworkCoverage(BaseModel):
    id: str
    title: str
    live_use_cases: int = 0  # live use cases at least one of its controls applies to
    with_gaps: int = 0  # of those, how many have at least one gap under it
    open_gaps: int = 0  # gap controls, summed over those use cases


class UseCaseGaps(BaseModel):
    id: str
    key: str
    title: str
    risk_tier: str
    stage: str
    gaps: list[GapRef]


class ControlCoverage(BaseModel):
    """Flow metrics' ``controls``: open gaps of the live use cases, per framework."""

    catalog: CatalogRef
    live_use_cases: int = 0
    with_gaps: int = 0
    frameworks: list[FrameworkCoverage] = Field(default_factory=list)
    use_cases: list[UseCaseGaps] = Field(default_factory=list)  # those with gaps only


def gap_refs(view: ControlsView) -> list[GapRef]:
    return [
        GapRef(
            control=c.id,
            framework=c.framework,
            ref=c.ref,
            title=c.title,
            reason=c.reason or "",
        )
        for c in view.gaps()
    ]


def use_case_gaps(view: ControlsView) -> UseCaseGaps | None:
    """The use case with its gaps; None when it has none."""
    refs = gap_refs(view)
    if not refs:
        return None
    return UseCaseGaps(
        id=view.id,
        key=view.key,
        title=view.title,
        risk_tier=view.risk_tier,
        stage=view.stage,
        gaps=refs,
    )


def coverage(views: Iterable[ControlsView], catalog: LoadedCatalog) -> ControlCoverage:
    frameworks = {
        f.id: FrameworkCoverage(id=f.id, title=f.title) for f in catalog.document.frameworks
    }
    out = ControlCoverage(catalog=CatalogRef(version=catalog.version, sha256=catalog.sha256))
    for view in views:
        out.live_use_cases += 1
        for fw in frameworks.values():
            mine = [c for c in view.controls if c.framework == fw.id]
            if not any(c.status != ControlStatus.NOT_APPLICABLE for c in mine):
                continue
            fw.live_use_cases += 1
            gaps = sum(1 for c in mine if c.status == ControlStatus.GAP)
            fw.open_gaps += gaps
            fw.with_gaps += 1 if gaps else 0
        listed = use_case_gaps(view)
        if listed is not None:
            out.with_gaps += 1
            out.use_cases.append(listed)
    out.frameworks = list(frameworks.values())
    return out


__all__ = [
    "CONTROL_GAP",
    "ControlCoverage",
    "ControlGapItem",
    "FrameworkCoverage",
    "GapRef",
    "UseCaseGaps",
    "coverage",
    "gap_refs",
    "use_case_gaps",
]
