"""Property-based requests over the API's own OpenAPI document: no server errors, and every error
is a problem document (issue 11: "Schemathesis … 0 server errors").

Schemathesis generates requests for every operation from the schema the app serves, valid ones
and invalid ones, and sends them to the app in-process (ASGI) over the real dev server, worker
and store. Path ids are sometimes real runs (one at scoping, one live with a change), so the
commands reach the workflow's validators and not only the 404 of an unknown id. Once as dana
(delivery lead of those runs), once as rita (a risk approver on them, eligible for little).

Schemathesis drives the app on its own event loop in a thread while this test's loop keeps
running the worker, so the runs move as they would behind a real server.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.python import asgi

from services.api.app import create_app
from services.settings import Settings
from tests.api.conftest import auth
from tests.harness import ReleaseHarness
from tests.security import runs
from tests.security.runs import PROBLEM

# per operation, generation mode and caller; raise it for a deeper run (the budget follows)
MAX_EXAMPLES = int(os.environ.get("RELEASEGATE_FUZZ_EXAMPLES", "15"))
EXAMPLE_DEADLINE = timedelta(seconds=10)
REQUEST_TIMEOUT_S = 20.0
# per caller; operations not reached in time are reported, never skipped quietly
BUDGET_S = 100.0 * max(1.0, MAX_EXAMPLES / 15)
# 503s a request may get from a dependency this set-up leaves out on purpose (problem types)
ABSENT_ON_PURPOSE: frozenset[str] = frozenset()
PROBLEM_MEMBERS = ("type", "title", "status", "detail")


@dataclass
class Findings:
    """What the run found: failures by operation, and the status codes seen."""

    failures: dict[str, str] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    requests: int = 0
    not_reached: list[str] = field(default_factory=list)


def problem_of(response: Any) -> str | None:
    """Why ``response`` breaks the contract, or None when it keeps it."""
    status = response.status_code
    content_type = (response.headers.get("content-type") or [""])[0]
    if status >= 500 and not (status == 503 and _problem_type(response) in ABSENT_ON_PURPOSE):
        return f"server error {status}: {response.text[:300]}"
    if status >= 400:
        if content_type.split(";")[0].strip() != PROBLEM:
            return f"{status} answered {content_type!r}, not {PROBLEM}: {response.text[:200]}"
        doc = response.json()
        missing = [m for m in PROBLEM_MEMBERS if m not in doc]
        if missing or doc["status"] != status:
            return f"{status} problem document lacking {missing} or saying {doc.get('status')}"
    return None


def _problem_type(response: Any) -> str:
    try:
        return str(response.json().get("type", "")).rsplit(":", 1)[-1]
    except ValueError:
        return ""


@contextmanager
def app_client(app: Any) -> Iterator[Any]:
    """Schemathesis's ASGI client, with the app's lifespan started once for the whole run."""
    client = asgi.get_client(app)
    try:
        with client:
            yield client
    finally:
        asgi.shutdown_lifespans()


def path_choices(
    operation: Any, real: dict[str, list[str]]
) -> st.SearchStrategy[dict[str, str] | None]:
    """Real path ids for the operation's path parameters, or None to let schemathesis make
    them up."""
    names = {p.name for p in operation.path_parameters}
    options: list[dict[str, str]] = []
    for use_case_id in real["use_case_id"]:
        choice = {"use_case_id": use_case_id}
        if "change_id" in names:
            choice["change_id"] = "change-1"
        options.append(choice)
    if "use_case_id" not in names:
        return st.none()
    return st.one_of(st.none(), st.sampled_from(options))


def fuzz(app: Any, token: str, real: dict[str, list[str]]) -> Findings:
    """Every operation of the app's schema, both generation modes, ``MAX_EXAMPLES`` each."""
    found = Findings()
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {token}"}
    started = time.monotonic()
    with app_client(app) as client:
        operations = []
        for result in schema.get_all_operations():
            if isinstance(result, Ok):
                operations.append(result.ok())
            else:  # the app's own schema does not hold together: that is a finding too
                found.failures[f"schema: {result.err()}"] = "invalid operation"
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                label = f"{operation.label} [{mode.value}]"
                if time.monotonic() - started > BUDGET_S:
                    found.not_reached.append(label)
                    continue
                _fuzz_operation(operation, mode, client, headers, real, found, label)
    return found


