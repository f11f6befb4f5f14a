"""Property: every value of every accepted field goes all the way or is refused at the door.

Maximum-length and unicode-heavy titles, summaries, channel names, comments and evidence
names, URIs and kinds (astral-plane characters, combining marks, right-to-left text and
overrides, control characters, NUL, lone surrogates) go through HTTP → workflow → ledger and
read model, on SQLite and on PostgreSQL. Each request is answered 2xx and then stored exactly
as sent — the run's state, its ledger entries and its read-model row — with a ledger that
catches up and verifies, or it is a 4xx problem+json that records nothing. Never a 500, never a
stuck ledger (issue 13, "nothing accepted that the store cannot hold").
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from temporalio.testing import WorkflowEnvironment

from services.store.migrate import upgrade_head
from tests.api.conftest import auth
from tests.api.test_use_cases import new_body
from tests.faults.test_ledger_outage import stack
from tests.store.conftest import fresh_database
from workflows import limits

PROBLEM = "application/problem+json"
EXAMPLES = 100  # per database: each is a real run (start, a stage, the ledger caught up)
SETTLE_S = 20.0

# what breaks naive storage: astral plane, combining marks, RTL and bidi overrides, zero-width
# and control characters, NUL (PostgreSQL refuses it), lone surrogates (not UTF-8 at all)
HARD = (
    "😀𝔘𝄞🂡\U0010fffd"  # astral plane (4 bytes in UTF-8, 2 UTF-16 units)
    "e\u0301\u0327\u20dd"  # combining marks
    "\u05d0\u0627\u202e\u202d\u200f"  # Hebrew, Arabic, bidi override, RLM
    "\u200b\ufeff\u2028\x7f\t\n"  # zero-width, BOM, line separator, DEL, whitespace
    "'\"<>&\\%_"
)
# what no store can hold: NUL (PostgreSQL refuses it), lone surrogates (not UTF-8 at all)
UNSTORABLE = ["\x00", "\ud800", "\udfff"]
URI_PREFIX = "https://x/"
LIMITS = {
    "title": limits.TITLE_MAX,
    "summary": limits.TEXT_MAX,
    "slack_channel": limits.SLACK_CHANNEL_MAX,
    "comment": limits.TEXT_MAX,
    "evidence_name": limits.EVIDENCE_NAME_MAX,
    "evidence_uri": limits.URI_MAX,
}


def text(max_size: int, *, min_size: int = 0) -> st.SearchStrategy[str]:
    """Hard characters within the limit, often exactly at it."""
    hard = st.text(st.sampled_from(HARD) | st.characters(codec="utf-8"), max_size=max_size)
    at_limit = st.text(st.sampled_from(HARD), min_size=max_size, max_size=max_size)
    return st.one_of(hard.filter(lambda t: len(t) >= min_size), at_limit)


def key() -> st.SearchStrategy[str]:
    """Unique slugs (a uuid), sometimes at the maximum length."""
    unique = st.builds(lambda: f"p{uuid.uuid4().hex[:12]}")
    longest = unique.map(lambda k: (k + "-x" * 40)[: limits.USE_CASE_KEY_MAX - 1] + "z")
    return unique | longest


VALID = st.fixed_dictionaries(
    {
        "key": key(),
        "title": text(limits.TITLE_MAX, min_size=1),
        "summary": text(limits.TEXT_MAX),
        "slack_channel": st.none() | text(limits.SLACK_CHANNEL_MAX),
        "comment": text(limits.TEXT_MAX),
        "evidence_name": text(limits.EVIDENCE_NAME_MAX, min_size=1),
        "evidence_uri": text(limits.URI_MAX - len(URI_PREFIX)).map(lambda t: URI_PREFIX + t),
        "evidence_kind": st.sampled_from(["design_doc", "d" * limits.EVIDENCE_KIND_MAX]),
    }
)


@st.composite
def examples(draw: st.DrawFn) -> dict[str, Any]:
    """Valid values, or valid values with one field the API must refuse."""
    example: dict[str, Any] = draw(VALID)
    how = draw(st.sampled_from(["none", "none", "over", "unstorable", "key", "kind"]))
    if how in ("over", "unstorable"):
        field = draw(st.sampled_from(sorted(LIMITS)))
        value = example[field] or "v"
        if how == "over":
            example[field] = (value * (LIMITS[field] + 1))[: LIMITS[field] + 1]
        else:
            cut = draw(st.integers(0, len(value)))
            example[field] = (value[:cut] + draw(st.sampled_from(UNSTORABLE)) + value[cut:])[
                : LIMITS[field]
            ]
    elif how == "key":
        example["key"] += draw(st.sampled_from(["É", "😀", "\x00", "A", " ", "k" * 70]))
    elif how == "kind":
        example["evidence_kind"] = draw(st.sampled_from(["Dé", "", "d" * 65, "d\x00"]))
    example["poisoned"] = how != "none"
    return example


ACCEPTED: list[str] = []  # runs the property saw accepted (it must see some)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def path(
    request: pytest.FixtureRequest, temporal_env: WorkflowEnvironment
) -> AsyncIterator[httpx.AsyncClient]:
    """The API and a worker with the real activities on a fresh database of each backend."""
    async with fresh_database(request.param) as url:
        await upgrade_head(url)
        async with stack(temporal_env, url) as api:
            yield api


async def post(api: httpx.AsyncClient, url: str, body: dict[str, Any]) -> httpx.Response:
    """JSON as a client may send it: ASCII with escapes, so a lone surrogate gets through."""
    headers = {**auth("dana"), "Content-Type": "application/json"}
    return await api.post(url, content=json.dumps(body).encode(), headers=headers)


def refused(r: httpx.Response) -> bool:
    assert r.status_code < 500, r.text  # never a 500 (nor a 503: nothing is down)
    if r.status_code < 300:
        return False
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"] == PROBLEM, r.text
    return True


async def settled(api: httpx.AsyncClient, run: str) -> list[dict[str, Any]]:
    """The run's ledger once it holds every event; a blocked ledger (503) fails at once."""
    deadline = asyncio.get_running_loop().time() + SETTLE_S
    while True:
        state = (await api.get(f"/v1/use-cases/{run}", headers=auth("dana"))).json()
        r = await api.get(f"/v1/use-cases/{run}/ledger", headers=auth("dana"))
        assert r.status_code == 200, r.text  # 503 ledger-blocked: accepted, but not storable
        if len(r.json()) == state["event_count"]:
            entries: list[dict[str, Any]] = r.json()
            return entries
        assert asyncio.get_running_loop().time() < deadline, "the ledger never caught up"
        await asyncio.sleep(0.1)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    # no shrinking: each example is a real run, and the bound is a minute per database
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(example=examples())
async def test_accepted_means_stored_exactly(
    path: httpx.AsyncClient, example: dict[str, Any]
) -> None:
    api = path
    body = new_body(
        "low",
        key=example["key"],
        title=example["title"],
        summary=example["summary"],
        slack_channel=example["slack_channel"],
    )
    r = await post(api, "/v1/use-cases", body)
    if refused(r):
        gone = await api.get(f"/v1/use-cases/usecase-{uuid.uuid4().hex}", headers=auth("dana"))
        assert gone.status_code == 404
        return
    state = r.json()
    run = state["id"]
    ACCEPTED.append(run)
    assert (state["key"], state["title"], state["summary"], state["slack_channel"]) == (
        body["key"],
        body["title"],
        body["summary"],
        body["slack_channel"],
    )
    before = await settled(api, run)

    item = {
        "kind": example["evidence_kind"],
        "name": example["evidence_name"],
        "uri": example["evidence_uri"],
        "sha256": uuid.uuid4().hex * 2,
    }
    r = await post(
        api,
        f"/v1/use-cases/{run}/stages/scoping/complete",
        {"evidence": [item], "comment": example["comment"]},
    )
    if refused(r):
        assert await settled(api, run) == before  # a refused request records nothing
        return
    assert r.json()["stage"] == "specification"

    entries = await settled(api, run)
    started = next(e for e in entries if e["kind"] == "run_started")
    assert started["payload"]["title"] == body["title"]
    done = next(e for e in entries if e["kind"] == "stage_completed")
    assert done["payload"].get("comment", "") == example["comment"]
    assert [(e["name"], e["uri"]) for e in done["payload"]["evidence"]] == [
        (item["name"], item["uri"])
    ]
    verify = await api.get(f"/v1/use-cases/{run}/ledger/verify", headers=auth("dana"))
    assert verify.json()["ok"] is True, verify.text
    listed = await api.get("/v1/use-cases", params={"limit": 200}, headers=auth("dana"))
    row = next(i for i in listed.json()["items"] if i["id"] == run)
    assert (row["key"], row["title"]) == (body["key"], body["title"])


def test_the_property_saw_both_answers() -> None:
    """Runs after the property on both databases: accepted values were exercised too."""
    assert len(ACCEPTED) >= 4, ACCEPTED
