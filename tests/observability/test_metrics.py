"""Prometheus: the API's /metrics after real decisions, and the worker's Temporal SDK metrics
served by the SDK runtime on RELEASEGATE_WORKER_METRICS_PORT."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import WorkflowEnvironment

from services.worker.main import run_worker
from tests.api.conftest import approve, auth
from tests.api.test_use_cases import create, walk
from tests.harness import suite_settings
from tests.security.nginx import free_port
from tests.workflows.helpers import make_input
from workflows.release import UseCaseRelease

DECIDE_ROUTE = "/v1/use-cases/{use_case_id}/gates/{gate}/decisions"


async def scrape(api: httpx.AsyncClient, **headers: str) -> dict[tuple[str, frozenset[Any]], float]:
    r = await api.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return samples(r.text)


def samples(text: str) -> dict[tuple[str, frozenset[Any]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: dict[tuple[str, frozenset[Any]], float], name: str, **labels: str) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_count_requests_decisions_and_gate_wait(
    make_api: Callable[..., Any],
) -> None:
    api: httpx.AsyncClient = await make_api()
    before = await scrape(api)

    uc = await create(api, "low")
    await walk(api, uc, "live")
    # the same gate again: the workflow refuses, and that is counted with the problem code
    r = await approve(api, f"/v1/use-cases/{uc['id']}", "go_live", "bo")
    assert r.status_code == 409
    refused_code = r.json()["type"].rpartition(":")[2]
    await api.get("/no/such/path", headers=auth("bo"))

    after = await scrape(api)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    for gate, person_count in (("risk_signoff", 1), ("ops_handoff", 1), ("go_live", 1)):
        assert (
            delta("releasegate_decisions_total", gate=gate, decision="approve", outcome="accepted")
            == person_count
        )
        assert delta("releasegate_gate_wait_seconds_count", gate=gate) == 1
        assert delta("releasegate_gate_wait_seconds_sum", gate=gate) > 0
    assert (
        delta(
            "releasegate_decisions_total",
            gate="go_live",
            decision="approve",
            outcome=f"refused:{refused_code}",
        )
        == 1
    )
    # HTTP requests by route template (never the raw path) and status
    assert (
        delta("releasegate_http_requests_total", method="POST", route=DECIDE_ROUTE, status="200")
        == 3
    )
    assert (
        delta("releasegate_http_requests_total", method="POST", route=DECIDE_ROUTE, status="409")
        == 1
    )
    assert (
        delta("releasegate_http_requests_total", method="POST", route="/v1/use-cases", status="201")
        == 1
    )
    assert (
        delta("releasegate_http_requests_total", method="GET", route="unmatched", status="404") == 1
    )
    assert (
        delta("releasegate_http_request_duration_seconds_count", method="POST", route=DECIDE_ROUTE)
        == 4
    )
    assert not any(uc["id"] in str(labels) for _, labels in after)


async def test_gate_wait_of_a_gate_this_replica_never_saw_open(
    make_api: Callable[..., Any],
) -> None:
    """Another replica (a fresh app) takes the passing decision: it asks the run when the gate
    opened instead of guessing."""
    first: httpx.AsyncClient = await make_api()
    second: httpx.AsyncClient = await make_api()
    uc = await create(first, "low")
    await walk(first, uc, "go_live")
    before = await scrape(second)
    r = await approve(second, f"/v1/use-cases/{uc['id']}", "go_live", "bo")
    assert r.status_code == 200, r.text
    after = await scrape(second)
    name = "releasegate_gate_wait_seconds_count"
    assert value(after, name, gate="go_live") - value(before, name, gate="go_live") == 1


async def test_metrics_token_when_configured(make_api: Callable[..., Any]) -> None:
    api: httpx.AsyncClient = await make_api(RELEASEGATE_METRICS_TOKEN="scrape-secret")
    assert (await api.get("/metrics")).status_code == 401
    assert (await api.get("/metrics", headers=auth("bo"))).status_code == 401
    r = await api.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert r.status_code == 200
    assert "releasegate_http_requests_total" in r.text


async def test_worker_serves_temporal_sdk_metrics(
    temporal_env: WorkflowEnvironment, store_url: str
) -> None:
    """run_worker with RELEASEGATE_WORKER_METRICS_PORT: the SDK runtime serves Prometheus."""
    port = free_port()
    settings = suite_settings(
        temporal_env,
        f"metrics-{uuid.uuid4().hex[:8]}",
        store_url,
        RELEASEGATE_WORKER_METRICS_PORT=port,
    )
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop))
    try:
        inp = make_input("low")
        handle = await temporal_env.client.start_workflow(
            UseCaseRelease.run, inp, id=f"usecase-{inp.key}", task_queue=settings.task_queue
        )
        state = await handle.query(UseCaseRelease.state)
        assert state.stage.value == "scoping"
        await handle.terminate("metrics seen")

        metrics: dict[tuple[str, frozenset[Any]], float] = {}
        async with httpx.AsyncClient() as http:
            for _ in range(100):
                r = await http.get(f"http://127.0.0.1:{port}/metrics")
                metrics = samples(r.text)
                if any(
                    name.startswith("temporal_workflow_task")
                    and ("task_queue", settings.task_queue) in labels
                    for name, labels in metrics
                ):
                    break
                await asyncio.sleep(0.1)
        names = {name for name, labels in metrics if ("task_queue", settings.task_queue) in labels}
        assert any(n.startswith("temporal_workflow_task") for n in names), sorted(names)
        # the store step is a local activity (one trip per workflow task)
        activity = ("temporal_activity", "temporal_local_activity")
        assert any(n.startswith(activity) for n in names), sorted(names)
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=30)
    assert not worker.exception()


@pytest.mark.parametrize("port", [0, 70000])
def test_worker_metrics_port_is_validated(port: int) -> None:
    from services.settings import ConfigError, load_settings

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RELEASEGATE_WORKER_METRICS_PORT", str(port))
        with pytest.raises(ConfigError, match="RELEASEGATE_WORKER_METRICS_PORT"):
            load_settings()
