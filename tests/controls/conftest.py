"""The API in-process against the real dev server, worker and SQLite store (the same fixtures as
``tests/api``), and the NIST OSCAL JSON schemas every exported document is validated against."""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs
import pytest

from tests.api.conftest import api, api_settings
from tests.controls.schemas import schema_dir

__all__ = ["api", "api_settings", "oscal_errors"]


def _validator(name: str) -> Any:
    path = schema_dir() / name
    return jsonschema_rs.validator_for(json.loads(path.read_text(encoding="utf-8")))


@pytest.fixture(scope="session")
def oscal_errors() -> Any:
    """``oscal_errors(doc)``: the schema errors of an OSCAL JSON document (catalog or
    assessment-results, by its root key); an empty list when it validates."""
    validators = {
        "catalog": _validator("oscal_catalog_schema.json"),
        "assessment-results": _validator("oscal_assessment-results_schema.json"),
    }

    def errors(doc: dict[str, Any]) -> list[str]:
        (root,) = doc.keys()
        return [f"{e.instance_path}: {e.message}" for e in validators[root].iter_errors(doc)]

    return errors
