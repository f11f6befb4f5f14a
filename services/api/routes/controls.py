"""Controls: the catalog, one use case's controls judged from its ledger, and both as OSCAL.

Served from the store alone, like the ledger routes, and need-to-know in the same way
(``ReadableRecord``: 404 for a run the caller may not read). ``?format=oscal`` answers an OSCAL
document built with compliance-trestle's models (``services.controls.oscal``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.api.deps import CurrentPerson, DbSession, ReadableRecord, Res
from services.api.problems import Problem
from services.controls import oscal
from services.controls.catalog import CatalogDocument, LoadedCatalog
from services.controls.evaluate import ControlsView
from services.controls.service import use_case_controls
from services.store.audit import UnknownUseCase

router = APIRouter(tags=["controls"])

Format = Annotated[
    Literal["json", "oscal"],
    Query(description="`oscal`: an OSCAL JSON document instead of ReleaseGate's own"),
]
RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown use case, or one the caller may not read"},
    503: {"description": "The database is unreachable, or the run's ledger is blocked"},
}


class CatalogView(BaseModel):
    version: str
    sha256: str
    document: CatalogDocument


def _catalog(res: Res) -> LoadedCatalog:
    if res.catalog is None:
        raise Problem(404, "no control catalog is configured", code="not-found")
    return res.catalog


@router.get("/v1/controls/catalog", response_model=CatalogView)
async def get_catalog(_: CurrentPerson, res: Res, format: Format = "json") -> Any:
    """The control catalog every new run pins: frameworks, controls, what satisfies each."""
    catalog = _catalog(res)
    if format == "oscal":
        doc = oscal.catalog_document(catalog, at=datetime.now(UTC))
        return JSONResponse(oscal.as_json(doc))
    return CatalogView(version=catalog.version, sha256=catalog.sha256, document=catalog.document)


@router.get(
    "/v1/use-cases/{use_case_id}/controls", response_model=ControlsView, responses=RESPONSES
)
async def get_use_case_controls(
    wid: ReadableRecord, session: DbSession, res: Res, format: Format = "json"
) -> Any:
    """Each control of the catalog for this use case: `satisfied`, `pending`, `gap` or
    `not_applicable`, with the evidence items (kind, name, sha256) and decisions (who, when,
    ledger seq) that satisfy it and, for a gap, why it is one."""
    catalog = _catalog(res)
    try:
        view = await use_case_controls(session, wid, catalog, now=datetime.now(UTC))
    except UnknownUseCase:
        raise Problem(404, f"no use case '{wid}'", code="not-found") from None
    if format == "oscal":
        base = res.settings.public_url.rstrip("/")
        doc = oscal.assessment_results(
            view,
            catalog_href=f"{base}/v1/controls/catalog?format=oscal",
            ledger_url=f"{base}/v1/use-cases/{wid}/ledger",
        )
        return JSONResponse(oscal.as_json(doc))
    return view
