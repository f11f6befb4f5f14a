"""The launcher's edges: bad config, a data dir already in use, a Temporal server that is
already there, and a child that dies under it (restarted; see test_launcher_restarts.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.stack import ROOT, Stack, free_port

TEMPORAL = str(Path(sys.executable).parent / "temporal")


def launch(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "services.launcher"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_bad_configuration_exits_2_before_starting_anything(tmp_path: Path) -> None:
    result = launch({"RELEASEGATE_DATA_DIR": str(tmp_path), "RELEASEGATE_API_PORT": "http"})
    assert result.returncode == 2
    assert "RELEASEGATE_API_PORT" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_data_dir_in_use_is_refused(stack: Stack) -> None:
    result = launch(
        {
            "RELEASEGATE_DATA_DIR": str(stack.data_dir),
            "RELEASEGATE_API_PORT": str(free_port()),
            "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
            "TEMPORAL_UI_PORT": str(free_port()),
        }
    )
    assert result.returncode == 1
    assert "in use by another ReleaseGate launcher" in result.stderr
    assert "Traceback" not in result.stderr
    assert stack.process is not None
    assert stack.process.poll() is None  # the first launcher is unaffected


def test_reuses_a_running_temporal_and_restarts_a_dead_child(tmp_path: Path) -> None:
    # a bare dev server nobody registered our search attributes on
    port = free_port()
    server = subprocess.Popen(  # noqa: S603
        [TEMPORAL, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    stack = Stack(tmp_path)
    stack.temporal_port = port
    try:
        stack.start()
        assert set(stack.child_pids) == {"worker", "api"}  # no second Temporal
        out = stack.output.read_text()
        assert "registered search attributes: BusinessOwner, GateDueAt" in out
        assert "using the server that already answered" in out

        # a dead worker is started again; the server is not ours, so not watched
        os.kill(stack.child_pids["worker"], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while "worker restarted (pid" not in stack.output.read_text():
            assert stack.process is not None
            assert stack.process.poll() is None, stack.output.read_text()
            assert time.monotonic() < deadline, stack.output.read_text()
            time.sleep(0.2)
        state = json.loads((tmp_path / "launcher.json").read_text())
        assert set(state["restarts"]) == {"worker", "api"}
        assert state["restarts"]["worker"]["count"] == 1
        assert "worker polling task queue" in stack.output.read_text()  # the tail of its log
        assert stack.stop() == 0
        assert stack.leftovers() == []
        assert server.poll() is None  # not ours to stop
        listed = subprocess.run(  # noqa: S603
            [TEMPORAL, "operator", "search-attribute", "list", "--address", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "PendingApprovers" in listed
    finally:
        if stack.process is not None:
            stack.stop()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=15)


def test_ctrl_c_while_starting_stops_what_was_started(tmp_path: Path) -> None:
    stack = Stack(tmp_path)
    env = {
        **os.environ,
        "RELEASEGATE_DATA_DIR": str(tmp_path),
        "RELEASEGATE_API_PORT": str(stack.api_port),
        "TEMPORAL_ADDRESS": stack.temporal_address,
        "TEMPORAL_UI_PORT": str(stack.ui_port),
    }
    with stack.output.open("ab") as out:
        proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "services.launcher"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while "starting Temporal dev server" not in stack.output.read_text():
        assert proc.poll() is None, stack.output.read_text()
        assert time.monotonic() < deadline, stack.output.read_text()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0, stack.output.read_text()
    assert stack.leftovers() == []
    assert not (tmp_path / "launcher.json").exists()
