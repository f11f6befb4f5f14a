"""The API with monitoring sources configured, in-process against the real dev server, worker
and SQLite store (as tests/api), and a loopback receiver for the deploy and rollback hooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from services.settings import Settings
from tests.harness import HOOK_ALLOWED_HOSTS, ReleaseHarness, api_client, suite_settings
from tests.workflows.test_live import HookReceiver

AM_TOKEN = "am-secret-token-0123456789"
GRAFANA_TOKEN = "grafana-secret-token-0123"
DEPLOY_TOKEN = "deploy-pipeline-token-0123"
SIGNAL_TOKENS = f"alertmanager:{AM_TOKEN},grafana:{GRAFANA_TOKEN},deploy:{DEPLOY_TOKEN}"
AM = {"Authorization": f"Bearer {AM_TOKEN}"}


@pytest.fixture(scope="session")
async def signal_settings(
    temporal_env: WorkflowEnvironment, release: ReleaseHarness, store_url: str
) -> Settings:
    """The API's settings of tests/api, with monitoring sources and the hook receivers' host."""
    return suite_settings(
        temporal_env,
        release.task_queue,
        store_url,
        RELEASEGATE_SIGNAL_TOKENS=SecretStr(SIGNAL_TOKENS),
        RELEASEGATE_HOOK_ALLOWED_HOSTS=HOOK_ALLOWED_HOSTS,
    )


@pytest.fixture(scope="module")
async def sapi(signal_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API with RELEASEGATE_SIGNAL_TOKENS set (sources alertmanager, grafana, deploy)."""
    async with api_client(signal_settings) as client:
        yield client


@pytest.fixture(scope="module")
async def replica(signal_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A second API process's app: its own Temporal client, facts cache and everything."""
    async with api_client(signal_settings) as client:
        yield client


@pytest.fixture(scope="module")
def receiver() -> Iterator[HookReceiver]:
    r = HookReceiver()
    yield r
    r.server.shutdown()


def alert(
    use_case: str,
    fingerprint: str,
    *,
    status: str = "firing",
    severity: str = "warning",
    alertname: str = "HighErrorRate",
    starts_at: datetime | None = None,
    **labels: str,
) -> dict[str, Any]:
    """One alert exactly as Alertmanager's webhook sends it (version 4)."""
    start = starts_at or datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    end = start + timedelta(minutes=30) if status == "resolved" else None
    return {
        "status": status,
        "labels": {
            "alertname": alertname,
            "severity": severity,
            "releasegate_use_case": use_case,
            "job": "claims-triage",
            **labels,
        },
        "annotations": {
            "summary": f"{alertname} on {use_case}",
            "description": "5xx ratio above 5% for 10m",
        },
        "startsAt": start.isoformat().replace("+00:00", "Z"),
        "endsAt": end.isoformat().replace("+00:00", "Z") if end else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=rate%28http_errors%5B5m%5D%29",
        "fingerprint": fingerprint,
    }


def payload(*alerts: dict[str, Any], status: str | None = None) -> dict[str, Any]:
    """Alertmanager's webhook body around ``alerts``: group and common labels as it computes
    them (the common labels are those every alert shares)."""
    common = dict(alerts[0]["labels"]) if alerts else {}
    for a in alerts[1:]:
        common = {k: v for k, v in common.items() if a["labels"].get(k) == v}
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "receiver": "releasegate",
        "status": status or ("firing" if firing else "resolved"),
        "alerts": list(alerts),
        "groupLabels": {"alertname": common.get("alertname", "")} if common else {},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRate"}',
        "truncatedAlerts": 0,
    }


def signed(
    source: str, token: str, body: dict[str, Any], *, at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    """A generic signal's body and headers, signed with the source's token."""
    raw = json.dumps(body).encode()
    stamp = str(int(at if at is not None else time.time()))
    mac = hmac.new(token.encode(), stamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
    return raw, {
        "Content-Type": "application/json",
        "X-ReleaseGate-Source": source,
        "X-ReleaseGate-Timestamp": stamp,
        "X-ReleaseGate-Signature": f"sha256={mac}",
    }


def signals_counted(source: str, outcome: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "releasegate_signals_total", {"source": source, "outcome": outcome}
        )
        or 0.0
    )
