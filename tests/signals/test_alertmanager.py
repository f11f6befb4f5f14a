"""Alertmanager's webhook (payload version 4) through the real API, worker and dev server:
firing, repeated, grouped and resolved alerts; a sev1 that suspends with the rollback hook;
authentication, malformed payloads and unknown use cases refused whole and counted."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.api.conftest import auth
from tests.api.test_use_cases import new_body, walk
from tests.signals.conftest import (
    AM,
    GRAFANA_TOKEN,
    alert,
    payload,
    signals_counted,
    signed,
)
from tests.workflows.test_live import HookReceiver

PROBLEM = "application/problem+json"
AM_PATH = "/v1/signals/alertmanager"


async def live_use_case(
    api: httpx.AsyncClient, receiver: HookReceiver | None = None, tier: str = "low"
) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if receiver is not None:
        hooks = receiver.hooks()
        extra["hooks"] = {"deploy_url": hooks.deploy_url, "rollback_url": hooks.rollback_url}
    r = await api.post("/v1/use-cases", json=new_body(tier, **extra), headers=auth("dana"))
    assert r.status_code == 201, r.text
    return await walk(api, r.json(), "live")


async def state(api: httpx.AsyncClient, uc: dict[str, Any]) -> dict[str, Any]:
    r = await api.get(f"/v1/use-cases/{uc['id']}", headers=auth("eve"))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def kinds(api: httpx.AsyncClient, uc: dict[str, Any]) -> list[str]:
    r = await api.get(f"/v1/use-cases/{uc['id']}/history", headers=auth("eve"))
    assert r.status_code == 200, r.text
    return [e["kind"] for e in r.json()]


def fp() -> str:
    return uuid.uuid4().hex[:16]  # Alertmanager's fingerprints are 16 hex digits


async def test_a_firing_alert_opens_one_incident_and_repeats_change_nothing(
    sapi: httpx.AsyncClient, replica: httpx.AsyncClient
) -> None:
    uc = await live_use_case(sapi)
    f1 = fp()
    body = payload(alert(uc["key"], f1, severity="warning"))
    r = await sapi.post(AM_PATH, json=body, headers=AM)
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert receipt["source"] == "alertmanager"
    assert receipt["alerts"] == [
        {
            "fingerprint": f1,
            "status": "firing",
            "use_case": uc["key"],
            "outcome": "accepted",
            "incident": "inc-1",
            "code": None,
            "detail": None,
        }
    ]
    # Alertmanager delivers again (a retry, a repeat_interval, another API replica)
    for client in (sapi, replica, replica):
        again = await client.post(AM_PATH, json=body, headers=AM)
        assert again.status_code == 200, again.text
        assert again.json()["alerts"][0]["incident"] == "inc-1"
    # a re-send of the same alert episode under a new delivery: same fingerprint, later time
    later = payload(alert(uc["key"], f1, severity="warning"))
    later["alerts"][0]["startsAt"] = "2026-11-27T09:05:00Z"
    assert (await replica.post(AM_PATH, json=later, headers=AM)).status_code == 200

    s = await state(sapi, uc)
    assert s["incident_count"] == 1
    assert s["open_alerts"] == 1
    (incident,) = s["incidents"]
    assert incident["fingerprint"] == f1
    assert incident["severity"] == "sev3"  # warning → sev3 (live.alert_severity defaults)
    assert incident["reported_by"] == "signal:alertmanager"
    assert incident["summary"] == f"HighErrorRate: HighErrorRate on {uc['key']}"
    assert incident["resolved_at"] is None
    assert s["stage"] == "live"
    assert (await kinds(sapi, uc)).count("incident_reported") == 1


async def test_grouped_alerts_open_one_incident_each_and_a_regroup_adds_none(
    sapi: httpx.AsyncClient,
) -> None:
    uc = await live_use_case(sapi)
    a, b, c = fp(), fp(), fp()
    first = payload(alert(uc["key"], a, instance="i-1"), alert(uc["key"], b, instance="i-2"))
    r = await sapi.post(AM_PATH, json=first, headers=AM)
    assert r.status_code == 200, r.text
    assert [x["incident"] for x in r.json()["alerts"]] == ["inc-1", "inc-2"]
    # the group grows: Alertmanager re-sends the whole group with the new alert in it
    grown = payload(
        alert(uc["key"], a, instance="i-1"),
        alert(uc["key"], b, instance="i-2"),
        alert(uc["key"], c, instance="i-3"),
    )
    r = await sapi.post(AM_PATH, json=grown, headers=AM)
    assert r.status_code == 200, r.text
    assert [x["incident"] for x in r.json()["alerts"]] == ["inc-1", "inc-2", "inc-3"]
    s = await state(sapi, uc)
    assert s["incident_count"] == 3
    assert (await kinds(sapi, uc)).count("incident_reported") == 3


async def test_a_resolved_alert_is_recorded_on_its_incident_once(sapi: httpx.AsyncClient) -> None:
    uc = await live_use_case(sapi)
    f1, f2 = fp(), fp()
    start = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    r = await sapi.post(
        AM_PATH,
        json=payload(alert(uc["key"], f1, starts_at=start), alert(uc["key"], f2, starts_at=start)),
        headers=AM,
    )
    assert r.status_code == 200, r.text
    # one of the group resolves: Alertmanager sends the group with it resolved, the other firing
    mixed = payload(
        alert(uc["key"], f1, status="resolved", starts_at=start),
        alert(uc["key"], f2, starts_at=start),
    )
    for _ in range(2):  # and sends it again
        r = await sapi.post(AM_PATH, json=mixed, headers=AM)
        assert r.status_code == 200, r.text
        assert [x["outcome"] for x in r.json()["alerts"]] == ["resolved", "accepted"]
    s = await state(sapi, uc)
    by_fp = {i["fingerprint"]: i for i in s["incidents"]}
    assert by_fp[f1]["resolved_at"] is not None
    assert by_fp[f2]["resolved_at"] is None
    assert s["open_alerts"] == 1
    history = await kinds(sapi, uc)
    assert history.count("incident_resolved") == 1
    ledger = (await sapi.get(f"/v1/use-cases/{uc['id']}/ledger", headers=auth("eve"))).json()
    for _ in range(50):
        resolved = [e for e in ledger if e["kind"] == "incident_resolved"]
        if resolved:
            break
        await asyncio.sleep(0.1)
        ledger = (await sapi.get(f"/v1/use-cases/{uc['id']}/ledger", headers=auth("eve"))).json()
    assert [(e["actor"], e["payload"]["incident"]) for e in resolved] == [
        ("signal:alertmanager", by_fp[f1]["id"])
    ]
    # it fires again later: a new episode, a new incident
    again = payload(alert(uc["key"], f1, starts_at=start + timedelta(hours=2)))
    r = await sapi.post(AM_PATH, json=again, headers=AM)
    assert r.status_code == 200, r.text
    assert r.json()["alerts"][0]["incident"] == "inc-3"


async def test_a_critical_alert_suspends_with_the_rollback_hook_once(
    sapi: httpx.AsyncClient, receiver: HookReceiver
) -> None:
    uc = await live_use_case(sapi, receiver)
    body = payload(alert(uc["key"], fp(), severity="critical", alertname="WrongAdvice"))
    for _ in range(3):
        r = await sapi.post(AM_PATH, json=body, headers=AM)
        assert r.status_code == 200, r.text
    s = await state(sapi, uc)
    assert s["stage"] == "suspended"
    assert s["incidents"][0]["severity"] == "sev1"
    assert s["incidents"][0]["suspended"] is True
    await asyncio.sleep(0.5)  # time for a second call, if one were (wrongly) queued
    calls = [
        c for c in await receiver.wait_for("/rollback") if c["body"]["workflow_id"] == uc["id"]
    ]
    assert len(calls) == 1
    assert calls[0]["signed"]
    history = await kinds(sapi, uc)
    assert history.count("suspended") == 1


async def test_a_flood_of_alerts_is_bounded_by_the_incident_rate_limit(
    sapi: httpx.AsyncClient,
) -> None:
    uc = await live_use_case(sapi)
    flood = payload(*(alert(uc["key"], fp(), instance=f"i-{n}") for n in range(23)))
    r = await sapi.post(AM_PATH, json=flood, headers=AM)
    assert r.status_code == 429, r.text
    assert r.headers["content-type"] == PROBLEM
    assert int(r.headers["retry-after"]) >= 1
    outcomes = [a["outcome"] for a in r.json()["alerts"]]
    assert outcomes == ["accepted"] * 20 + ["refused"] * 3  # limits: 20 per reporter per 60 s
    s = await state(sapi, uc)
    assert s["incident_count"] == 20
    # a repeat of what is open is never rate limited: it changes nothing
    repeat = payload(*flood["alerts"][:5])
    r = await sapi.post(AM_PATH, json=repeat, headers=AM)
    assert r.status_code == 200, r.text
    assert (await state(sapi, uc))["incident_count"] == 20


async def test_an_alert_for_a_use_case_that_is_not_live_is_refused(
    sapi: httpx.AsyncClient,
) -> None:
    r = await sapi.post("/v1/use-cases", json=new_body(), headers=auth("dana"))
    uc = r.json()
    body = payload(alert(uc["key"], fp()))
    r = await sapi.post(AM_PATH, json=body, headers=AM)
    assert r.status_code == 409, r.text
    assert r.json()["alerts"][0]["outcome"] == "refused"
    # its resolution changes nothing either, and is no error
    resolved = payload(alert(uc["key"], fp(), status="resolved"))
    r = await sapi.post(AM_PATH, json=resolved, headers=AM)
    assert r.status_code == 200, r.text
    assert r.json()["alerts"][0]["outcome"] == "ignored"
    assert (await state(sapi, uc))["incident_count"] == 0


async def test_authentication_is_per_source(sapi: httpx.AsyncClient) -> None:
    uc = await live_use_case(sapi)
    body = payload(alert(uc["key"], fp()))
    before = signals_counted("unknown", "rejected:unauthenticated")
    for headers in ({}, {"Authorization": "Bearer not-a-source-token"}, auth("olga")):
        r = await sapi.post(AM_PATH, json=body, headers=headers)
        assert r.status_code == 401, r.text
        assert r.headers["content-type"] == PROBLEM
    assert signals_counted("unknown", "rejected:unauthenticated") == before + 3
    # grafana's token is a source, but not this endpoint's
    r = await sapi.post(AM_PATH, json=body, headers={"Authorization": f"Bearer {GRAFANA_TOKEN}"})
    assert r.status_code == 403, r.text
    # Alertmanager signing with its token works as well as a bearer token
    raw, headers = signed("alertmanager", "am-secret-token-0123456789", body)
    r = await sapi.post(AM_PATH, content=raw, headers=headers)
    assert r.status_code == 200, r.text
    assert (await state(sapi, uc))["incident_count"] == 1


async def test_malformed_payloads_and_unknown_use_cases_are_4xx_and_record_nothing(
    sapi: httpx.AsyncClient,
) -> None:
    uc = await live_use_case(sapi)
    good = alert(uc["key"], fp())
    no_fingerprint = {k: v for k, v in alert(uc["key"], fp()).items() if k != "fingerprint"}
    no_label = alert(uc["key"], fp())
    del no_label["labels"]["releasegate_use_case"]
    cases: list[tuple[Any, int, str]] = [
        (b"{not json", 400, "malformed"),
        ({**payload(good), "version": "3"}, 422, "invalid-request"),
        (payload(good, no_fingerprint), 422, "invalid-request"),
        ({**payload(good), "alerts": [{**good, "status": "pending"}]}, 422, "invalid-request"),
        ({**payload(good), "alerts": "x"}, 422, "invalid-request"),
        ([], 422, "invalid-request"),
        (payload(good, alert("no-such-use-case", fp())), 422, "unknown-use-case"),
        (payload(good, alert("usecase-", fp())), 422, "unknown-use-case"),
        (payload(good, no_label), 422, "unknown-use-case"),
    ]
    for body, status, code in cases:
        before = signals_counted("alertmanager", f"rejected:{code}")
        if isinstance(body, bytes):
            r = await sapi.post(AM_PATH, content=body, headers=AM)
        else:
            r = await sapi.post(AM_PATH, json=body, headers=AM)
        assert r.status_code == status, (body, r.text)
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["type"].endswith(code), r.text
        assert signals_counted("alertmanager", f"rejected:{code}") == before + 1
    # nothing of any of them was recorded, not even the good alert beside a bad one
    assert (await state(sapi, uc))["incident_count"] == 0


async def test_a_generic_signed_signal(sapi: httpx.AsyncClient) -> None:
    uc = await live_use_case(sapi)
    f1 = fp()
    signal = {
        "use_case": uc["key"],
        "fingerprint": f"grafana/{f1}",
        "summary": "answer latency p95 above 8 s",
        "labels": {"severity": "high", "team": "claims"},
    }
    raw, headers = signed("grafana", GRAFANA_TOKEN, signal)
    r = await sapi.post("/v1/signals", content=raw, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["alerts"][0]["incident"] == "inc-1"
    s = await state(sapi, uc)
    assert s["incidents"][0]["severity"] == "sev2"  # high → sev2
    assert s["incidents"][0]["reported_by"] == "signal:grafana"
    # a stale or forged signature is refused and records nothing
    stale_raw, stale = signed(
        "grafana", GRAFANA_TOKEN, {**signal, "fingerprint": fp()}, at=time.time() - 3600
    )
    assert (await sapi.post("/v1/signals", content=stale_raw, headers=stale)).status_code == 401
    forged_raw, forged = signed("grafana", "not-the-token-at-all", {**signal, "fingerprint": fp()})
    assert (await sapi.post("/v1/signals", content=forged_raw, headers=forged)).status_code == 401
    # the bearer form, explicit severity; then resolved
    bearer = {"Authorization": f"Bearer {GRAFANA_TOKEN}"}
    r = await sapi.post(
        "/v1/signals",
        json={**signal, "fingerprint": "grafana/other", "severity": "sev4", "summary": "x"},
        headers=bearer,
    )
    assert r.status_code == 200, r.text
    r = await sapi.post("/v1/signals", json={**signal, "status": "resolved"}, headers=bearer)
    assert r.status_code == 200, r.text
    s = await state(sapi, uc)
    assert [(i["severity"], i["resolved_at"] is not None) for i in s["incidents"]] == [
        ("sev2", True),
        ("sev4", False),
    ]
    r = await sapi.post("/v1/signals", json={**signal, "extra": 1}, headers=bearer)
    assert r.status_code == 422


async def test_a_signal_source_is_never_a_person(sapi: httpx.AsyncClient) -> None:
    """A source's token reads nothing and decides nothing: it is no directory person."""
    uc = await live_use_case(sapi)
    r = await sapi.get(f"/v1/use-cases/{uc['id']}", headers=AM)
    assert r.status_code == 401
    r = await sapi.post(f"/v1/use-cases/{uc['id']}/suspend", json={"reason": "x"}, headers=AM)
    assert r.status_code == 401
