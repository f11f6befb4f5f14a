"""Need-to-know reads (issue 11, item 7): a run is visible to its own people and to the policy's
reader groups (config/policy.yaml ``readers``); to anyone else every read of it answers exactly
as for an unknown run (404), and it is absent from listings, inboxes and flow metrics.

Runs against the real dev server, worker and store of ``tests/api/conftest.py``; the people are
config/directory.example.yaml's.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.api.conftest import auth
from tests.api.test_use_cases import PROBLEM, create, walk

# the run's roster: the delivery lead and every owner (risk approvers from group:risk-committee)
PEOPLE = ("dana", "bo", "tom", "olga", "rita", "raj", "eve")
# none of the run's people and in no reader group: priya (business), lee (engineering, delivery)
OUTSIDERS = ("priya", "lee")
# in a reader group: carla (compliance, model-risk), omar (model-risk), sam (operations)
READERS = ("carla", "omar", "sam")
SETTLE_TIMEOUT_S = 15.0


def read_paths(uc_id: str, change_id: str) -> list[str]:
    """Every route that reads one run, for the use case and for its change request."""
    change_run = f"{uc_id}-{change_id}"
    return [
        f"/v1/use-cases/{uc_id}",
        f"/v1/use-cases/{uc_id}/history",
        f"/v1/use-cases/{uc_id}/history?limit=5",
        f"/v1/use-cases/{uc_id}/incidents",
        f"/v1/use-cases/{uc_id}/evidence",
        f"/v1/use-cases/{uc_id}/changes",
        f"/v1/use-cases/{uc_id}/changes/{change_id}/history?limit=5",
        f"/v1/use-cases/{uc_id}/ledger",
        f"/v1/use-cases/{uc_id}/ledger/verify",
        f"/v1/use-cases/{uc_id}/evidence-pack",
        f"/v1/use-cases/{uc_id}/waivers",
        f"/v1/use-cases/{uc_id}/controls",
        f"/v1/use-cases/{uc_id}/changes/{change_id}",
        f"/v1/use-cases/{change_run}/ledger",
        f"/v1/use-cases/{change_run}/ledger/verify",
        f"/v1/use-cases/{change_run}/evidence-pack",
    ]


async def listed(api: httpx.AsyncClient, person: str, **params: str) -> set[str]:
    """Every run id ``GET /v1/use-cases`` shows ``person``, all pages."""
    ids: set[str] = set()
    cursor: str | None = None
    while True:
        query = {**params, "limit": "200", **({"cursor": cursor} if cursor else {})}
        r = await api.get("/v1/use-cases", params=query, headers=auth(person))
        assert r.status_code == 200, r.text
        ids.update(item["id"] for item in r.json()["items"])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return ids


async def in_flow_metrics(api: httpx.AsyncClient, person: str) -> set[str]:
    """The runs whose rows ``GET /v1/metrics/flow`` shows ``person`` (use cases only)."""
    r = await api.get("/v1/metrics/flow", params={"detail": "true"}, headers=auth(person))
    assert r.status_code == 200, r.text
    return {row["id"] for row in r.json()["run_rows"]}


@pytest.fixture(scope="module")
async def run(api: httpx.AsyncClient) -> dict[str, Any]:
    """A live use case with a change request, both in the registry (the read model)."""
    uc = await walk(api, await create(api, "low"), "live")
    r = await api.post(
        f"/v1/use-cases/{uc['id']}/changes",
        json={"summary": "new prompt", "materiality": "minor"},
        headers=auth("dana"),
    )
    assert r.status_code == 201, r.text
    change_id = r.json()["change_id"]
    runs = {uc["id"], f"{uc['id']}-{change_id}"}
    deadline = asyncio.get_running_loop().time() + SETTLE_TIMEOUT_S
    while not runs <= await listed(api, "carla"):
        assert asyncio.get_running_loop().time() < deadline, "the registry did not catch up"
        await asyncio.sleep(0.1)
    return {**uc, "change_id": change_id, "runs": runs}


@pytest.mark.parametrize("person", OUTSIDERS)
async def test_outsider_reads_every_route_as_an_unknown_run(
    api: httpx.AsyncClient, run: dict[str, Any], person: str
) -> None:
    unknown = await api.get("/v1/use-cases/usecase-never-started", headers=auth(person))
    assert unknown.status_code == 404
    for path in [*read_paths(run["id"], run["change_id"]), f"/v1/use-cases/{run['key']}"]:
        r = await api.get(path, headers=auth(person))
        assert r.status_code == 404, (path, r.text)
        assert r.headers["content-type"] == PROBLEM
        body = r.json()
        # the same document as for a run that does not exist, naming only what was asked
        assert {k: body[k] for k in ("type", "title", "status")} == {
            k: unknown.json()[k] for k in ("type", "title", "status")
        }, path
        assert body["detail"].startswith("no use case 'usecase-"), body
        assert set(body) == set(unknown.json())


@pytest.mark.parametrize("person", OUTSIDERS)
async def test_outsider_never_sees_the_run_listed(
    api: httpx.AsyncClient, run: dict[str, Any], person: str
) -> None:
    assert run["runs"].isdisjoint(await listed(api, person))
    assert run["runs"].isdisjoint(await listed(api, person, owner="bo"))
    assert run["runs"].isdisjoint(await listed(api, person, stage="live"))
    assert run["id"] not in await in_flow_metrics(api, person)
    r = await api.get("/v1/approvals/pending", headers=auth(person))
    assert r.status_code == 200
    assert run["runs"].isdisjoint(item["id"] for item in r.json()["items"])


async def test_outsider_commands_are_still_not_eligible(
    api: httpx.AsyncClient, run: dict[str, Any]
) -> None:
    """Commands keep their own authorization: 403 "not eligible", before the run's state."""
    r = await api.post(
        f"/v1/use-cases/{run['id']}/gates/go_live/decisions",
        json={"decision": "approve"},
        headers=auth("priya"),
    )
    assert r.status_code == 403, r.text


@pytest.mark.parametrize("person", READERS)
async def test_reader_group_member_reads_everything(
    api: httpx.AsyncClient, run: dict[str, Any], person: str
) -> None:
    for path in read_paths(run["id"], run["change_id"]):
        r = await api.get(path, headers=auth(person))
        assert r.status_code == 200, (path, r.text)
    assert run["runs"] <= await listed(api, person)
    assert run["id"] in await in_flow_metrics(api, person)


@pytest.mark.parametrize("person", PEOPLE)
async def test_each_of_the_runs_people_reads_it(
    api: httpx.AsyncClient, run: dict[str, Any], person: str
) -> None:
    for path in read_paths(run["id"], run["change_id"]):
        r = await api.get(path, headers=auth(person))
        assert r.status_code == 200, (person, path, r.text)
    assert run["runs"] <= await listed(api, person)
    assert run["runs"] <= await listed(api, person, owner="bo")
    assert run["id"] in await in_flow_metrics(api, person)
