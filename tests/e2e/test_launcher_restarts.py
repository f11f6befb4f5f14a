"""The launcher as a supervisor: a worker, an API or a dev server that dies under a running
stack is started again (with backoff) and the stack goes on serving; a child that keeps crashing
makes the launcher give up with exit 1; Ctrl-C during a backoff still stops everything.

Each test starts its own stack (its own data dir and ports) and kills only pids it started."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.stack import OWNERS, ROOT, Stack, call

RESTART_TIMEOUT_S = 30.0


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[Stack]:
    """A private stack (not the session one: these tests kill its processes)."""
    s = Stack(tmp_path)
    try:
        yield s
    finally:
        if s.process is not None:
            s.stop()
        assert s.leftovers() == []


def state(stack: Stack) -> dict[str, Any]:
    return dict(json.loads((stack.data_dir / "launcher.json").read_text()))


def wait_for(stack: Stack, what: str, check: Callable[[], bool], timeout: float) -> None:
    """Until ``check()``; the launcher must stay up meanwhile."""
    deadline = time.monotonic() + timeout
    while not check():
        assert stack.process is not None
        assert stack.process.poll() is None, f"launcher exited:\n{stack.output.read_text()}"
        assert time.monotonic() < deadline, f"{what}: timed out\n{stack.output.read_text()}"
        time.sleep(0.2)


def kill_and_wait_restart(stack: Stack, name: str) -> int:
    """SIGKILL the child (by the pid launcher.json names), wait for its successor; its pid."""
    old = state(stack)["children"][name]
    os.kill(old, signal.SIGKILL)

    def restarted() -> bool:
        s = state(stack)
        pid = s["children"][name]
        return bool(s["restarts"][name]["count"] == 1 and pid is not None and pid != old)

    wait_for(stack, f"{name} restarted", restarted, RESTART_TIMEOUT_S)
    new = int(state(stack)["children"][name])
    assert Path(f"/proc/{new}").exists()
    return new


def create(client: httpx.Client, key: str) -> str:
    body = {"key": key, "title": key, "summary": "s", "risk_tier": "low", "owners": OWNERS}
    st = call(client, "POST", "/v1/use-cases", "dana", json=body)
    assert st["stage"] == "scoping"
    return str(st["id"])


def complete(client: httpx.Client, uc: str, stage: str) -> dict[str, Any]:
    return dict(
        call(client, "POST", f"/v1/use-cases/{uc}/stages/{stage}/complete", "dana", json={})
    )


def wait_http(stack: Stack, client: httpx.Client, path: str, timeout: float) -> httpx.Response:
    """GET ``path`` as dana until it answers 200."""
    last: list[httpx.Response | Exception] = []

    def ok() -> bool:
        try:
            r = client.get(path, headers={"Authorization": "Bearer dev-dana"}, timeout=5)
        except httpx.HTTPError as exc:
            last[:] = [exc]
            return False
        last[:] = [r]
        return r.status_code == 200

    wait_for(stack, f"GET {path} ({last})", ok, timeout)
    response = last[0]
    assert isinstance(response, httpx.Response)
    return response


def test_a_killed_worker_is_restarted_and_use_cases_still_move(own_stack: Stack) -> None:
    stack = own_stack
    stack.start()
    with httpx.Client(base_url=stack.api, timeout=30) as client:
        before = create(client, "before-worker-crash")
        api_pid = state(stack)["children"]["api"]

        new = kill_and_wait_restart(stack, "worker")

        # the run started before the crash and one started after both move on the new worker
        assert complete(client, before, "scoping")["stage"] == "specification"
        after = create(client, "after-worker-crash")
        assert complete(client, after, "scoping")["stage"] == "specification"
    s = state(stack)
    assert s["children"]["worker"] == new
    assert s["children"]["api"] == api_pid  # nothing else was touched
    assert s["restarts"]["worker"]["last_exit_code"] == -9
    assert s["restarts"]["worker"]["state"] == "running"
    assert s["restarts"]["worker"]["last_restart_at"].endswith("Z")
    assert s["restarts"]["api"]["count"] == 0
    out = stack.output.read_text()
    assert "worker exited (exit -9, killed by SIGKILL)" in out
    assert "    | " in out  # the tail of its log, indented
    assert "worker polling task queue" in out
    assert f"worker restarted (pid {new}, restart 1)" in out
    assert stack.stop() == 0


def test_a_killed_api_answers_again(own_stack: Stack) -> None:
    stack = own_stack
    stack.start()
    with httpx.Client(base_url=stack.api, timeout=30) as client:
        uc = create(client, "before-api-crash")
        started = time.monotonic()
        kill_and_wait_restart(stack, "api")
        r = wait_http(stack, client, f"/v1/use-cases/{uc}", RESTART_TIMEOUT_S)
        back_after = time.monotonic() - started
        assert r.json()["stage"] == "scoping"
        assert complete(client, uc, "scoping")["stage"] == "specification"
    assert back_after < RESTART_TIMEOUT_S
    assert "api exited (exit -9, killed by SIGKILL)" in stack.output.read_text()
    assert state(stack)["restarts"]["worker"]["count"] == 0
    assert stack.stop() == 0


def test_a_killed_dev_server_is_restarted_on_its_file(own_stack: Stack) -> None:
    stack = own_stack
    stack.start()
    old = state(stack)["children"]["temporal"]
    old_argv = Path(f"/proc/{old}/cmdline").read_bytes()
    assert str(stack.data_dir / "temporal.db").encode() in old_argv
    with httpx.Client(base_url=stack.api, timeout=30) as client:
        uc = create(client, "before-temporal-crash")
        assert complete(client, uc, "scoping")["stage"] == "specification"

        new = kill_and_wait_restart(stack, "temporal")
        assert Path(f"/proc/{new}/cmdline").read_bytes() == old_argv  # same file, same flags

        # the run is still there, and the worker and the API found the new server themselves
        r = wait_http(stack, client, f"/v1/use-cases/{uc}", 60)
        assert r.json()["stage"] == "specification"
        assert complete(client, uc, "specification")["stage"] == "implementation"
        s = state(stack)
        assert s["restarts"]["temporal"]["count"] == 1
        assert s["restarts"]["worker"]["count"] == 0
        assert s["restarts"]["api"]["count"] == 0

        # both at once: the worker's restart waits until the new dev server answers
        os.kill(s["children"]["worker"], signal.SIGKILL)
        os.kill(s["children"]["temporal"], signal.SIGKILL)

        def both_back() -> bool:
            r = state(stack)["restarts"]
            return bool(
                r["temporal"]["count"] == 2
                and r["worker"]["count"] == 1
                and r["worker"]["state"] == "running"
            )

        wait_for(stack, "temporal and worker restarted", both_back, RESTART_TIMEOUT_S)
        wait_http(stack, client, f"/v1/use-cases/{uc}", 60)
        assert complete(client, uc, "implementation")["stage"] == "validation"
    assert state(stack)["restarts"]["worker"]["failing"] == 1
    assert stack.stop() == 0


def start_with_breakable_policy(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stack on a copy of the policy that the test can break while it runs."""
    policy = stack.data_dir / "policy.yaml"
    shutil.copy(ROOT / "config" / "policy.yaml", policy)
    monkeypatch.setenv("RELEASEGATE_POLICY", str(policy))
    stack.start()
    return policy


