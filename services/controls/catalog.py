"""The control catalog (``config/controls.yaml``): its document model, loader and pin.

A control maps a framework's identifier (NIST AI RMF, ISO/IEC 42001 Annex A, EU AI Act, SR 11-7)
to the facts ReleaseGate already records that satisfy it. Loading validates the file against the
policy: every evidence kind a control names must be one the policy requires somewhere, or one the
catalog declares itself (``evidence_kinds``); every control names its source. A bad file stops
the process at start with the file and the field, like a bad policy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from workflows.model import (
    GATE_STAGES,
    LIVE_POLICY_GATES,
    WORK_STAGES,
    EvidenceKind,
    Gate,
    PinnedCatalog,
    RiskTier,
    Role,
)
from workflows.policy import ConfigFileError, LoadedPolicy

ControlId = str
TOKEN = r"^[a-z][a-z0-9._-]*$"  # also a valid OSCAL token (control and group ids)
# where evidence may be submitted: a work stage, a release gate, or a live gate
EVIDENCE_SCOPES: frozenset[str] = frozenset(
    {*(s.value for s in WORK_STAGES), *(s.value for s in GATE_STAGES), *LIVE_POLICY_GATES}
)


class Capability(StrEnum):
    """What a live system must be able to do, as a run records it."""

    STOP_AUTHORITY = "stop_authority"  # a stop-ship holder is named
    PERIODIC_REVIEW = "periodic_review"  # the periodic review keeps its schedule
    INCIDENT_RECORDING = "incident_recording"  # incidents are recorded on the run


class EvidenceNeed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kinds: list[EvidenceKind] = Field(min_length=1)
    at: list[str] = Field(min_length=1)

    @field_validator("at")
    @classmethod
    def _scopes(cls, v: list[str]) -> list[str]:
        unknown = [s for s in v if s not in EVIDENCE_SCOPES]
        if unknown:
            raise ValueError(f"unknown stage or gate {unknown} (one of {sorted(EVIDENCE_SCOPES)})")
        return v


class GateNeed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gate: Gate
    roles: list[Role] = Field(default_factory=list)
    independent_of: list[Role] = Field(default_factory=list)


class Empty(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Requirement(BaseModel):
    """One thing a control needs; exactly one of the fields is set."""

    model_config = ConfigDict(extra="forbid")
    inventory: Empty | None = None
    evidence: EvidenceNeed | None = None
    gate: GateNeed | None = None
    capability: Capability | None = None
    ledger: Empty | None = None

    @model_validator(mode="after")
    def _one(self) -> Requirement:
        set_ = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(set_) != 1:
            raise ValueError(
                "each entry names exactly one of inventory, evidence, gate, capability, ledger"
                f" (got {set_ or 'none'})"
            )
        return self

    def describe(self) -> str:
        """What satisfies this, in a sentence (README table, views)."""
        if self.evidence is not None:
            return f"{', '.join(self.evidence.kinds)} evidence at {' or '.join(self.evidence.at)}"
        if self.gate is not None:
            text = f"{self.gate.gate.value} passed"
            if self.gate.roles:
                text += f", approved by {' and '.join(r.value for r in self.gate.roles)}"
            if self.gate.independent_of:
                text += f", none of them {' or '.join(r.value for r in self.gate.independent_of)}"
            return text
        if self.capability is not None:
            return {
                Capability.STOP_AUTHORITY: "live: a stop-ship holder is named",
                Capability.PERIODIC_REVIEW: "live: periodic review on schedule",
                Capability.INCIDENT_RECORDING: "live: incidents recorded on the run",
            }[self.capability]
        if self.ledger is not None:
            return "the run's hash-chained ledger verifies"
        return "the use case is registered with its owners named"


class Applicability(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tiers: list[RiskTier] = Field(default_factory=lambda: list(RiskTier))
    # Annex III points (``5b``): the control applies only to use cases marked with one of them
    eu_annex_iii: list[str] | None = None


class Framework(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=TOKEN, max_length=64)
    title: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=500)


class Control(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: ControlId = Field(pattern=TOKEN, max_length=100)
    framework: str
    ref: str = Field(min_length=1, max_length=100)
    title: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=500)
    applies: Applicability = Field(default_factory=Applicability)
    satisfied_by: list[Requirement] = Field(min_length=1)

    def evidence_kinds(self) -> set[str]:
        return {k for r in self.satisfied_by if r.evidence for k in r.evidence.kinds}


class CatalogDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = Field(min_length=1, max_length=64)
    evidence_kinds: list[EvidenceKind] = Field(default_factory=list)
    frameworks: list[Framework] = Field(min_length=1)
    controls: list[Control] = Field(min_length=1)

    @field_validator("version", mode="before")
    @classmethod
    def _version_is_text(cls, v: Any) -> Any:
        if not isinstance(v, str):
            raise ValueError('must be a quoted string, e.g. version: "2026.1"')
        return v

    @model_validator(mode="after")
    def _consistent(self) -> CatalogDocument:
        frameworks = [f.id for f in self.frameworks]
        if len(set(frameworks)) != len(frameworks):
            raise ValueError("frameworks: an id is listed twice")
        seen: set[str] = set()
        for i, control in enumerate(self.controls):
            if control.id in seen:
                raise ValueError(f"controls.{i}.id: {control.id} is listed twice")
            seen.add(control.id)
            if control.framework not in frameworks:
                raise ValueError(
                    f"controls.{i}.framework: {control.framework!r} is not a framework "
                    f"(one of {frameworks})"
                )
        return self

    def framework(self, framework_id: str) -> Framework:
        return next(f for f in self.frameworks if f.id == framework_id)


def policy_evidence_kinds(loaded: LoadedPolicy) -> set[str]:
    """Every evidence kind the policy requires at some stage or gate of some tier."""
    doc = loaded.document
    kinds: set[str] = set()
    for rules in doc.tiers.values():
        for stage_kinds in rules.evidence.values():
            kinds.update(stage_kinds)
        for gate in rules.gates:
            kinds.update(gate.evidence)
    for gate in doc.live.gates:
        kinds.update(gate.evidence)
    return kinds


def check_against_policy(doc: CatalogDocument, loaded: LoadedPolicy) -> list[str]:
    """Problems of a catalog read against a policy: evidence kinds nobody could know."""
    known = policy_evidence_kinds(loaded) | set(doc.evidence_kinds)
    problems: list[str] = []
    for i, control in enumerate(doc.controls):
        for j, req in enumerate(control.satisfied_by):
            if req.evidence is None:
                continue
            for kind in req.evidence.kinds:
                if kind not in known:
                    problems.append(
                        f"controls.{i}.satisfied_by.{j}.evidence.kinds: unknown evidence kind "
                        f"{kind!r} in {control.id} (the policy {loaded.version} names "
                        f"{sorted(policy_evidence_kinds(loaded))}; add it to the catalog's "
                        "evidence_kinds if no gate requires it)"
                    )
    return problems


@dataclass(frozen=True)
class LoadedCatalog:
    document: CatalogDocument
    sha256: str
    text: str
    path: str

    @property
    def version(self) -> str:
        return self.document.version

    def pin(self) -> PinnedCatalog:
        return PinnedCatalog(version=self.document.version, sha256=self.sha256)

    @property
    def controls(self) -> list[Control]:
        return self.document.controls

    def control(self, control_id: str) -> Control | None:
        return next((c for c in self.document.controls if c.id == control_id), None)


def _explain(path: Path, exc: ValidationError) -> ConfigFileError:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(document)"
        parts.append(f"{loc}: {err['msg']}")
    return ConfigFileError(f"{path}: " + "; ".join(parts))


def parse_catalog(path: Path, raw: bytes, policy: LoadedPolicy) -> LoadedCatalog:
    """The catalog in ``raw`` (the bytes of ``path``), validated against ``policy``."""
    try:
        text = raw.decode("utf-8")
        data = yaml.safe_load(text)
    except UnicodeDecodeError:
        raise ConfigFileError(f"{path}: must be UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"{path}: not valid YAML ({exc})") from None
    try:
        doc = CatalogDocument.model_validate(data)
    except ValidationError as exc:
        raise _explain(path, exc) from None
    problems = check_against_policy(doc, policy)
    if problems:
        raise ConfigFileError(f"{path}: " + "; ".join(problems))
    return LoadedCatalog(doc, hashlib.sha256(raw).hexdigest(), text, str(path))


def load_catalog(path: str | Path, policy: LoadedPolicy) -> LoadedCatalog:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigFileError(f"{p}: cannot read ({exc.strerror})") from None
    return parse_catalog(p, raw, policy)


def markdown_table(catalog: LoadedCatalog, frameworks: Iterable[str] | None = None) -> str:
    """The README's table of controls: framework, identifier, title, applies to, satisfied by."""
    wanted = set(frameworks) if frameworks is not None else None
    rows = [
        "| framework | control | title (paraphrased) | applies to | satisfied by |",
        "|---|---|---|---|---|",
    ]
    for c in catalog.controls:
        if wanted is not None and c.framework not in wanted:
            continue
        applies = ", ".join(t.value for t in c.applies.tiers)
        if len(c.applies.tiers) == len(RiskTier):
            applies = "every tier"
        if c.applies.eu_annex_iii:
            points = ", ".join(c.applies.eu_annex_iii)
            applies = f"use cases marked EU Annex III {points}" + (
                "" if len(c.applies.tiers) == len(RiskTier) else f" ({applies})"
            )
        satisfied = "; ".join(r.describe() for r in c.satisfied_by)
        title = catalog.document.framework(c.framework).title
        rows.append(f"| {title} | {c.ref} | {c.title} | {applies} | {satisfied} |")
    return "\n".join(rows)


__all__ = [
    "EVIDENCE_SCOPES",
    "Capability",
    "CatalogDocument",
    "Control",
    "Framework",
    "LoadedCatalog",
    "Requirement",
    "check_against_policy",
    "load_catalog",
    "markdown_table",
    "parse_catalog",
    "policy_evidence_kinds",
]
