"""Issue 13 over HTTP on the real dev server: runs that cannot be drowned.

- An incident flood used to return every incident with every answer, so each command added
  more history than the last until Temporal terminated the run. Now every answer is the
  bounded view (the latest few, and counts), the history a command adds stays the same, and
  the whole lists are pages of the ledger.
- The policy's per-run limits are refused at the door, by the workflow, for every channel:
  evidence beyond the cap is 422 ``over-limit``, incidents beyond the reporter's window 429
  ``rate-limited`` with ``Retry-After``. A refused command records nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.settings import Settings
from tests.api.conftest import auth
from tests.api.test_use_cases import create, walk
from tests.harness import ReleaseHarness, api_client, policy_variant
from workflows.limits import TEXT_MAX
from workflows.presentation import VIEW_EVIDENCE, VIEW_INCIDENTS

PROBLEM = "application/problem+json"
FLOOD = 300
# an incident's answer: the latest VIEW_INCIDENTS incidents at their longest, and the rest of
# the state (owners, policy, gate…), however many incidents the run holds
ANSWER_BYTES_MAX = VIEW_INCIDENTS * (TEXT_MAX + 400) + 6_000
# Temporal terminates a run whose history passes 50 MB; a run must stay under a tenth of it
HISTORY_BYTES_MAX = 5 * 1024 * 1024


@pytest.fixture(scope="module")
async def roomy_api(
    api_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with a policy whose incident rate limit lets one reporter flood a run (the
    flood is what this module measures; the default limit is tested on its own)."""

    def roomy(doc: dict[str, Any]) -> None:
        doc["limits"]["max_incidents_per_reporter"] = 10_000

    path = policy_variant(tmp_path_factory.mktemp("policy"), "2026.2-roomy", roomy)
    async with api_client(api_settings.model_copy(update={"policy_path": path})) as client:
        yield client


async def live(api: httpx.AsyncClient) -> dict[str, Any]:
    return await walk(api, await create(api, "low"), "live")


async def run_history(release: ReleaseHarness, wid: str) -> tuple[str, int]:
    """(run id, history bytes) of the run's current execution, as Temporal counts them."""
    desc = await release.client.get_workflow_handle(wid).describe()
    info = desc.raw_description.workflow_execution_info
    return desc.run_id, info.history_size_bytes


async def all_pages(api: httpx.AsyncClient, url: str, limit: int, want: int) -> list[Any]:
    """Every item of a paged list, once the ledger holds ``want`` of them."""
    for _ in range(200):
        items: list[Any] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
            r = await api.get(url, params=params, headers=auth("eve"))
            assert r.status_code == 200, r.text
            page = r.json()
            assert len(page["items"]) <= limit
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        if len(items) >= want:
            return items
        await asyncio.sleep(0.05)  # the ledger follows the run
    raise AssertionError(f"{url}: {len(items)} items, expected {want}")