def break_policy_and_kill_api(stack: Stack, policy: Path) -> None:
    """From now on every API start fails on the policy file, until the launcher gives up."""
    text = policy.read_text()
    policy.write_text(text.replace("sla_hours: 72", "sla_hours: -1", 1))
    os.kill(state(stack)["children"]["api"], signal.SIGKILL)


def test_a_child_that_keeps_crashing_makes_the_launcher_give_up(
    own_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = own_stack
    policy = start_with_breakable_policy(stack, monkeypatch)
    break_policy_and_kill_api(stack, policy)
    assert stack.process is not None
    # 0.5 + 1 + 2 + 4 + 8 s of backoff and six failed API starts
    code = stack.process.wait(timeout=120)
    out = stack.output.read_text()
    assert code == 1, out
    assert "api keeps crashing" in out
    assert "after 5 restarts in a row, none of which stayed up 60 s; giving up" in out
    assert "sla_hours" in out  # the tail names what is wrong
    assert out.count("api exited (") == 5
    assert "restart 5 in 8 s" in out
    assert not (stack.data_dir / "launcher.json").exists()
    stack.process = None


def test_ctrl_c_during_a_backoff_stops_everything_promptly(
    own_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = own_stack
    policy = start_with_breakable_policy(stack, monkeypatch)
    break_policy_and_kill_api(stack, policy)

    def in_long_backoff() -> bool:
        r = state(stack)["restarts"]["api"]
        # after the 4th exit the backoff is 4 s
        return bool(r["state"] == "waiting" and r["count"] == 3)

    wait_for(stack, "api in backoff", in_long_backoff, 60)
    assert state(stack)["children"]["api"] is None
    assert stack.process is not None
    started = time.monotonic()
    stack.process.send_signal(signal.SIGINT)
    assert stack.process.wait(timeout=20) == 0, stack.output.read_text()
    assert time.monotonic() - started < 15
    stack.process = None
    out = stack.output.read_text()
    assert "SIGINT received: stopping" in out
    assert "restart 4)" not in out  # stopped while waiting, not restarted
    assert not (stack.data_dir / "launcher.json").exists()
