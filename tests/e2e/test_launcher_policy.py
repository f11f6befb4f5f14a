"""The launcher's restart rules, fast: the backoff arithmetic on a fake clock, and the Keeper on
real (tiny, shell) child processes. The end-to-end behaviour is in test_launcher_restarts.py."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from services.launcher import (
    GaveUp,
    Keeper,
    RestartPolicy,
    RestartTracker,
    Supervisor,
    _Signals,
    _write_state,
)

POLICY = RestartPolicy()


def crash_loop(tracker: RestartTracker, now: float, uptime: float) -> float | None:
    """The child ran ``uptime`` s, exited, and (unless given up on) restarted after the delay."""
    delay = tracker.exited(1, now + uptime)
    if delay is not None:
        tracker.restarted(now + uptime + delay)
    return delay


def test_backoff_doubles_up_to_the_cap() -> None:
    tracker = RestartTracker(RestartPolicy(max_restarts=100), started=0.0)
    delays = []
    for _ in range(9):
        delay = crash_loop(tracker, tracker.started, 0.1)
        assert delay is not None
        delays.append(delay)
    assert delays == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert tracker.count == 9


def test_gives_up_on_the_exit_after_five_quick_restarts() -> None:
    tracker = RestartTracker(POLICY, started=0.0)
    for n in range(1, 6):
        assert crash_loop(tracker, tracker.started, 1.0) is not None
        assert tracker.failing == n
    assert tracker.exited(1, tracker.started + 1.0) is None
    assert tracker.count == 5


def test_a_slow_crash_loop_is_given_up_on_too() -> None:
    # every run lasts 50 s: restarts are ~80 s apart once the backoff is capped, never 5 in 60 s
    tracker = RestartTracker(POLICY, started=0.0)
    for _ in range(5):
        assert crash_loop(tracker, tracker.started, 50.0) is not None
    assert tracker.exited(1, tracker.started + 50.0) is None


def test_a_stable_run_resets_backoff_and_failures() -> None:
    tracker = RestartTracker(POLICY, started=0.0)
    for _ in range(4):
        crash_loop(tracker, tracker.started, 1.0)
    assert tracker.backoff_s == 8
    # up for a minute, then killed: a fresh start, not a fifth failure in a row
    assert crash_loop(tracker, tracker.started, 60.0) == 0.5
    assert tracker.failing == 1
    assert tracker.count == 5


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


def tick_until(keeper: Keeper, done: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline
        keeper.tick()
        time.sleep(0.01)


FAST = RestartPolicy(initial_backoff_s=0.01, max_backoff_s=0.05, stable_after_s=5, max_restarts=3)


def test_keeper_restarts_in_place_records_and_gives_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sup = Supervisor(tmp_path, _Signals())
    env = dict(os.environ)
    sup.start("steady", sh("sleep 30"), env)
    sup.start("flaky", sh("echo flaky is broken: bad config; exit 3"), env)
    sup.start("last", sh("sleep 30"), env)
    keeper = Keeper(sup, FAST, on_change=lambda: _write_state(tmp_path, sup, False, keeper))
    try:
        with pytest.raises(GaveUp) as gave_up:
            tick_until(keeper, lambda: False)
        assert [c.name for c in sup.children] == ["steady", "flaky", "last"]  # stop order kept
        assert keeper.trackers["flaky"].count == 3
        assert keeper.trackers["steady"].count == 0
        message = str(gave_up.value)
        assert "flaky keeps crashing: it exited again (exit 3) after 3 restarts in a row" in message
        assert "flaky is broken: bad config" in message  # the tail of its log
        out = capsys.readouterr().out
        assert "flaky exited (exit 3) after" in out
        assert "restart 3 in 0.04 s" in out
        state = json.loads((tmp_path / "launcher.json").read_text())
        assert state["restarts"]["flaky"]["count"] == 3
        assert state["restarts"]["flaky"]["last_exit_code"] == 3
        assert state["restarts"]["steady"] == {
            "count": 0,
            "failing": 0,
            "last_restart_at": None,
            "last_exit_code": None,
            "state": "running",
            "next_restart_at": None,
        }
        assert state["restart_policy"]["max_restarts"] == 3
    finally:
        sup.stop_all()


def test_a_gate_holds_a_restart_without_counting_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sup = Supervisor(tmp_path, _Signals())
    child = sup.start("worker", sh("exit 0"), dict(os.environ))
    open_gate = [False]
    keeper = Keeper(sup, FAST, gates={"worker": lambda: open_gate[0]})
    try:
        tracker = keeper.trackers["worker"]
        tick_until(keeper, lambda: tracker.waiting)
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            keeper.tick()
            time.sleep(0.01)
        assert tracker.count == 0
        assert sup.children == [child]
        assert capsys.readouterr().out.count("worker waits for Temporal") == 1
        open_gate[0] = True
        tick_until(keeper, lambda: tracker.count == 1)
        assert sup.children[0] is not child
        assert keeper.state()["worker"]["failing"] == 1
    finally:
        sup.stop_all()