async def test_an_incident_flood_keeps_answers_and_history_per_command_flat(
    roomy_api: httpx.AsyncClient, release: ReleaseHarness
) -> None:
    api = roomy_api
    uc = await live(api)
    base = f"/v1/use-cases/{uc['id']}"
    answers: list[int] = []
    per_command: list[float] = []  # history bytes each batch of commands added, per command
    run_id, before = await run_history(release, uc["id"])
    largest = before
    for batch in range(FLOOD // 50):
        for i in range(batch * 50, batch * 50 + 50):
            summary = f"incident {i}: ".ljust(TEXT_MAX, "x")
            r = await api.post(
                f"{base}/incidents",
                json={"severity": "sev3", "summary": summary},
                headers=auth("olga"),
            )
            assert r.status_code == 201, r.text
            answers.append(len(r.content))
        now_run, after = await run_history(release, uc["id"])
        largest = max(largest, after)
        if now_run == run_id:  # a continue-as-new in between starts a new history
            per_command.append((after - before) / 50)
        run_id, before = now_run, after
    state = r.json()
    assert state["incident_count"] == FLOOD
    assert [i["id"] for i in state["incidents"]] == [
        f"inc-{n}" for n in range(FLOOD - VIEW_INCIDENTS + 1, FLOOD + 1)
    ]
    # every answer is bounded, the 300th as small as the 10th
    assert max(answers) < ANSWER_BYTES_MAX, max(answers)
    assert answers[-1] - answers[9] < 100
    # each command adds the same history, not more than the one before
    assert len(per_command) >= 2, per_command
    assert max(per_command) < 1.5 * min(per_command), per_command
    assert largest < HISTORY_BYTES_MAX, largest

    # the whole list is the ledger's, a page at a time, in order
    incidents = await all_pages(api, f"{base}/incidents", 120, FLOOD)
    assert [i["id"] for i in incidents] == [f"inc-{n}" for n in range(1, FLOOD + 1)]
    assert incidents[7]["summary"].startswith("incident 7: ")
    assert {i["reported_by"] for i in incidents} == {"olga"}

    # /history pages (limit/cursor) add up to the whole history, which keeps its shape
    whole = (await api.get(f"{base}/history", headers=auth("eve"))).json()
    assert isinstance(whole, list)
    paged: list[Any] = []
    cursor: str | None = None
    for _ in range(200):
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        r = await api.get(f"{base}/history", params=params, headers=auth("eve"))
        assert r.status_code == 200, r.text
        assert isinstance(r.json(), list)
        paged += r.json()
        cursor = r.headers.get("x-next-cursor")
        if cursor is None:
            break
        assert 'rel="next"' in r.headers["link"]
    assert len(paged) >= len(whole) - 5  # the ledger may trail the last command a moment
    assert [(e["kind"], e["actor"], e["comment"]) for e in paged[: len(whole) - 5]] == [
        (e["kind"], e["actor"], e["comment"]) for e in whole[: len(whole) - 5]
    ]


async def test_incidents_beyond_the_reporters_window_are_429_with_retry_after(
    api: httpx.AsyncClient,
) -> None:
    uc = await live(api)
    base = f"/v1/use-cases/{uc['id']}"
    for i in range(20):  # config/policy.yaml: 20 per reporter per 60 s
        r = await api.post(
            f"{base}/incidents",
            json={"severity": "sev4", "summary": f"blip {i}"},
            headers=auth("olga"),
        )
        assert r.status_code == 201, r.text
    history = (await api.get(f"{base}/history", headers=auth("eve"))).json()
    r = await api.post(
        f"{base}/incidents", json={"severity": "sev4", "summary": "one more"}, headers=auth("olga")
    )
    assert r.status_code == 429, r.text
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["type"].endswith(":rate-limited")
    assert 1 <= int(r.headers["retry-after"]) <= 60
    # nothing recorded, and the limit is per reporter
    assert (await api.get(f"{base}/history", headers=auth("eve"))).json() == history
    r = await api.post(
        f"{base}/incidents", json={"severity": "sev4", "summary": "tom's"}, headers=auth("tom")
    )
    assert r.status_code == 201, r.text
    assert r.json()["incident_count"] == 21


def evidence_item(i: int) -> dict[str, str]:
    return {
        "kind": "design_doc",
        "name": f"design-{i}.pdf",
        "uri": "https://docs.example.com/" + f"{i}/".ljust(1900, "d"),
        "sha256": hashlib.sha256(f"doc {i}".encode()).hexdigest(),
    }


async def test_evidence_beyond_the_runs_cap_is_422_and_the_list_is_paged(
    api: httpx.AsyncClient,
) -> None:
    uc = await create(api, "low")
    base = f"/v1/use-cases/{uc['id']}"
    for batch in range(2):  # config/policy.yaml: 200 evidence items per run
        items = [evidence_item(i) for i in range(batch * 100, batch * 100 + 100)]
        r = await api.post(f"{base}/evidence", json={"evidence": items}, headers=auth("tom"))
        assert r.status_code == 201, r.text
    state = r.json()
    assert state["evidence_count"] == 200
    assert [e["name"] for e in state["evidence"]] == [
        f"design-{i}.pdf" for i in range(200 - VIEW_EVIDENCE, 200)
    ]
    assert len(r.content) < 100_000, len(r.content)  # was ~440 kB: every item, every answer
    # the ETag still names every item (what a gate binds to when it opens)
    digests = sorted(evidence_item(i)["sha256"] for i in range(200))
    assert r.headers["etag"] == f'"{hashlib.sha256(",".join(digests).encode()).hexdigest()}"'

    history = (await api.get(f"{base}/history", headers=auth("eve"))).json()
    for path, body in [
        ("evidence", {"evidence": [evidence_item(200)]}),
        ("stages/scoping/complete", {"evidence": [evidence_item(201)]}),
    ]:
        r = await api.post(f"{base}/{path}", json=body, headers=auth("dana"))
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["type"].endswith(":over-limit")
        assert "at most 200" in r.json()["detail"]
    assert (await api.get(f"{base}/history", headers=auth("eve"))).json() == history
    # a command without evidence still goes through
    r = await api.post(f"{base}/stages/scoping/complete", json={}, headers=auth("dana"))
    assert r.status_code == 200, r.text

    items = await all_pages(api, f"{base}/evidence", 150, 200)
    assert [e["name"] for e in items] == [f"design-{i}.pdf" for i in range(200)]
    assert {e["scope"] for e in items} == {"scoping"}
    assert items[0]["uri"] == evidence_item(0)["uri"]


async def test_changes_are_paged_and_every_list_is_need_to_know(api: httpx.AsyncClient) -> None:
    uc = await live(api)
    base = f"/v1/use-cases/{uc['id']}"
    for i in range(3):
        r = await api.post(
            f"{base}/changes",
            json={"summary": f"tune {i}", "materiality": "minor"},
            headers=auth("dana"),
        )
        assert r.status_code == 201, r.text
    changes = await all_pages(api, f"{base}/changes", 2, 3)
    assert [(c["change_id"], c["summary"], c["status"]) for c in changes] == [
        (f"change-{n}", f"tune {n - 1}", "open") for n in (1, 2, 3)
    ]
    assert changes[0]["workflow_id"] == f"{uc['id']}-change-1"
    state = (await api.get(base, headers=auth("eve"))).json()
    assert (state["change_count"], state["open_change_count"]) == (3, 3)

    for url in ("incidents", "evidence", "changes", "history?limit=5"):
        r = await api.get(f"{base}/{url}", headers=auth("priya"))
        assert r.status_code == 404, (url, r.text)
        assert r.headers["content-type"] == PROBLEM
    for url in ("incidents?cursor=bogus", "evidence?cursor=bogus", "history?cursor=bogus"):
        r = await api.get(f"{base}/{url}", headers=auth("eve"))
        assert r.status_code == 422, (url, r.text)
    # a cursor of one list is not one of another's
    first = (await api.get(f"{base}/changes?limit=1", headers=auth("eve"))).json()
    r = await api.get(f"{base}/incidents?cursor={first['next_cursor']}", headers=auth("eve"))
    assert r.status_code == 422, r.text
    r = await api.get("/v1/use-cases/uc-never-started/incidents", headers=auth("carla"))
    assert r.status_code == 404, r.text
