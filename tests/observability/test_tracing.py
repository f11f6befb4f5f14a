"""OpenTelemetry: one trace from the API request through Temporal into the worker's activities,
collected by an in-memory exporter."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from temporalio.testing import WorkflowEnvironment

from services import observability
from services.settings import Settings
from services.store.db import make_engine, make_sessionmaker
from services.temporal import connect
from services.worker.main import build_worker, release_activities
from services.worker.notify import LogAdapter
from tests.api.conftest import auth
from tests.api.test_use_cases import new_body
from tests.harness import HOOK_SECRET, api_client, suite_settings


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observability.use_tracer_provider(provider)
    try:
        yield exporter
    finally:
        observability.use_tracer_provider(None)
        provider.shutdown()


@pytest.fixture
async def traced_api(
    exporter: InMemorySpanExporter, temporal_env: WorkflowEnvironment, store_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """Worker and API each connected by services.temporal.connect with tracing on."""
    settings = suite_settings(temporal_env, f"traced-{uuid.uuid4().hex[:8]}", store_url)
    engine = make_engine(store_url)
    worker_client = await connect(settings)
    try:
        async with (
            httpx.AsyncClient() as http,
            build_worker(
                worker_client,
                settings,
                release_activities(make_sessionmaker(engine), [LogAdapter()], http, HOOK_SECRET),
            ),
            api_client(settings) as api,
        ):
            yield api
    finally:
        await engine.dispose()


async def finished(
    exporter: InMemorySpanExporter, until: Callable[[ReadableSpan], bool]
) -> list[ReadableSpan]:
    for _ in range(200):
        spans = list(exporter.get_finished_spans())
        if any(until(s) for s in spans):
            return spans
        await asyncio.sleep(0.05)
    raise AssertionError(sorted(s.name for s in exporter.get_finished_spans()))


def only(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, sorted(s.name for s in spans))
    return found[0]


async def test_trace_links_api_request_to_worker_activities(
    traced_api: httpx.AsyncClient, exporter: InMemorySpanExporter
) -> None:
    r = await traced_api.post("/v1/use-cases", json=new_body("low"), headers=auth("dana"))
    assert r.status_code == 201, r.text
    wid = r.json()["id"]
    r = await traced_api.post(
        f"/v1/use-cases/{wid}/stages/scoping/complete",
        json={"evidence": [], "comment": "scoped"},
        headers=auth("dana"),
    )
    assert r.status_code == 200, r.text
    # the store step (a local activity) runs before the update answers
    spans = await finished(exporter, lambda s: s.name == "RunActivity:store.persist")

    start = only(spans, "POST /v1/use-cases")
    assert start.kind == SpanKind.SERVER
    assert start.attributes is not None
    assert start.attributes["http.route"] == "/v1/use-cases"
    assert start.attributes["http.response.status_code"] == 201
    assert start.attributes["releasegate.workflow_id"] == wid
    trace_id = start.context.trace_id
    in_trace = [s for s in spans if s.context.trace_id == trace_id]
    names = {s.name for s in in_trace}

    # API → client StartWorkflow → worker RunWorkflow → StartActivity → RunActivity
    client_start = only(in_trace, "StartWorkflow:UseCaseRelease")
    assert client_start.parent is not None
    assert client_start.parent.span_id == start.context.span_id
    assert "RunWorkflow:UseCaseRelease" in names
    activities = [s for s in in_trace if s.name.startswith("RunActivity:")]
    assert activities, sorted(names)
    assert "RunActivity:store.persist" in {s.name for s in activities}

    # an update: API span → StartWorkflowUpdate; the workflow's HandleUpdate span links to it
    complete = only(spans, "POST /v1/use-cases/{use_case_id}/stages/{stage}/complete")
    update = only(spans, "StartWorkflowUpdate:complete_stage")
    assert update.context.trace_id == complete.context.trace_id
    assert update.parent is not None
    assert update.parent.span_id == complete.context.span_id
    handled = only(spans, "HandleUpdate:complete_stage")
    assert handled.context.trace_id == trace_id  # it belongs to the run's trace ...
    assert any(  # ... and points back at the request that sent it
        link.context.span_id == update.context.span_id for link in handled.links
    )


async def test_incoming_traceparent_is_continued(
    traced_api: httpx.AsyncClient, exporter: InMemorySpanExporter
) -> None:
    trace_id = uuid.uuid4().hex
    parent = uuid.uuid4().hex[:16]
    r = await traced_api.get(
        "/v1/approvals/pending",
        headers={**auth("rita"), "traceparent": f"00-{trace_id}-{parent}-01"},
    )
    assert r.status_code == 200
    span = only(list(exporter.get_finished_spans()), "GET /v1/approvals/pending")
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == parent


def test_tracing_is_off_without_an_exporter() -> None:
    observability.use_tracer_provider(None)
    assert observability.setup_tracing(Settings(), "releasegate-api") is None
    assert observability.client_interceptors() == []
