"""Loading the control catalog: the shipped file, and clear errors for files that cannot be used
(unknown evidence kinds checked against the policy, missing sources, unknown frameworks,
duplicates, bad YAML); the README's table matches the catalog."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.controls.catalog import load_catalog, markdown_table, parse_catalog
from services.settings import PROJECT_ROOT
from tests.controls.schemas import SCHEMAS, schema_dir
from workflows.policy import ConfigFileError, load_policy

CATALOG = PROJECT_ROOT / "config" / "controls.yaml"
POLICY = load_policy(PROJECT_ROOT / "config" / "policy.yaml")


def shipped() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(CATALOG.read_text(encoding="utf-8"))
    return doc


def load_doc(tmp_path: Path, doc: dict[str, Any]) -> Any:
    path = tmp_path / "controls.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return load_catalog(path, POLICY)


def test_shipped_catalog_covers_the_four_frameworks() -> None:
    catalog = load_catalog(CATALOG, POLICY)
    assert catalog.sha256 == hashlib.sha256(CATALOG.read_bytes()).hexdigest()
    assert catalog.pin().version == catalog.version == shipped()["version"]
    by_framework: dict[str, set[str]] = {}
    for c in catalog.controls:
        by_framework.setdefault(c.framework, set()).add(c.ref)
        assert c.source.strip(), c.id
    assert by_framework["nist-ai-rmf"] >= {
        "GOVERN 1.6",
        "MAP 1.5",
        "MEASURE 1.3",
        "MEASURE 2.4",
        "MANAGE 2.4",
    }
    assert by_framework["iso-42001"] >= {"A.6.2.4", "A.6.2.5", "A.6.2.6", "A.6.2.8"}
    assert by_framework["eu-ai-act"] >= {
        "Art. 9",
        "Art. 11",
        "Art. 12",
        "Art. 14",
        "Art. 26",
        "Art. 27",
        "Art. 72",
    }
    assert len(by_framework["sr-11-7"]) >= 4
    fria = catalog.control("eu-ai-act.art-27")
    assert fria is not None
    assert fria.applies.eu_annex_iii == ["5b", "5c"]


def test_unknown_evidence_kind_names_the_control_and_the_policy(tmp_path: Path) -> None:
    doc = shipped()
    doc["controls"][1]["satisfied_by"][0] = {
        "evidence": {"kinds": ["risk_assesment"], "at": ["risk_signoff"]}
    }
    with pytest.raises(ConfigFileError) as err:
        load_doc(tmp_path, doc)
    message = str(err.value)
    assert "controls.1.satisfied_by.0.evidence.kinds" in message
    assert "unknown evidence kind 'risk_assesment'" in message
    assert doc["controls"][1]["id"] in message
    assert f"the policy {POLICY.version} names" in message
    assert "'risk_assessment'" in message  # the kinds it could have meant


def test_a_kind_the_policy_does_not_require_is_known_once_declared(tmp_path: Path) -> None:
    doc = shipped()
    doc["evidence_kinds"] = []
    with pytest.raises(ConfigFileError, match="unknown evidence kind 'fria'"):
        load_doc(tmp_path, doc)
    doc["evidence_kinds"] = ["fria"]
    assert load_doc(tmp_path, doc).control("eu-ai-act.art-27") is not None


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d["controls"][0].pop("source"), "controls.0.source: Field required"),
        (lambda d: d["controls"][2].update(source=""), "controls.2.source: String should have"),
        (lambda d: d["frameworks"][0].pop("source"), "frameworks.0.source: Field required"),
        (
            lambda d: d["controls"][0].update(framework="cobit"),
            "controls.0.framework: 'cobit' is not a framework",
        ),
        (
            lambda d: d["controls"][1].update(id=d["controls"][0]["id"]),
            "is listed twice",
        ),
        (
            lambda d: d["controls"][0].update(satisfied_by=[{"capability": "telepathy"}]),
            "controls.0.satisfied_by.0.capability",
        ),
        (
            lambda d: d["controls"][0].update(
                satisfied_by=[{"evidence": {"kinds": ["runbook"], "at": ["launch"]}}]
            ),
            "unknown stage or gate ['launch']",
        ),
        (
            lambda d: d["controls"][0].update(satisfied_by=[{"ledger": {}, "inventory": {}}]),
            "exactly one of",
        ),
        (
            lambda d: d["controls"][0].update(satisfied_by=[{"gate": {"gate": "launch"}}]),
            "controls.0.satisfied_by.0.gate.gate",
        ),
        (lambda d: d.update(version=2026.1), "version: Value error, must be a quoted string"),
    ],
)
def test_bad_catalog_fails_with_file_and_field(tmp_path: Path, edit: Any, expected: str) -> None:
    doc = shipped()
    edit(doc)
    with pytest.raises(ConfigFileError) as err:
        load_doc(tmp_path, doc)
    assert str(err.value).startswith(str(tmp_path / "controls.yaml"))
    assert expected in str(err.value)


def test_unreadable_or_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot read"):
        load_catalog(tmp_path / "missing.yaml", POLICY)
    with pytest.raises(ConfigFileError, match="not valid YAML"):
        parse_catalog(tmp_path / "x.yaml", b"controls: [", POLICY)
    with pytest.raises(ConfigFileError, match="must be UTF-8"):
        parse_catalog(tmp_path / "x.yaml", b"\xff\xfe", POLICY)


def test_readme_table_is_the_catalog() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert markdown_table(load_catalog(CATALOG, POLICY)) in readme


def test_schemas_are_the_recorded_release() -> None:
    """The NIST schemas the exports are validated against are the pinned release."""
    folder = schema_dir()
    for name, digest in SCHEMAS.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest


def test_offline_exports(capsys: pytest.CaptureFixture[str], oscal_errors: Any) -> None:
    from services.controls.__main__ import main

    assert main(["oscal"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert oscal_errors(doc) == []
    assert main(["markdown"]) == 0
    assert markdown_table(load_catalog(CATALOG, POLICY)) in capsys.readouterr().out
    assert main(["yaml"]) == 2
