"""The stack started exactly the way `make run` starts it, on private ports and a temp data dir,
and small HTTP helpers for driving it."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stack:
    """`python -m services.launcher` as a subprocess, with its own Temporal dev server."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.api_port = free_port()
        self.temporal_port = free_port()
        self.ui_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.output = data_dir / "launcher.out"
        self.child_pids: dict[str, int] = {}

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "RELEASEGATE_DATA_DIR": str(self.data_dir),
            "RELEASEGATE_API_PORT": str(self.api_port),
            "TEMPORAL_ADDRESS": self.temporal_address,
            "TEMPORAL_UI_PORT": str(self.ui_port),
            "RELEASEGATE_TASK_QUEUE": "e2e",
        }
        env.pop("RELEASEGATE_DATABASE_URL", None)
        offset = self.output.stat().st_size if self.output.exists() else 0
        with self.output.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "services.launcher"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_running(offset)
        except BaseException:
            # never leave a half-started stack behind a failed test
            self.stop()
            raise

    def _wait_running(self, offset: int) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output.read_text()
            if "ReleaseGate is running" in self.output.read_text()[offset:]:
                state = json.loads((self.data_dir / "launcher.json").read_text())
                self.child_pids = state["children"]
                assert {"worker", "api"} <= set(self.child_pids), state
                return
            time.sleep(0.5)
        raise AssertionError(f"stack did not start:\n{self.output.read_text()}")

    def stop(self) -> int:
        """What Ctrl-C in the terminal does: SIGINT to the launcher alone."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=60)
        finally:
            self.process = None

    def leftovers(self) -> list[str]:
        """Processes of this stack still alive: its children by pid, and anything whose
        command line or environment names its data dir (grandchildren included)."""
        alive = []
        for name, pid in self.child_pids.items():
            if _alive(pid):
                alive.append(f"{name} (pid {pid})")
        mark = str(self.data_dir).encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                blob = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
            except OSError:
                continue
            if mark in blob and _alive(int(proc.name)):
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                alive.append(f"pid {proc.name}: {cmd}")
        return alive


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for its parent."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def token(person: str) -> dict[str, str]:
    return {"Authorization": f"Bearer dev-{person}"}


def evidence(kind: str) -> dict[str, str]:
    return {
        "kind": kind,
        "name": f"{kind}.pdf",
        "uri": f"https://docs.example.com/{kind}.pdf",
        "sha256": hashlib.sha256(f"{kind}-{uuid.uuid4()}".encode()).hexdigest(),
    }


def call(client: httpx.Client, method: str, path: str, person: str, **kw: Any) -> Any:
    r = client.request(method, path, headers=token(person), **kw)
    assert r.status_code in (200, 201), f"{method} {path}: {r.status_code} {r.text}"
    return r.json()


def approve(client: httpx.Client, uc: str, gate: str, person: str) -> Any:
    """``person`` reviews the use case's state and approves ``gate`` on the evidence it showed
    (``If-Match: <ETag>``), as a client does."""
    seen = client.get(f"/v1/use-cases/{uc}", headers=token(person))
    assert seen.status_code == 200, f"GET {uc}: {seen.status_code} {seen.text}"
    r = client.post(
        f"/v1/use-cases/{uc}/gates/{gate}/decisions",
        json={"decision": "approve"},
        headers={**token(person), "If-Match": seen.headers["etag"]},
    )
    assert r.status_code == 200, f"approve {gate} of {uc}: {r.status_code} {r.text}"
    return r.json()


OWNERS = {
    "business_owner": "bo",
    "technical_owner": "tom",
    "operations_owner": "olga",
    "risk_approvers": ["group:risk-committee"],
    "escalation_owner": "eve",
}
