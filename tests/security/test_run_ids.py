"""Run ids cannot collide: a use case never takes an id another run owns, and a path names one
run only (issue 11, item 4).

Before: a use case keyed ``<victim>-change-1`` ran as ``usecase-<victim>-change-1``, the id of
the victim's first change, so ``…/<victim>/changes/change-1`` showed (and drove) the squatter's
run; a key ``usecase-x`` ran as ``usecase-x``, the id of key ``x``; and a change's run id was
also a use case id on every use-case route.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.commands.start import StartPlan, facts_memo
from tests.api.conftest import auth
from tests.harness import ReleaseHarness
from tests.security.runs import PROBLEM, body, ev, start, walk
from tests.workflows.helpers import make_input
from workflows import ids
from workflows.release import UseCaseRelease


async def live(api: httpx.AsyncClient) -> dict[str, Any]:
    return await walk(api, await start(api, "low"), "live")


def assert_key_refused(r: httpx.Response) -> None:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == PROBLEM
    assert "key" in r.json()["detail"]


@pytest.mark.parametrize(
    "make_key",
    [
        pytest.param(lambda victim: f"{victim}-change-1", id="a-victims-first-change"),
        pytest.param(lambda victim: f"{victim}-change-07", id="change-number-any-digits"),
        pytest.param(lambda victim: f"usecase-{victim}", id="an-id-as-key"),
    ],
)
async def test_a_key_that_would_alias_another_run_is_refused(
    api: httpx.AsyncClient, make_key: Any
) -> None:
    victim = await start(api, "low")
    squatter_key = make_key(victim["key"])
    r = await api.post("/v1/use-cases", json=body("low", key=squatter_key), headers=auth("lee"))
    assert_key_refused(r)
    # nothing was started under the victim's ids: the victim is the victim's, unchanged
    r = await api.get(f"/v1/use-cases/{victim['id']}", headers=auth("dana"))
    assert r.status_code == 200
    assert (r.json()["title"], r.json()["owners"]["delivery_lead"]) == (victim["title"], "dana")


async def test_the_victims_first_change_is_its_own(api: httpx.AsyncClient) -> None:
    """The attack end to end: the squatter is refused, the victim's change-1 is the victim's."""
    victim = await live(api)
    r = await api.post(
        "/v1/use-cases",
        json=body("low", key=f"{victim['key']}-change-1"),
        headers=auth("lee"),
    )
    assert_key_refused(r)
    base = f"/v1/use-cases/{victim['id']}"
    r = await api.post(
        f"{base}/changes",
        json={"summary": "new prompt", "materiality": "minor"},
        headers=auth("dana"),
    )
    assert r.status_code == 201, r.text
    r = await api.get(f"{base}/changes/change-1", headers=auth("eve"))
    assert r.status_code == 200, r.text
    assert r.json()["change"]["parent_id"] == victim["id"]
    assert r.json()["owners"]["delivery_lead"] == "dana"


async def test_a_run_squatting_a_change_id_is_not_that_change(
    api: httpx.AsyncClient, release: ReleaseHarness
) -> None:
    """A run started under a change's id by anything but the use case itself (Temporal
    access, or a key accepted before keys were refused) is not that use case's change: not on
    the change route, and not on the use case route either."""
    victim = await start(api, "low")
    squatter = make_input("low", key=f"{victim['key']}-change-1", delivery_lead="lee")
    plan = StartPlan(f"usecase-{squatter.key}", squatter, "0" * 64)
    # exactly what the API's start sent for such a key before it was refused
    await release.client.start_workflow(
        UseCaseRelease.run,
        squatter,
        id=plan.workflow_id,
        task_queue=release.task_queue,
        memo={"facts": facts_memo(plan)},
    )
    change = f"/v1/use-cases/{victim['id']}/changes/change-1"
    for person in ("lee", "carla", "dana"):  # its lead, a policy reader, the victim's lead
        r = await api.get(change, headers=auth(person))
        assert r.status_code == 404, (person, r.text)
        assert r.headers["content-type"] == PROBLEM
    r = await api.post(f"{change}/evidence", json={"evidence": [ev("notes")]}, headers=auth("lee"))
    assert r.status_code == 404, r.text
    r = await api.post(f"{change}/stages/scoping/complete", json={}, headers=auth("lee"))
    assert r.status_code == 404, r.text
    for path in (plan.workflow_id, squatter.key):
        r = await api.get(f"/v1/use-cases/{path}", headers=auth("carla"))
        assert r.status_code == 404, (path, r.text)


async def test_a_use_case_is_named_by_id_or_key_and_nothing_else(api: httpx.AsyncClient) -> None:
    uc = await live(api)
    r = await api.post(
        f"/v1/use-cases/{uc['id']}/changes",
        json={"summary": "new prompt", "materiality": "minor"},
        headers=auth("dana"),
    )
    assert r.status_code == 201, r.text
    change_wid = r.json()["id"]
    assert change_wid == f"{uc['id']}-change-1"

    for path in (uc["id"], uc["key"]):
        r = await api.get(f"/v1/use-cases/{path}", headers=auth("carla"))
        assert r.status_code == 200, (path, r.text)
        assert r.json()["id"] == uc["id"]
    # a change's run is reached by its own path only; an id of an id names nothing
    for path in (change_wid, change_wid.removeprefix("usecase-"), f"usecase-{uc['id']}"):
        r = await api.get(f"/v1/use-cases/{path}", headers=auth("carla"))
        assert r.status_code == 404, (path, r.text)
        assert r.headers["content-type"] == PROBLEM
        r = await api.get(f"/v1/use-cases/{path}/history", headers=auth("dana"))
        assert r.status_code == 404, (path, r.text)
        r = await api.post(
            f"/v1/use-cases/{path}/evidence", json={"evidence": [ev("notes")]}, headers=auth("dana")
        )
        assert r.status_code == 404, (path, r.text)
        r = await api.get(f"/v1/use-cases/{path}/changes/change-1", headers=auth("carla"))
        assert r.status_code == 404, (path, r.text)
    r = await api.get(f"/v1/use-cases/{uc['key']}/changes/change-1", headers=auth("carla"))
    assert r.status_code == 200, r.text
    assert r.json()["id"] == change_wid
    r = await api.get(f"/v1/use-cases/{uc['key']}/changes/change-1/history", headers=auth("bo"))
    assert r.status_code == 200, r.text
    assert r.json()[0]["kind"] == "run_started"


@pytest.mark.parametrize(
    ("named", "run"),
    [
        ("kyc-bot", "usecase-kyc-bot"),
        ("usecase-kyc-bot", "usecase-kyc-bot"),
        ("kyc-change-bot", "usecase-kyc-change-bot"),  # "-change-" inside a key is fine
        ("kyc-change-1", None),  # a change's run
        ("usecase-kyc-change-1", None),
        ("usecase-usecase-kyc", None),  # an id of an id
        ("usecase-", None),
        ("KYC", None),
        ("a" * 64, None),
    ],
)
def test_a_path_names_one_use_case_or_none(named: str, run: str | None) -> None:
    assert ids.use_case_run_id(named) == run


def test_a_change_run_id_parses_one_way() -> None:
    assert ids.parent_workflow_id("usecase-kyc-change-2") == "usecase-kyc"
    assert ids.parent_workflow_id("usecase-kyc") is None
    assert ids.parent_workflow_id("usecase-kyc-change-bot") is None
    assert ids.key_refusal("kyc") is None
    for key in ("kyc-change-1", "kyc-change-0", "usecase-kyc", "k"):
        assert ids.key_refusal(key) is not None, key
        with pytest.raises(ValueError, match="must"):
            ids.check_use_case_key(key)
