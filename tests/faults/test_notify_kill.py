"""A worker killed mid-send leaves no second card, no stale open card, no second webhook notice.

Scenario 7 of issue 13: the worker process (``python -m services.worker``, started and killed
here by its pid) dies while Slack is still answering the gate card's posts (the Web API double
is slowed so the kill lands mid-post; each post takes effect in Slack all the same). Temporal
runs the notice again on the next worker. Before: every approver got the card twice and the
first copies kept their buttons after the gate passed; the webhook saw the notice twice. Now
the retry adopts what the killed attempt posted, the gate's close updates every copy, and the
webhook receiver sees each notice once under its key, with one body.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from temporalio.testing import WorkflowEnvironment

from tests.api.conftest import approve, auth
from tests.api.test_use_cases import ev, new_body, walk
from tests.harness import api_client, suite_settings
from tests.slack.double import Message, SlackDouble
from tests.slack.helpers import CHANNEL, SECRET, TOKEN
from tests.worker.test_notify import SECRET as HOOK_SECRET
from tests.worker.test_notify import Receiver

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
WORKER_START_S = 60.0
POST_DELAY_S = 3.0  # how long the double takes to answer a post: the kill lands inside it
SETTLE_S = 90.0  # the killed attempt times out (start-to-close 20 s) before its retry runs
GATE = "risk_signoff"
CONVERSATIONS = {CHANNEL, "D01RITA", "D01RAJ"}  # the channel, and each approver's DM


@contextmanager
def worker_process(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m services.worker`` as ``make run`` starts it; killed by its pid at the end."""
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "services.worker"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


async def polling(process: subprocess.Popen[bytes], log: Path, offset: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WORKER_START_S
    while "worker polling task queue" not in log.read_text(errors="replace")[offset:]:
        assert process.poll() is None, log.read_text(errors="replace")
        assert loop.time() < deadline, f"worker did not start:\n{log.read_text()}"
        await asyncio.sleep(0.2)


def gate_posts(double: SlackDouble, workflow_id: str) -> list[str]:
    """The conversations the gate's card was sent to (requests received, answered or not)."""
    return [
        str(c.args.get("channel"))
        for c in double.of("chat.postMessage")
        if (c.args.get("metadata") or {}).get("event_payload", {}).get("workflow_id") == workflow_id
        and c.args["metadata"]["event_payload"].get("gate") == GATE
    ]


async def wait_for(check: Callable[[], T | None], what: str, timeout: float = SETTLE_S) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := check()):
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)
    return result


async def test_worker_killed_mid_send_leaves_one_card_per_approver_and_none_open(
    temporal_env: WorkflowEnvironment, store_url: str, tmp_path: Path
) -> None:
    double = SlackDouble(TOKEN)
    await double.start()
    receiver = Receiver()
    settings = suite_settings(temporal_env, f"notify-kill-{uuid.uuid4().hex[:8]}", store_url)
    env = {
        **os.environ,
        "RELEASEGATE_DATA_DIR": str(tmp_path / "data"),
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "RELEASEGATE_TASK_QUEUE": settings.task_queue,
        "RELEASEGATE_DATABASE_URL": store_url,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": double.api_url,
        "RELEASEGATE_NOTIFY_WEBHOOK_URL": receiver.url,
        "RELEASEGATE_HOOK_SECRET": HOOK_SECRET,
    }
    log = tmp_path / "worker.log"
    try:
        async with api_client(settings) as api:
            with worker_process(env, log) as first:
                await polling(first, log, 0)
                r = await api.post(
                    "/v1/use-cases",
                    json=new_body("low", slack_channel=CHANNEL),
                    headers=auth("dana"),
                )
                assert r.status_code == 201, r.text
                uc = await walk(api, r.json(), "validation")
                wid = uc["id"]

                # the gate opens; Slack is slow to answer its posts, and the worker dies
                double.delays["chat.postMessage"] = POST_DELAY_S
                r = await api.post(
                    f"/v1/use-cases/{wid}/stages/validation/complete",
                    json={"evidence": [ev("evaluation_report")], "comment": "validated"},
                    headers=auth("dana"),
                )
                assert r.status_code == 200, r.text
                assert r.json()["open_gate"]["gate"] == GATE
                await wait_for(
                    lambda: set(gate_posts(double, wid)) == CONVERSATIONS, "the card's posts"
                )
                await asyncio.sleep(0.5)  # the posts are in flight: their answers are not
                os.kill(first.pid, signal.SIGKILL)
                first.wait(timeout=30)
            double.delays.clear()
            # Slack went on with the posts the dead worker will never hear back about
            await wait_for(lambda: len(double.cards(wid, GATE)) == 3, "the first cards")

            offset = log.stat().st_size
            with worker_process(env, log) as second:
                await polling(second, log, offset)
                # the approver decides before the notice's retry has even run
                for _ in range(60):
                    r = await approve(api, f"/v1/use-cases/{wid}", GATE, "rita")
                    if r.status_code != 503:  # the API noticed the dead worker: try again
                        break
                    await asyncio.sleep(0.5)
                assert r.status_code == 200, r.text

                def all_closed() -> list[Message] | None:
                    cards = double.cards(wid, GATE)
                    done = cards and all(c.card.get("outcome") == "passed" for c in cards)
                    return cards if done else None

                cards = await wait_for(all_closed, "every card of the gate to close")
                # the next gate's cards were posted: the run's notices are all through
                await wait_for(lambda: double.cards(wid, "ops_handoff"), "the next gate")

        assert sorted(c.channel for c in cards) == sorted(CONVERSATIONS)  # one card each
        assert all(not c.buttons() for c in cards)  # no live buttons on a passed gate
        assert "adopting" in log.read_text()  # the retry found what the killed attempt posted

        deliveries: dict[str, list[bytes]] = defaultdict(list)
        for call in receiver.calls:
            assert call["signed"]
            deliveries[call["key"]].append(call["raw"])
        opened = [
            k
            for k, bodies in deliveries.items()
            if b'"gate_opened"' in bodies[0] and f'"gate":"{GATE}"'.encode() in bodies[0]
        ]
        assert len(opened) == 1
        assert {k: len(b) for k, b in deliveries.items() if len(b) > 1} == {}
    finally:
        # shown when the test fails: what the workers did
        sys.stdout.write(log.read_text(errors="replace")[-8000:] if log.exists() else "")
        receiver.server.shutdown()
        await double.stop()
