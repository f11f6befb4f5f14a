"""Make the previous-version data directory that ``tests/e2e/test_upgrade.py`` upgrades.

The issue "One state, one command layer" promises (Compatibility): a data directory from the
previous version, started with the new ``make run``, carries its in-flight runs to ``live``.
This script produces that data directory from an OLD checkout:

1. starts the old tree's own launcher (``python -m services.launcher``, what ``make run`` runs)
   on free ports with a fresh ``RELEASEGATE_DATA_DIR``, the way ``tests/e2e/stack.py`` does
   (same ``RELEASEGATE_TASK_QUEUE``, so the current ``Stack`` helper picks the runs up);
2. drives a handful of use cases over HTTP only, with the demo directory's tokens
   (``Bearer dev-<id>``), into the interesting in-flight states (see ``SCENARIOS``);
3. records, per run, where it stands and the HTTP calls that remain to take it to ``live``;
4. stops the stack with SIGINT (Ctrl-C), as a user would: the dev server stops gracefully
   (it leaves its ``-wal``/``-shm`` beside ``temporal.db``; they are part of the state);
5. checks each database with ``PRAGMA quick_check`` (on a copy), packs ``temporal.db`` (+ its
   ``-wal``/``-shm``) and ``releasegate.db`` (+ the same, if any) into
   ``<out>/previous_data_dir.tar.gz`` and writes ``<out>/previous_data_dir.json``.

Logs, ``launcher.lock``, ``launcher.json`` and the launcher output stay out of the tarball.

Usage (from the current tree; the old tree is a separate checkout)::

    git worktree add /tmp/rg-old <old commit>
    .venv/bin/python -m tests.e2e.make_previous_data_dir --old-tree /tmp/rg-old \
        --out tests/e2e/fixtures
    git worktree remove --force /tmp/rg-old

The interpreter running this script also runs the old stack (``--python`` to use another one);
it needs the old tree's dependencies and the ``temporal`` CLI next to it. The script imports
only the standard library and httpx, never the tree it is run from, so it works against any
commit whose HTTP API it knows (the one of ``tests/e2e/stack.py``'s era).

Note on time: the fixture ages. The high-tier run sits in ``risk_signoff``, which expires
``expire_after_hours`` (336 h in the pinned policy) after it opened; once that has passed the
run is ``stalled`` when the new version starts, and its manifest entry carries the alternative
``steps_if_stalled`` (reopen, then both approvals), which the test takes. A live run opens a
``periodic_review`` 365 days after it went live, which the test does not expect: regenerate the
fixture well before that.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

FIXTURE_NAME = "previous_data_dir"
START_TIMEOUT_S = 180
STOP_TIMEOUT_S = 90
TASK_QUEUE = "e2e"  # what tests/e2e/stack.py sets; the runs are bound to it
DB_FILES = ("temporal.db", "releasegate.db")
DB_SUFFIXES = ("", "-wal", "-shm", "-journal")

OWNERS = {
    "business_owner": "bo",
    "technical_owner": "tom",
    "operations_owner": "olga",
    "risk_approvers": ["group:risk-committee"],
    "escalation_owner": "eve",
}

Step = dict[str, Any]


# --------------------------------------------------------------------------- the old stack


def say(text: str) -> None:
    print(text, flush=True)  # noqa: T201 - a command-line tool's progress


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OldStack:
    """The old tree's launcher as a subprocess, started like ``tests/e2e/stack.py`` does."""

    def __init__(self, tree: Path, data_dir: Path, python: str, task_queue: str) -> None:
        self.tree = tree
        self.data_dir = data_dir
        self.python = python
        self.task_queue = task_queue
        self.api_port = free_port()
        self.temporal_port = free_port()
        self.ui_port = free_port()
        # outside the data dir, so it never ends up in the tarball
        self.output = data_dir.parent / f"{data_dir.name}.launcher.out"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RELEASEGATE_", "TEMPORAL_", "SLACK_"))
        }
        env.update(
            {
                "RELEASEGATE_DATA_DIR": str(self.data_dir),
                "RELEASEGATE_API_PORT": str(self.api_port),
                "TEMPORAL_ADDRESS": f"127.0.0.1:{self.temporal_port}",
                "TEMPORAL_UI_PORT": str(self.ui_port),
                "RELEASEGATE_TASK_QUEUE": self.task_queue,
                # the old tree's packages, never an editable install of another checkout
                "PYTHONPATH": str(self.tree),
            }
        )
        with self.output.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 - argv built here
                [self.python, "-m", "services.launcher"],
                cwd=self.tree,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"old launcher exited:\n{self.output.read_text()}")
            if "ReleaseGate is running" in self.output.read_text():
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"old stack did not start:\n{self.output.read_text()}")

    def stop(self) -> int:
        """Ctrl-C: SIGINT to the launcher alone; it stops its children newest first."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT_S)
        finally:
            self.process = None


# --------------------------------------------------------------------------- HTTP helpers


def evidence(key: str, kind: str, tag: str = "") -> dict[str, str]:
    """An evidence item with a digest that is stable for (key, kind, tag)."""
    return {
        "kind": kind,
        "name": f"{kind}.pdf",
        "uri": f"https://docs.example.com/{key}/{kind}{tag}.pdf",
        "sha256": hashlib.sha256(f"{key}/{kind}{tag}".encode()).hexdigest(),
    }


def step(method: str, path: str, person: str, body: Any = None, **expect: Any) -> Step:
    """One HTTP call as the manifest records it; ``expect`` fields of the returned view."""
    s: Step = {"method": method, "path": path, "token": f"dev-{person}", "body": body}
    if expect:
        s["expect"] = expect
    return s


def seen(client: httpx.Client, s: Step) -> dict[str, str]:
    """An approval names the evidence its approver reviewed (``If-Match`` with the state's
    ETag) on a server that gives one; an older server has none and wants none."""
    run, sep, _ = s["path"].partition("/gates/")
    if not sep or (s["body"] or {}).get("decision") != "approve":
        return {}
    etag = client.get(run, headers={"Authorization": f"Bearer {s['token']}"}).headers.get("etag")
    return {"If-Match": etag} if etag else {}


def perform(client: httpx.Client, s: Step) -> dict[str, Any]:
    r = client.request(
        s["method"],
        s["path"],
        headers={"Authorization": f"Bearer {s['token']}", **seen(client, s)},
        json=s["body"],
    )
    if r.status_code not in (200, 201):
        raise RuntimeError(f"{s['method']} {s['path']}: {r.status_code} {r.text}")
    view: dict[str, Any] = r.json()
    for field, want in s.get("expect", {}).items():
        if view.get(field) != want:
            raise RuntimeError(
                f"{s['method']} {s['path']}: {field}={view.get(field)!r} != {want!r}"
            )
    return view


def run_steps(client: httpx.Client, steps: list[Step]) -> dict[str, Any]:
    view: dict[str, Any] = {}
    for s in steps:
        view = perform(client, s)
    return view


def uc_path(key: str, tail: str = "") -> str:
    return f"/v1/use-cases/usecase-{key}{tail}"


def create(key: str, title: str, tier: str) -> Step:
    body: dict[str, Any] = {"key": key, "title": title, "summary": f"{title} (upgrade fixture)"}
    body |= {"risk_tier": tier, "owners": OWNERS}
    return step("POST", "/v1/use-cases", "dana", body, stage="scoping")


def complete(
    key: str,
    work: str,
    person: str,
    evidence_items: list[dict[str, str]] | None = None,
    **expect: Any,
) -> Step:
    """Complete the work stage ``work``; ``expect`` names fields of the view it returns."""
    body = {"evidence": evidence_items} if evidence_items else {}
    return step("POST", uc_path(key, f"/stages/{work}/complete"), person, body, **expect)


def add_evidence(key: str, person: str, items: list[dict[str, str]], **expect: Any) -> Step:
    return step("POST", uc_path(key, "/evidence"), person, {"evidence": items}, **expect)


def approve(key: str, gate: str, person: str, **expect: Any) -> Step:
    return step(
        "POST", uc_path(key, f"/gates/{gate}/decisions"), person, {"decision": "approve"}, **expect
    )


def low_release_gates(key: str) -> list[Step]:
    """risk_signoff (open) → live for a low-tier use case."""
    return [
        approve(key, "risk_signoff", "rita", stage="ops_handoff"),
        approve(key, "ops_handoff", "olga", stage="go_live"),
        approve(key, "go_live", "bo", stage="live", live_version=1),
    ]


def low_to_live(key: str) -> list[Step]:
    return [
        complete(key, "scoping", "dana", stage="specification"),
        complete(key, "specification", "dana", stage="implementation"),
        complete(key, "implementation", "dana", stage="validation"),
        complete(
            key, "validation", "dana", [evidence(key, "evaluation_report")], stage="risk_signoff"
        ),
        *low_release_gates(key),
    ]


def snapshot(view: dict[str, Any]) -> dict[str, Any]:
    """Where a run stands, as the test compares it after the upgrade."""
    gate = view.get("open_gate")
    return {
        "stage": view["stage"],
        "closed": view["closed"],
        "round": view["round"],
        "live_version": view.get("live_version", 0),
        "required_evidence": view.get("required_evidence", []),
        "open_gate": None
        if gate is None
        else {
            "gate": gate["gate"],
            "quorum": gate["quorum"],
            "eligible": gate["eligible"],
            "approvals": [a["actor"] for a in gate["approvals"]],
            "required_evidence": gate.get("required_evidence", []),
            "expires_at": gate.get("expires_at"),
        },
        "evidence_kinds": sorted(e["kind"] for e in view.get("evidence", [])),
        "changes": [
            {"change_id": c["change_id"], "workflow_id": c["workflow_id"], "status": c["status"]}
            for c in view.get("changes", [])
        ],
    }


def get(client: httpx.Client, path: str) -> dict[str, Any]:
    r = client.get(path, headers={"Authorization": "Bearer dev-eve"})
    r.raise_for_status()
    data: dict[str, Any] = r.json()
    return data


def settled_ledger(client: httpx.Client, workflow_id: str) -> int:
    """The number of ledger entries of the run once its chain verifies."""
    text = ""
    for _ in range(60):
        r = client.get(
            f"/v1/use-cases/{workflow_id}/ledger/verify",
            headers={"Authorization": "Bearer dev-eve"},
        )
        if r.status_code == 200 and r.json()["ok"]:
            return int(r.json()["entries"])
        text = r.text
        time.sleep(0.5)
    raise RuntimeError(f"the ledger of {workflow_id} does not verify: {text}")


# --------------------------------------------------------------------------- scenarios
# Each builds its run with the old stack and returns the manifest entry: the run's id, tier,
# where it stands (``at``), the remaining ``steps`` to live and what ``final`` must show.


def work_stage(client: httpx.Client) -> dict[str, Any]:
    key = "upgrade-low-work-stage"
    run_steps(
        client,
        [
            create(key, "Upgrade: low tier at a work stage", "low"),
            complete(key, "scoping", "dana", stage="specification"),
            complete(key, "specification", "dana", stage="implementation"),
        ],
    )
    return {
        "description": "low tier, at the work stage implementation",
        "key": key,
        "tier": "low",
        "steps": low_to_live(key)[2:],
    }


def risk_signoff_open(client: httpx.Client) -> dict[str, Any]:
    key = "upgrade-low-risk-signoff"
    run_steps(
        client,
        [create(key, "Upgrade: low tier at risk sign-off", "low"), *low_to_live(key)[:4]],
    )
    return {
        "description": "low tier, validation completed with its evaluation_report, "
        "risk_signoff open with no decision yet",
        "key": key,
        "tier": "low",
        "steps": low_release_gates(key),
    }


def high_quorum_half(client: httpx.Client) -> dict[str, Any]:
    key = "upgrade-high-quorum"
    ev = [evidence(key, k) for k in ("evaluation_report", "model_card", "dpia")]
    run_steps(
        client,
        [
            create(key, "Upgrade: high tier, one of two risk approvals", "high"),
            complete(key, "scoping", "dana", stage="scope_approval"),
            approve(key, "scope_approval", "bo", stage="scope_approval"),
            approve(key, "scope_approval", "rita", stage="specification"),
            complete(key, "specification", "tom", stage="implementation"),
            complete(key, "implementation", "tom", stage="validation"),
            complete(key, "validation", "dana", ev, stage="risk_signoff"),
            add_evidence(key, "dana", [evidence(key, "risk_assessment")], stage="risk_signoff"),
            approve(key, "risk_signoff", "rita", stage="risk_signoff"),
        ],
    )
    after_risk = [
        add_evidence(
            key,
            "tom",
            [evidence(key, "runbook"), evidence(key, "monitoring_plan")],
            stage="ops_handoff",
        ),
        approve(key, "ops_handoff", "olga", stage="go_live"),
        approve(key, "go_live", "bo", stage="go_live"),
        approve(key, "go_live", "tom", stage="live", live_version=1),
    ]
    return {
        "description": "high tier, risk_signoff (quorum 2 of risk-committee) with rita's "
        "approval given and raj's pending",
        "key": key,
        "tier": "high",
        "steps": [approve(key, "risk_signoff", "raj", stage="ops_handoff"), *after_risk],
        # risk_signoff expires (policy expire_after_hours) after it opened: a fixture older than
        # that starts stalled; the delivery lead reopens the gate (approvals start over).
        "steps_if_stalled": [
            step(
                "POST",
                uc_path(key, "/gates/risk_signoff/reopen"),
                "dana",
                {"reason": "reopened after the upgrade"},
                stage="risk_signoff",
            ),
            approve(key, "risk_signoff", "rita", stage="risk_signoff"),
            approve(key, "risk_signoff", "raj", stage="ops_handoff"),
            *after_risk,
        ],
    }


def medium_rework(client: httpx.Client) -> dict[str, Any]:
    key = "upgrade-medium-rework"
    run_steps(
        client,
        [
            create(key, "Upgrade: medium tier after a rework round", "medium"),
            complete(key, "scoping", "dana", stage="specification"),
            complete(key, "specification", "dana", stage="implementation"),
            complete(key, "implementation", "tom", stage="validation"),
            complete(
                key,
                "validation",
                "dana",
                [evidence(key, "evaluation_report")],
                stage="risk_signoff",
            ),
            add_evidence(key, "dana", [evidence(key, "risk_assessment")], stage="risk_signoff"),
            step(
                "POST",
                uc_path(key, "/gates/risk_signoff/decisions"),
                "rita",
                {"decision": "request_changes", "comment": "bias evaluation is missing"},
                stage="implementation",
                round=2,
            ),
            complete(key, "implementation", "tom", stage="validation"),
            complete(
                key,
                "validation",
                "dana",
                [evidence(key, "evaluation_report", "-r2")],
                stage="risk_signoff",
                round=2,
            ),
        ],
    )
    view = get(client, uc_path(key))
    steps: list[Step] = []
    if view["open_gate"]["required_evidence"]:
        steps.append(
            add_evidence(
                key,
                "dana",
                [evidence(key, k, "-r2") for k in view["open_gate"]["required_evidence"]],
                stage="risk_signoff",
            )
        )
    steps += [
        approve(key, "risk_signoff", "rita", stage="ops_handoff"),
        add_evidence(key, "tom", [evidence(key, "runbook")], stage="ops_handoff"),
        approve(key, "ops_handoff", "olga", stage="go_live"),
        approve(key, "go_live", "bo", stage="live", live_version=1, round=2),
    ]
    return {
        "description": "medium tier, risk_signoff answered with request_changes (round 2), "
        "implementation and validation done again, back at risk_signoff",
        "key": key,
        "tier": "medium",
        "steps": steps,
    }


def live_with_change(client: httpx.Client) -> dict[str, Any]:
    key = "upgrade-low-live-change"
    run_steps(client, [create(key, "Upgrade: live with a minor change", "low"), *low_to_live(key)])
    change = perform(
        client,
        step(
            "POST",
            uc_path(key, "/changes"),
            "dana",
            {"summary": "prompt wording tweak", "materiality": "minor"},
            stage="change_approval",
        ),
    )
    change_id = change["change"]["change_id"]
    assert change_id == "change-1", change
    return {
        "description": "low tier, live (version 1) with an open minor change request change-1 "
        "waiting in change_approval for the technical owner",
        "key": key,
        "tier": "low",
        "change": {
            "change_id": change_id,
            "workflow_id": change["id"],
            "at": snapshot(change),
        },
        "steps": [
            step(
                "POST",
                uc_path(key, f"/changes/{change_id}/gates/change_approval/decisions"),
                "tom",
                {"decision": "approve"},
                stage="live",
            )
        ],
        "final": {"stage": "live", "live_version": 2, "change_status": "applied"},
    }


def live_suspended(client: httpx.Client) -> dict[str, Any]:
    key = "upgrade-low-suspended"
    run_steps(
        client,
        [
            create(key, "Upgrade: live, then suspended", "low"),
            *low_to_live(key),
            step(
                "POST",
                uc_path(key, "/suspend"),
                "olga",
                {"reason": "drift alarm"},
                stage="suspended",
            ),
        ],
    )
    return {
        "description": "low tier, went live then was suspended by the operations owner "
        "(stop-ship); nothing open",
        "key": key,
        "tier": "low",
        "steps": [
            step(
                "POST",
                uc_path(key, "/resume"),
                "olga",
                {"reason": "drift fixed"},
                stage="suspended",
            ),
            approve(key, "resume_approval", "rita", stage="suspended"),
            approve(key, "resume_approval", "bo", stage="live"),
        ],
        # the resume is a deploy again, but it does not make a new version
        "final": {"stage": "live", "live_version": 1},
    }


SCENARIOS: list[Callable[[httpx.Client], dict[str, Any]]] = [
    work_stage,
    risk_signoff_open,
    high_quorum_half,
    medium_rework,
    live_with_change,
    live_suspended,
]


# --------------------------------------------------------------------------- packing


def quick_check(path: Path) -> None:
    """The database opens and is sound (on a copy: opening the original could touch it)."""
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in DB_SUFFIXES:
            src = path.with_name(path.name + suffix)
            if src.exists():
                (Path(tmp) / src.name).write_bytes(src.read_bytes())
        conn = sqlite3.connect(Path(tmp) / path.name)
        try:
            (result,) = conn.execute("PRAGMA quick_check").fetchone()
        finally:
            conn.close()
    if result != "ok":
        raise RuntimeError(f"{path}: quick_check says {result}")


def pack(data_dir: Path, tarball: Path) -> list[str]:
    members = [
        name + suffix
        for name in DB_FILES
        for suffix in DB_SUFFIXES
        if (data_dir / (name + suffix)).exists()
    ]
    for name in DB_FILES:
        if name not in members:
            raise RuntimeError(f"{data_dir / name} is missing")
        quick_check(data_dir / name)

    def normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mode = 0o644
        return info

    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "w:gz", compresslevel=9) as tar:
        for name in members:
            tar.add(data_dir / name, arcname=name, filter=normalize)
    return members


def git_commit(tree: Path) -> str:
    out = subprocess.run(  # noqa: S603
        ["git", "-C", str(tree), "rev-parse", "HEAD"],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


# --------------------------------------------------------------------------- main


def build(old_tree: Path, out: Path, python: str, task_queue: str, keep: bool) -> Path:
    old_tree = old_tree.resolve()
    commit = git_commit(old_tree)
    work = Path(tempfile.mkdtemp(prefix="releasegate-previous-"))
    data_dir = work / "data"
    data_dir.mkdir()
    stack = OldStack(old_tree, data_dir, python, task_queue)
    say(f"starting the old stack ({commit[:7]}) on {data_dir} ...")
    stack.start()
    runs: list[dict[str, Any]] = []
    try:
        with httpx.Client(base_url=stack.api, timeout=60) as client:
            for scenario in SCENARIOS:
                entry = scenario(client)
                view = get(client, uc_path(entry["key"]))
                entry = {
                    "name": scenario.__name__,
                    "workflow_id": view["id"],
                    **entry,
                    "at": snapshot(view),
                }
                entry.setdefault("final", {"stage": "live", "live_version": 1})
                runs.append(entry)
                say(f"  {entry['workflow_id']}: {entry['at']['stage']}")
            # the ledger is written by activities: let it settle before the stop
            for entry in runs:
                entry["at"]["ledger_entries"] = settled_ledger(client, entry["workflow_id"])
                if "change" in entry:
                    change = entry["change"]
                    change["at"]["ledger_entries"] = settled_ledger(client, change["workflow_id"])
    finally:
        code = stack.stop()
    if code != 0:
        raise RuntimeError(f"the old launcher exited {code}:\n{stack.output.read_text()}")
    say(f"stopped (exit {code}); packing ...")

    tarball = out / f"{FIXTURE_NAME}.tar.gz"
    members = pack(data_dir, tarball)
    manifest = {
        "commit": commit,
        "made_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "note": (
            f"Made by `python -m tests.e2e.make_previous_data_dir --old-tree <checkout of "
            f"{commit[:7]}> --out tests/e2e/fixtures`: the old tree's launcher "
            "(`python -m services.launcher`, what `make run` runs) on free ports and a fresh "
            f"RELEASEGATE_DATA_DIR with RELEASEGATE_TASK_QUEUE={task_queue}, the runs below "
            "driven over HTTP with the demo directory's dev tokens, then stopped with SIGINT "
            "(Ctrl-C) and the databases packed. `at` is where each run stood at the stop; "
            "`steps` are the HTTP calls (Authorization: Bearer <token>, JSON body) that take "
            "it to `live`, each `expect` naming fields of the returned view; `final` is what "
            "GET of the run shows afterwards."
        ),
        "task_queue": task_queue,
        "namespace": "default",
        "files": members,
        "runs": runs,
    }
    manifest_path = out / f"{FIXTURE_NAME}.json"
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    say(f"wrote {tarball} ({tarball.stat().st_size} bytes) and {manifest_path}")
    if keep:
        say(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return tarball


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old-tree", type=Path, required=True, help="checkout of the old commit")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "fixtures", help="output folder"
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter for the old stack")
    parser.add_argument("--task-queue", default=TASK_QUEUE, help="as tests/e2e/stack.py sets it")
    parser.add_argument("--keep", action="store_true", help="keep the temp data dir")
    args = parser.parse_args(argv)
    build(args.old_tree, args.out.resolve(), args.python, args.task_queue, args.keep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
