"""OSCAL documents of the control catalog and of one use case's judged controls.

Built with compliance-trestle's OSCAL models (pydantic v2; they validate every field on
construction), never as hand-written JSON:

- ``catalog_document``: the catalog as an OSCAL **catalog** — one group per framework, one control
  per catalog entry with its framework reference and source as properties, its paraphrased title
  as the statement and what satisfies it in ReleaseGate as guidance.
- ``assessment_results``: a use case's controls as OSCAL **assessment-results** — one result for
  the evaluation, the applicable controls as reviewed controls (the rest excluded), one finding per
  control (``satisfied`` / ``not-satisfied``, ReleaseGate's own status as a property, the reason as
  remarks), one observation per control with facts, listing its evidence items (back-matter
  resources carrying the item's sha256) and decisions (ledger seq) as relevant evidence.

UUIDs are name-based (uuid5) on the run, catalog and control, so exporting the same facts twice
gives the same identifiers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from trestle.oscal import OSCAL_VERSION, common
from trestle.oscal import assessment_results as ar
from trestle.oscal import catalog as cat

from services.controls.catalog import LoadedCatalog
from services.controls.evaluate import (
    ControlResult,
    ControlStatus,
    ControlsView,
    DecisionRef,
    EvidenceRef,
)

# properties ReleaseGate adds carry its own namespace (OSCAL's rule for non-OSCAL names)
NS = "urn:releasegate:oscal"
NAMESPACE = uuid.UUID("6f1c3a52-2b7e-4d8a-9f3e-0c5a7d2e4b11")  # uuid5 namespace of our ids


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


def _prop(name: str, value: str) -> common.Property:
    return common.Property(name=name, value=value, ns=NS)


def _metadata(title: str, version: str, at: datetime, props: list[common.Property]) -> Any:
    return common.Metadata(
        title=title,
        last_modified=at,
        version=version,
        oscal_version=common.OscalVersion(OSCAL_VERSION),
        props=props or None,
    )


# --------------------------------------------------------------------------- catalog


def _control(catalog: LoadedCatalog, control_id: str) -> Any:
    c = catalog.control(control_id)
    assert c is not None
    satisfied = "; ".join(r.describe() for r in c.satisfied_by)
    props = [
        common.Property(name="label", value=c.ref),
        _prop("source", c.source),
        _prop("applies-to-tiers", " ".join(t.value for t in c.applies.tiers)),
    ]
    if c.applies.eu_annex_iii:
        props.append(_prop("applies-to-eu-annex-iii", " ".join(c.applies.eu_annex_iii)))
    return cat.Control(
        id=c.id,
        title=c.title,
        props=props,
        parts=[
            common.Part(id=f"{c.id}_smt", name="statement", prose=c.title),
            common.Part(
                id=f"{c.id}_gdn",
                name="guidance",
                prose=f"Satisfied in ReleaseGate by: {satisfied}.",
            ),
        ],
    )


def catalog_document(catalog: LoadedCatalog, *, at: datetime) -> Any:
    """The catalog as an OSCAL catalog model."""
    doc = catalog.document
    groups = [
        cat.Group2(
            id=f.id,
            title=f.title,
            props=[_prop("source", f.source)],
            controls=[_control(catalog, c.id) for c in doc.controls if c.framework == f.id],
        )
        for f in doc.frameworks
    ]
    return cat.Catalog(
        uuid=_uuid("catalog", catalog.sha256),
        metadata=_metadata(
            "ReleaseGate control catalog",
            doc.version,
            at,
            [_prop("catalog-sha256", catalog.sha256)],
        ),
        groups=groups,
        back_matter=common.BackMatter(
            resources=[
                common.Resource(
                    uuid=_uuid("catalog-file", catalog.sha256),
                    title="config/controls.yaml",
                    description="The catalog file this document was built from.",
                    rlinks=[
                        common.Rlink(
                            href="config/controls.yaml",
                            media_type="application/yaml",
                            hashes=[common.Hash(algorithm="SHA-256", value=catalog.sha256)],
                        )
                    ],
                )
            ]
        ),
    )


# --------------------------------------------------------------------------- assessment results


def _evidence_resource(run: str, ev: EvidenceRef) -> Any:
    return common.Resource(
        uuid=_uuid(run, "evidence", str(ev.seq), ev.sha256, ev.name),
        title=f"{ev.kind}: {ev.name}",
        description=(
            f"Evidence {ev.kind} submitted by {ev.submitted_by} at {ev.scope} "
            f"(ledger seq {ev.seq})."
        ),
        props=[_prop("evidence-kind", ev.kind), _prop("ledger-seq", str(ev.seq))],
        rlinks=[
            common.Rlink(href=ev.uri, hashes=[common.Hash(algorithm="SHA-256", value=ev.sha256)])
        ],
    )


def _decision_evidence(ledger_url: str, d: DecisionRef) -> Any:
    roles = f" ({', '.join(d.roles)})" if d.roles else ""
    gate = f" on {d.gate}" if d.gate else ""
    return common.RelevantEvidence(
        href=f"{ledger_url}#seq-{d.seq}",
        description=f"{d.action}{gate} by {d.actor}{roles} at {d.at.isoformat()} "
        f"(ledger seq {d.seq})",
        props=[_prop("ledger-seq", str(d.seq)), _prop("actor", d.actor)],
    )


def _observation(view: ControlsView, c: ControlResult, ledger_url: str) -> Any:
    lines = [
        f"{r.need}: {r.status.value}" + (f" — {r.reason}" if r.reason else "")
        for r in c.requirements
    ]
    lines += [f for r in c.requirements for f in r.facts]
    relevant = [
        common.RelevantEvidence(
            href=f"#{_uuid(view.id, 'evidence', str(ev.seq), ev.sha256, ev.name)}",
            description=f"{ev.kind} {ev.name} sha256:{ev.sha256}",
        )
        for ev in c.evidence
    ] + [_decision_evidence(ledger_url, d) for d in c.decisions]
    return common.Observation(
        uuid=_uuid(view.id, "observation", c.id),
        title=f"{c.ref}: facts from the ledger",
        description="\n".join(lines) or c.title,
        methods=["EXAMINE"],
        types=["control-objective"],
        collected=view.evaluated_at,
        relevant_evidence=relevant or None,
    )


def _finding(view: ControlsView, c: ControlResult) -> Any:
    state = (
        common.ObjectiveStatusStateValidValues.satisfied
        if c.status == ControlStatus.SATISFIED
        else common.ObjectiveStatusStateValidValues.not_satisfied
    )
    return common.Finding(
        uuid=_uuid(view.id, "finding", c.id),
        title=f"{c.ref} — {c.title}",
        description=f"{c.framework} {c.ref} for {view.key or view.id}: {c.status.value}.",
        props=[_prop("releasegate-status", c.status.value)],
        target=common.FindingTarget(
            type=common.FindingTargetTypeValidValues.statement_id,
            target_id=f"{c.id}_smt",
            status=common.ObjectiveStatus(state=state, remarks=c.reason or None),
        ),
        related_observations=[
            ar.RelatedObservation(observation_uuid=_uuid(view.id, "observation", c.id))
        ],
    )


def _unique_resources(view: ControlsView, controls: Iterable[ControlResult]) -> list[Any]:
    seen: dict[str, Any] = {}
    for c in controls:
        for ev in c.evidence:
            res = _evidence_resource(view.id, ev)
            seen.setdefault(res.uuid, res)
    return list(seen.values())


def assessment_results(view: ControlsView, *, catalog_href: str, ledger_url: str) -> Any:
    """One use case's judged controls as an OSCAL assessment-results model."""
    judged = [c for c in view.controls if c.status != ControlStatus.NOT_APPLICABLE]
    excluded = [c for c in view.controls if c.status == ControlStatus.NOT_APPLICABLE]
    plan = common.Resource(
        uuid=_uuid(view.id, "assessment-approach", view.catalog.sha256),
        title=f"ReleaseGate control catalog {view.catalog.version}",
        description="No separate assessment plan: the controls are judged continuously from "
        "the run's ledger against this catalog.",
        rlinks=[
            common.Rlink(
                href=catalog_href,
                hashes=[common.Hash(algorithm="SHA-256", value=view.catalog.sha256)],
            )
        ],
    )
    selection = common.ControlSelectionsAll(
        include_all=common.IncludeAll(),
        exclude_controls=[common.SelectControlById(control_id=c.id) for c in excluded] or None,
        remarks="Controls not applicable to this use case are excluded.",
    )
    result = ar.Result(
        uuid=_uuid(view.id, "result", view.catalog.sha256),
        title=f"Controls of {view.title}",
        description=f"Use case {view.key or view.id} (tier {view.risk_tier}, stage "
        f"{view.stage}) judged against catalog {view.catalog.version}.",
        start=view.evaluated_at,
        props=[
            _prop("use-case", view.id),
            _prop("risk-tier", view.risk_tier),
            _prop("stage", view.stage),
            *(
                [_prop("pinned-catalog-sha256", view.pinned_catalog.sha256)]
                if view.pinned_catalog
                else []
            ),
        ],
        reviewed_controls=common.ReviewedControls(control_selections=[selection]),
        observations=[_observation(view, c, ledger_url) for c in judged] or None,
        findings=[_finding(view, c) for c in judged] or None,
    )
    resources = [plan, *_unique_resources(view, judged)]
    return ar.AssessmentResults(
        uuid=_uuid(view.id, "assessment-results", view.catalog.sha256),
        metadata=_metadata(
            f"ReleaseGate controls: {view.title}",
            view.catalog.version,
            view.evaluated_at,
            [_prop("catalog-sha256", view.catalog.sha256)],
        ),
        import_ap=ar.ImportAp(
            href=f"#{plan.uuid}",
            remarks="The catalog resource in back-matter stands for the assessment plan.",
        ),
        results=[result],
        back_matter=common.BackMatter(resources=resources),
    )


def as_json(model: Any) -> dict[str, Any]:
    """The OSCAL JSON document (wrapped in its root key, e.g. ``assessment-results``)."""
    doc: dict[str, Any] = model.oscal_dict()
    return doc


__all__ = ["as_json", "assessment_results", "catalog_document"]
