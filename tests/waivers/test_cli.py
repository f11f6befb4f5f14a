"""``releasegate waiver …`` from the shell: ask, grant, refuse, list; refusals exit 3."""

from __future__ import annotations

import httpx

from tests.api.test_use_cases import create, walk
from tests.cli.conftest import Cli

WHY = ("--justification", "the vendor's assessment lands next sprint; nothing else changed")


async def test_waiver_verbs(cli: Cli, api: httpx.AsyncClient) -> None:
    uc = await create(api, "medium")
    await walk(api, uc, "risk_signoff")
    key = uc["key"]
    asked = await cli(
        "waiver", "request", key, "evidence", "--gate", "risk-signoff",
        "--evidence-kind", "risk_assessment", "--days", "10", *WHY, "--json",
    )  # fmt: skip
    assert asked.code == 0, asked.err
    assert asked.json()["id"] == "w-1"
    assert asked.json()["status"] == "pending"

    mine = await cli("waiver", "grant", key, "w-1", person="dana")
    assert mine.code == 3, mine.out
    assert "Forbidden" in mine.err
    late = await cli("waiver", "request", key, "sla", "--gate", "go_live", "--days", "61", *WHY)
    assert late.code == 3  # medium: at most 60 days
    assert "at most 60 days" in late.err

    granted = await cli("waiver", "grant", key, "w-1", person="raj")
    assert granted.code == 0, granted.err
    assert "waiting on bo" in granted.out
    granted = await cli("waiver", "grant", key, "w-1", person="bo")
    assert granted.code == 0, granted.err
    assert granted.out.startswith("w-1  granted  evidence risk_assessment at risk_signoff")

    sla = await cli("waiver", "request", key, "sla", "--gate", "go_live", "--days", "5", *WHY)
    assert sla.code == 0, sla.err
    refused = await cli("waiver", "refuse", key, "w-2", "-m", "go-live keeps its SLA", person="bo")
    assert refused.code == 0, refused.err
    listed = await cli("waiver", "list", key)
    assert listed.code == 0, listed.err
    lines = listed.out.strip().splitlines()
    assert [line.split()[:2] for line in lines] == [["w-1", "granted"], ["w-2", "refused"]]
    assert (await cli("waiver", "grant", key, "w-9", person="bo")).code == 4