def _fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    client: Any,
    headers: dict[str, str],
    real: dict[str, list[str]],
    found: Findings,
    label: str,
) -> None:
    cases = st.tuples(operation.as_strategy(mode), path_choices(operation, real))

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=EXAMPLE_DEADLINE,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(cases)
    def check(drawn: tuple[Any, dict[str, str] | None]) -> None:
        case, path = drawn
        if path is not None:
            case.path_parameters = {**(case.path_parameters or {}), **path}
        response = case.call(session=client, headers=headers, timeout=REQUEST_TIMEOUT_S)
        found.requests += 1
        found.statuses[response.status_code] = found.statuses.get(response.status_code, 0) + 1
        broken = problem_of(response)
        assert broken is None, f"{broken}\n{case.as_curl_command(headers=headers)}"

    try:
        check()
    except Unsatisfiable:
        pass  # nothing of this operation can be made invalid (no body, free-form path ids)
    except Exception as exc:  # noqa: BLE001 - every operation's failure is reported together
        found.failures[label] = f"{type(exc).__name__}: {exc}"[:2000]


async def real_runs(api: httpx.AsyncClient) -> dict[str, list[str]]:
    """A run at scoping and a live one with an open change, both dana's; by id and by key."""
    scoping = await runs.start(api, "low")
    live = await runs.walk(api, await runs.start(api, "low"), "live")
    r = await api.post(
        f"/v1/use-cases/{live['id']}/changes",
        json={"summary": "prompt tweak", "materiality": "minor"},
        headers={"Authorization": "Bearer dev-dana"},
    )
    assert r.status_code == 201, r.text
    return {"use_case_id": [scoping["id"], live["key"], live["id"]]}


@pytest.mark.timeout(600 * max(1, MAX_EXAMPLES // 15))
@pytest.mark.parametrize("token", ["dev-dana", "dev-rita"])
async def test_no_server_errors_and_every_error_is_a_problem(
    api: httpx.AsyncClient, api_settings: Settings, release: ReleaseHarness, token: str
) -> None:
    real = await real_runs(api)
    app = create_app(api_settings)
    began = time.monotonic()
    found = await asyncio.to_thread(fuzz, app, token, real)
    took = time.monotonic() - began
    statuses = sorted(found.statuses.items())
    report = f"{found.requests} requests in {took:.0f} s as {token}; statuses {statuses}"
    assert not found.not_reached, (
        f"over the time budget, not reached: {found.not_reached}; {report}"
    )
    assert not found.failures, "\n\n".join(
        [report, *(f"{op}: {why}" for op, why in found.failures.items())]
    )
    assert found.requests > 0, report


# ----------------------------------------------------------------------------- found, and pinned
# What fuzzing and probing at the edges found (fixed in services/), each as the request it took.


async def test_a_window_past_year_one_or_9999_is_422(api: httpx.AsyncClient) -> None:
    """Was 500: an offset moving the instant out of datetime's range (OverflowError)."""
    for query in (
        "since=0001-01-01T00:00:00%2B14:00",
        "until=9999-12-31T23:59:59-14:00",
    ):
        r = await api.get(f"/v1/metrics/flow?{query}", headers=auth("carla"))
        assert r.status_code == 422, (query, r.text)
        assert r.headers["content-type"] == PROBLEM


async def test_a_nul_in_text_is_refused_naming_the_field(api: httpx.AsyncClient) -> None:
    """Was 201, then a ledger blocked for good on PostgreSQL (which refuses U+0000 in text):
    one participant's comment took the run's audit record down."""
    uc = await runs.start(api, "low")
    path = f"/v1/use-cases/{uc['id']}"
    before = await runs.state(api, path)
    notes = runs.ev("notes")
    for route, doc, named in (
        ("/evidence", {"evidence": [{**notes, "name": "notes\x00.pdf"}]}, "evidence.0.name"),
        ("/evidence", {"evidence": [notes], "comment": "a\x00b"}, "comment"),
        ("/stages/scoping/complete", {"comment": "done\x00"}, "comment"),
    ):
        r = await api.post(f"{path}{route}", json=doc, headers=auth("dana"))
        assert r.status_code == 422, (route, r.text)
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["detail"].startswith(f"{named}:"), r.text
    r = await api.put(
        f"{path}/deputies", json={"deputies": {}, "comment": "\x00"}, headers=auth("bo")
    )
    assert r.status_code == 422, r.text
    assert (await runs.state(api, path))["event_count"] == before["event_count"]
    r = await api.post(
        "/v1/use-cases", json=runs.body("low", title="Claims\x00"), headers=auth("dana")
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("title:"), r.text


async def test_a_nul_in_a_path_or_query_is_400(api: httpx.AsyncClient) -> None:
    """Was 503 "database unreachable" on PostgreSQL (the driver refuses U+0000)."""
    for url in (
        "/v1/use-cases?owner=%00bo",
        "/v1/use-cases/usecase-a%00b/ledger",
        "/v1/use-cases/usecase-a%00b/evidence-pack",
    ):
        r = await api.get(url, headers=auth("carla"))
        assert r.status_code == 400, (url, r.text)
        assert r.headers["content-type"] == PROBLEM
