"""``releasegate``: the command line for delivery leads, approvers and scripts.

Every command is one or a few calls to the HTTP API; the CLI holds no rules of its own, so it
can never disagree with the workflow. Exit codes: 0 ok, 1 server failure or broken ledger,
2 usage or configuration, 3 refused by policy (403/409/412/422/428), 4 not found, 5 unreachable
(connection error, timeout, 503), 6 ``--wait`` timed out.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from typer.core import TyperGroup

from services.cli import controls as controls_render
from services.cli import render
from services.cli.client import DEFAULT_TIMEOUT_S, Api, segment
from services.cli.config import resolve_config
from services.cli.errors import (
    EXIT_FAILED,
    EXIT_USAGE,
    EXIT_WAIT_TIMEOUT,
    CliError,
)
from workflows.ids import USE_CASE_PREFIX
from workflows.model import Decision, Gate, Materiality, RiskTier, Severity, Stage


class ReleaseGateGroup(TyperGroup):
    """Turns ``CliError`` into ``title: detail`` on stderr and its exit code, never a traceback."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except CliError as exc:
            render.stderr().print(
                f"error: {exc.message}", style="red", markup=False, soft_wrap=True
            )
            raise typer.Exit(exc.code) from None


app = typer.Typer(
    name="releasegate",
    cls=ReleaseGateGroup,
    help="ReleaseGate from the terminal: start and drive use cases, decide gates, audit, "
    "and see how the release path flows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
audit_app = typer.Typer(
    cls=ReleaseGateGroup,
    help="Verify ledger chains and export evidence packs.",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")


# --------------------------------------------------------------------------- plumbing


@dataclass
class Session:
    url: str | None
    token: str | None
    config: Path | None
    timeout: float
    _api: Api | None = field(default=None, repr=False)

    def api(self) -> Api:
        if self._api is None:
            cfg = resolve_config(url=self.url, token=self.token, config_path=self.config)
            self._api = Api(cfg.url, cfg.token, timeout=self.timeout)
        return self._api

    def close(self) -> None:
        if self._api is not None:
            self._api.close()


def session(ctx: typer.Context) -> Session:
    obj = ctx.find_root().obj
    assert isinstance(obj, Session)
    return obj


@app.callback()
def main(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option("--url", help="API base URL (else RELEASEGATE_URL, config)")
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", help="bearer token (else RELEASEGATE_TOKEN, config)")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="config file (default ~/.config/releasegate/config.toml)"),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="HTTP timeout in seconds")
    ] = DEFAULT_TIMEOUT_S,
) -> None:
    obj = Session(url=url, token=token, config=config, timeout=timeout)
    ctx.obj = obj
    ctx.call_on_close(obj.close)


def use_case_path(key: str, *rest: str) -> str:
    return "/".join(["/v1/use-cases", segment(key), *rest])


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def post_and_show(
    ctx: typer.Context, path: str, body: dict[str, Any], feature: str, as_json: bool
) -> None:
    """POST a command to the API and print the state it answers with."""
    show_state(session(ctx).api().post(path, json=body, feature=feature), as_json)


def show_state(state: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(state)
    else:
        render.stdout().print(render.state_panel(state))


def enum_value(kind: type[Any], value: str, what: str) -> str:
    """``go-live`` and ``go_live`` alike; anything else is a usage error listing the choices."""
    normalized = value.strip().lower().replace("-", "_")
    choices = [m.value for m in kind]
    if normalized not in choices:
        raise typer.BadParameter(f"{value!r} is not a {what}; one of: {', '.join(choices)}")
    return normalized


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_evidence(kind: str, path: Path, uri: str | None = None, name: str | None = None) -> dict:
    """An evidence item for a local file: its sha256 computed here, ``file://`` URI by default."""
    resolved = path.expanduser().resolve()
    if not resolved.is_file():
        raise CliError(EXIT_USAGE, f"evidence file {path} does not exist or is not a file")
    try:
        digest = sha256_of(resolved)
    except OSError as exc:
        raise CliError(EXIT_USAGE, f"evidence file {path} cannot be read: {exc}") from None
    return {
        "kind": kind,
        "name": name or resolved.name,
        "uri": uri or resolved.as_uri(),
        "sha256": digest,
    }


def parse_evidence_files(values: list[str] | None) -> list[dict[str, str]]:
    items = []
    for value in values or []:
        kind, sep, path = value.partition("=")
        if not sep or not kind or not path:
            raise typer.BadParameter(
                f"{value!r}: expected KIND=PATH, e.g. evaluation_report=./eval.pdf",
                param_hint="--evidence-file",
            )
        items.append(file_evidence(kind.strip(), Path(path)))
    return items


def follow(
    api: Api, key: str, state: dict[str, Any], left: str, timeout: float, interval: float
) -> dict[str, Any]:
    """Poll the use case until it leaves stage ``left`` (or closes), showing progress."""
    if state.get("stage") != left or state.get("closed"):
        return state

    def describe(s: dict[str, Any]) -> str:
        gate = s.get("open_gate") or {}
        if gate:
            approvals = [a.get("actor") for a in gate.get("approvals", [])]
            waiting = [p for p in gate.get("eligible", []) if p not in approvals]
            return (
                f"{s.get('key')}: {gate.get('gate')} {len(approvals)}/{gate.get('quorum')} "
                f"approvals, waiting on {', '.join(waiting) or 'nobody'}"
            )
        return f"{s.get('key')}: in {s.get('stage')}"

    deadline = time.monotonic() + timeout if timeout > 0 else None
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=render.stderr(),
        transient=True,
    ) as progress:
        task = progress.add_task(describe(state))
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                raise CliError(
                    EXIT_WAIT_TIMEOUT,
                    f"gave up waiting after {timeout:g}s: {key} is still in {left}",
                )
            time.sleep(interval)
            state = api.get(use_case_path(key))
            if state.get("stage") != left or state.get("closed"):
                return state
            progress.update(task, description=describe(state))


JsonFlag = Annotated[bool, typer.Option("--json", help="print the API's JSON")]
Key = Annotated[str, typer.Argument(help=f"use case key (or its id {USE_CASE_PREFIX}<key>)")]
Comment = Annotated[str, typer.Option("--message", "-m", help="comment")]
IdemKey = Annotated[
    str | None, typer.Option("--idempotency-key", help="the same key twice is one command")
]
Wait = Annotated[bool, typer.Option("--wait", help="follow the run until its stage changes")]
WaitTimeout = Annotated[
    float, typer.Option("--wait-timeout", min=0, help="seconds before --wait gives up; 0 = never")
]
PollInterval = Annotated[float, typer.Option("--poll-interval", min=0.05, hidden=True)]


def idem_headers(key: str | None) -> dict[str, str] | None:
    return {"Idempotency-Key": key} if key else None


# --------------------------------------------------------------------------- use cases


@app.command()
def start(
    ctx: typer.Context,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="YAML/JSON use case (the API's body)")
    ] = None,
    key: Annotated[str | None, typer.Option(help="slug, e.g. claims-triage")] = None,
    title: Annotated[str | None, typer.Option()] = None,
    summary: Annotated[str | None, typer.Option()] = None,
    tier: Annotated[str | None, typer.Option("--tier", help="low, medium or high")] = None,
    business_owner: Annotated[str | None, typer.Option()] = None,
    technical_owner: Annotated[str | None, typer.Option()] = None,
    operations_owner: Annotated[str | None, typer.Option()] = None,
    risk_approver: Annotated[
        list[str] | None, typer.Option(help="person id or group:<name>; repeatable")
    ] = None,
    escalation_owner: Annotated[str | None, typer.Option()] = None,
    stop_authority: Annotated[list[str] | None, typer.Option(help="repeatable")] = None,
    slack_channel: Annotated[str | None, typer.Option()] = None,
    as_json: JsonFlag = False,
) -> None:
    """Launch a use case (you become its delivery lead). Flags override the file."""
    body: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CliError(EXIT_USAGE, f"{file} cannot be read: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise CliError(EXIT_USAGE, f"{file} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise CliError(EXIT_USAGE, f"{file}: expected a mapping with key, title, owners…")
        body = dict(loaded)
        if "tier" in body and "risk_tier" not in body:
            body["risk_tier"] = body.pop("tier")
    owners: dict[str, Any] = dict(body.get("owners") or {})
    for name, value in {
        "business_owner": business_owner,
        "technical_owner": technical_owner,
        "operations_owner": operations_owner,
        "risk_approvers": risk_approver or None,
        "escalation_owner": escalation_owner,
        "stop_authority": stop_authority or None,
    }.items():
        if value is not None:
            owners[name] = value
    for name, value in {
        "key": key,
        "title": title,
        "summary": summary,
        "risk_tier": enum_value(RiskTier, tier, "risk tier") if tier else None,
        "slack_channel": slack_channel,
    }.items():
        if value is not None:
            body[name] = value
    if owners:
        body["owners"] = owners
    required = ["key", "title", "risk_tier"]
    missing = [n for n in required if not body.get(n)]
    missing += [
        f"owners.{n}"
        for n in (
            "business_owner",
            "technical_owner",
            "operations_owner",
            "risk_approvers",
            "escalation_owner",
        )
        if not owners.get(n)
    ]
    if missing:
        raise CliError(
            EXIT_USAGE,
            f"start needs {', '.join(missing)} (flags such as --key/--tier/--business-owner, "
            "or --file use-case.yaml)",
        )
    state = session(ctx).api().post("/v1/use-cases", json=body)
    show_state(state, as_json)


@app.command("list")
def list_use_cases(
    ctx: typer.Context,
    stage: Annotated[str | None, typer.Option()] = None,
    tier: Annotated[str | None, typer.Option()] = None,
    owner: Annotated[str | None, typer.Option(help="anyone named in the owners")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Use cases, most recently changed first."""
    page = (
        session(ctx)
        .api()
        .get(
            "/v1/use-cases",
            params={
                "stage": enum_value(Stage, stage, "stage") if stage else None,
                "risk_tier": enum_value(RiskTier, tier, "risk tier") if tier else None,
                "owner": owner,
                "limit": limit,
            },
        )
    )
    if as_json:
        emit_json(page)
    else:
        render.stdout().print(render.use_case_table(page.get("items", [])))


@app.command()
def status(ctx: typer.Context, key: Key, as_json: JsonFlag = False) -> None:
    """Where a use case stands: stage, open gate, who it waits on, evidence still needed."""
    show_state(session(ctx).api().get(use_case_path(key)), as_json)


@app.command()
def history(ctx: typer.Context, key: Key, as_json: JsonFlag = False) -> None:
    """Every stage and decision event of a use case, in order."""
    events = session(ctx).api().get(use_case_path(key, "history"))
    if as_json:
        emit_json(events)
    else:
        render.stdout().print(render.history_table(events, f"History of {key}"))


@app.command()
def complete(
    ctx: typer.Context,
    key: Key,
    stage: Annotated[str, typer.Argument(help="scoping, specification, implementation, …")],
    evidence_file: Annotated[
        list[str] | None,
        typer.Option("--evidence-file", help="KIND=PATH; sha256 computed locally; repeatable"),
    ] = None,
    message: Comment = "",
    idempotency_key: IdemKey = None,
    wait: Wait = False,
    wait_timeout: WaitTimeout = 300.0,
    poll_interval: PollInterval = 1.0,
    as_json: JsonFlag = False,
) -> None:
    """Complete a work stage, with evidence files."""
    stage_name = enum_value(Stage, stage, "stage")
    api = session(ctx).api()
    state = api.post(
        use_case_path(key, "stages", stage_name, "complete"),
        json={"evidence": parse_evidence_files(evidence_file), "comment": message},
        headers=idem_headers(idempotency_key),
    )
    if wait:
        state = follow(api, key, state, stage_name, wait_timeout, poll_interval)
    show_state(state, as_json)


@app.command()
def evidence(
    ctx: typer.Context,
    key: Key,
    kind: Annotated[str, typer.Option("--kind", help="e.g. risk_assessment")],
    file: Annotated[Path | None, typer.Option("--file", help="sha256 computed locally")] = None,
    uri: Annotated[str | None, typer.Option("--uri", help="where the evidence lives")] = None,
    sha256: Annotated[str | None, typer.Option("--sha256", help="with --uri, no --file")] = None,
    name: Annotated[str | None, typer.Option("--name")] = None,
    message: Comment = "",
    idempotency_key: IdemKey = None,
    as_json: JsonFlag = False,
) -> None:
    """Submit evidence for the current stage or open gate (voids that gate's approvals)."""
    if file is not None:
        if sha256:
            raise typer.BadParameter("give --file or --sha256, not both", param_hint="--sha256")
        item = file_evidence(kind, file, uri=uri, name=name)
    elif uri and sha256:
        item = {
            "kind": kind,
            "name": name or uri.rstrip("/").rsplit("/", 1)[-1] or kind,
            "uri": uri,
            "sha256": sha256,
        }
    else:
        raise typer.BadParameter("give --file PATH, or --uri U with --sha256 H")
    state = (
        session(ctx)
        .api()
        .post(
            use_case_path(key, "evidence"),
            json={"evidence": [item], "comment": message},
            headers=idem_headers(idempotency_key),
        )
    )
    show_state(state, as_json)


def digests_to_approve(state: dict[str, Any], items: list[dict[str, Any]]) -> list[str]:
    """The evidence set an approval binds to now, as the state names it (what its ``ETag``
    covers, ``services.commands.evidence.bound_digests``): the open gate's digests, or, while
    no gate is open, the run's ``evidence_digests`` (all its evidence and its bundle, where
    ``evidence`` lists only the latest items); a state that names none (an older worker's,
    which lists every item) binds to the items listed."""
    open_gate = state.get("open_gate") or {}
    if open_gate:
        named = open_gate.get("evidence_digests") or []
    else:
        named = state.get("evidence_digests") or [e.get("sha256", "") for e in items]
    return sorted({str(d).lower() for d in named if d})


def show_evidence_to_approve(api: Api, key: str, gate: str) -> list[str]:
    """Read the run, show (on stderr) the evidence an approval of ``gate`` binds to, and
    return its digests: what the approval names, so it records what was shown or nothing
    (the workflow refuses it when the evidence changed since). Digests the state's latest
    items do not list (the bundle's, earlier items') are shown by digest."""
    state = api.get(use_case_path(key))
    items = [e for e in state.get("evidence") or [] if isinstance(e, dict)]
    digests = digests_to_approve(state, items)
    shown = [e for e in items if str(e.get("sha256", "")).lower() in digests]
    listed = {str(e.get("sha256", "")).lower() for e in shown}
    bundle = str(state.get("bundle_digest") or "").lower()
    shown += [
        {"kind": "bundle" if d == bundle else "(earlier item)", "name": "", "sha256": d}
        for d in digests
        if d not in listed
    ]
    render.stderr().print(render.evidence_table(shown, f"Approving {gate} of {key} on:"))
    return digests


@app.command()
def decide(
    ctx: typer.Context,
    key: Key,
    gate: Annotated[str, typer.Argument(help="risk_signoff, ops_handoff, go_live, …")],
    decision: Annotated[str, typer.Argument(help="approve | request-changes | reject")],
    message: Comment = "",
    idempotency_key: IdemKey = None,
    wait: Wait = False,
    wait_timeout: WaitTimeout = 300.0,
    poll_interval: PollInterval = 1.0,
    as_json: JsonFlag = False,
) -> None:
    """Decide a gate. A comment (-m) is required unless you approve. An approval shows the
    evidence it binds to first (kind, name, sha256) and names exactly those digests."""
    gate_name = enum_value(Gate, gate, "gate")
    verdict = enum_value(Decision, decision, "decision")
    api = session(ctx).api()
    body: dict[str, Any] = {"decision": verdict, "comment": message}
    if verdict == Decision.APPROVE:
        body["evidence_digests"] = show_evidence_to_approve(api, key, gate_name)
    state = api.post(
        use_case_path(key, "gates", gate_name, "decisions"),
        json=body,
        headers=idem_headers(idempotency_key),
    )
    if wait:
        state = follow(api, key, state, gate_name, wait_timeout, poll_interval)
    show_state(state, as_json)


@app.command()
def reopen(
    ctx: typer.Context,
    key: Key,
    gate: Annotated[str, typer.Argument(help="the gate that expired")],
    message: Comment = "",
    as_json: JsonFlag = False,
) -> None:
    """Open an expired gate again (the run is ``stalled`` until then)."""
    gate_name = enum_value(Gate, gate, "gate")
    post_and_show(
        ctx,
        use_case_path(key, "gates", gate_name, "reopen"),
        {"reason": message},
        "reopen an expired gate",
        as_json,
    )


@app.command()
def override(
    ctx: typer.Context,
    key: Key,
    gate: Annotated[str, typer.Argument(help="the stalled gate (past its SLA, or expired)")],
    justification: Annotated[
        str, typer.Option("--justification", "-m", help="why it cannot wait (recorded)")
    ],
    as_json: JsonFlag = False,
) -> None:
    """Break-glass: pass a stalled gate now, on the record (the policy's emergency group); a
    retrospective review must uphold it within the policy's window."""
    gate_name = enum_value(Gate, gate, "gate")
    post_and_show(
        ctx,
        use_case_path(key, "gates", gate_name, "override"),
        {"justification": justification},
        "override a stalled gate",
        as_json,
    )


@app.command()
def pending(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Gates waiting on you."""
    page = session(ctx).api().get("/v1/approvals/pending")
    if as_json:
        emit_json(page)
    else:
        render.stdout().print(render.pending_table(page.get("items", [])))
        if page.get("control_gaps"):
            render.stdout().print(controls_render.gaps_table(page["control_gaps"]))


@app.command()
def controls(
    ctx: typer.Context,
    key: Key,
    oscal: Annotated[
        bool, typer.Option("--oscal", help="print the OSCAL assessment-results document")
    ] = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="write the view as a self-contained HTML page")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Controls of a use case per framework (NIST AI RMF, ISO/IEC 42001, EU AI Act, SR 11-7):
    satisfied, pending, gap or not applicable, with the evidence and decisions behind each."""
    api = session(ctx).api()
    path = use_case_path(key, "controls")
    if oscal:
        emit_json(api.get(path, params={"format": "oscal"}, feature="controls"))
        return
    view = api.get(path, feature="controls")
    if html is not None:
        from services.report.controls import render_controls

        try:
            html.write_text(render_controls(view, source=api.base_url), encoding="utf-8")
        except OSError as exc:
            raise CliError(EXIT_USAGE, f"cannot write {html}: {exc.strerror}") from None
        render.stderr().print(f"wrote {html}")
    elif as_json:
        emit_json(view)
    else:
        render.stdout().print(controls_render.controls_view(view))


@app.command()
def cancel(
    ctx: typer.Context,
    key: Key,
    message: Annotated[str, typer.Option("--message", "-m", "--reason")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Cancel a use case (delivery lead or business owner)."""
    state = session(ctx).api().post(use_case_path(key, "cancel"), json={"reason": message})
    show_state(state, as_json)


# --------------------------------------------------------------------------- live operation

LIVE = "live operation"


@app.command(rich_help_panel=LIVE)
def incident(
    ctx: typer.Context,
    key: Key,
    severity: Annotated[str, typer.Option("--severity", help="sev1 … sev4")],
    summary: Annotated[str, typer.Option("--summary", "-m")],
    as_json: JsonFlag = False,
) -> None:
    """Report an incident; a sev1 suspends the use case when the policy says so."""
    post_and_show(
        ctx,
        use_case_path(key, "incidents"),
        {"severity": enum_value(Severity, severity, "severity"), "summary": summary},
        "live operation: incidents",
        as_json,
    )


@app.command(rich_help_panel=LIVE)
def suspend(
    ctx: typer.Context,
    key: Key,
    reason: Annotated[str, typer.Option("--reason", "-m")],
    as_json: JsonFlag = False,
) -> None:
    """Stop-ship: suspend the live use case (stop-authority holders; calls the rollback hook)."""
    post_and_show(
        ctx, use_case_path(key, "suspend"), {"reason": reason}, "live operation: suspend", as_json
    )


@app.command(rich_help_panel=LIVE)
def resume(
    ctx: typer.Context,
    key: Key,
    reason: Annotated[str, typer.Option("--reason", "-m")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Ask to resume a suspended use case (opens gate resume_approval)."""
    post_and_show(
        ctx, use_case_path(key, "resume"), {"reason": reason}, "live operation: resume", as_json
    )


@app.command(rich_help_panel=LIVE)
def change(
    ctx: typer.Context,
    key: Key,
    summary: Annotated[str, typer.Option("--summary", "-m")],
    materiality: Annotated[str, typer.Option("--materiality", help="minor or material")],
    evidence_file: Annotated[
        list[str] | None, typer.Option("--evidence-file", help="KIND=PATH; repeatable")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Raise a change request against the live use case; prints the change's own state."""
    post_and_show(
        ctx,
        use_case_path(key, "changes"),
        {
            "summary": summary,
            "materiality": enum_value(Materiality, materiality, "materiality"),
            "evidence": parse_evidence_files(evidence_file),
        },
        "live operation: change requests",
        as_json,
    )


@app.command(rich_help_panel=LIVE)
def retire(
    ctx: typer.Context,
    key: Key,
    reason: Annotated[str, typer.Option("--reason", "-m")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Retire the use case (business owner)."""
    post_and_show(
        ctx, use_case_path(key, "retire"), {"reason": reason}, "live operation: retire", as_json
    )


# --------------------------------------------------------------------------- audit


def all_use_case_ids(api: Api) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    while True:
        page = api.get("/v1/use-cases", params={"limit": 200, "cursor": cursor})
        ids += [item["id"] for item in page.get("items", [])]
        cursor = page.get("next_cursor")
        if not cursor:
            return sorted(ids)


def looks_like_pack(target: str) -> bool:
    """A file to verify offline rather than a use case key (keys never hold '.' or '/')."""
    return "." in target or "/" in target or Path(target).is_file()


def verify_offline(
    pack_path: Path, checkpoints: list[Path], keys: list[str], witnesses: list[str], as_json: bool
) -> None:
    """Verify an evidence pack with no server and no database (services/tlog/auditor.py)."""
    from services.tlog import auditor

    if not keys:
        raise CliError(EXIT_USAGE, "offline verification needs --key (a vkey or a key file)")
    try:
        pack = json.loads(pack_path.read_text(encoding="utf-8"))
        trusted, witness_keys = auditor.load_keys(keys), auditor.load_keys(witnesses)
    except (OSError, ValueError, KeyError) as exc:
        raise CliError(EXIT_USAGE, f"cannot read {pack_path} or the keys: {exc}") from None
    report = auditor.verify_pack(pack, trusted, checkpoints, witness_keys)
    if as_json:
        emit_json(
            {
                "ok": report.ok,
                "first_bad_seq": report.first_bad_seq,
                "bad_checkpoints": report.bad_checkpoints,
                "proven_entries": report.proven_entries,
                "checkpoint_size": report.checkpoint_size,
                "problems": report.problems,
                "notes": report.notes,
            }
        )
    else:
        typer.echo(auditor.render(report, (pack.get("use_case") or {}).get("id", "?")), nl=False)
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context,
    key: Annotated[
        str | None,
        typer.Argument(
            help="one use case (all when omitted), or an evidence pack file (PACK.json) to "
            "verify offline"
        ),
    ] = None,
    checkpoints: Annotated[
        list[Path] | None,
        typer.Option("--checkpoints", help="directory of signed checkpoints (offline; repeatable)"),
    ] = None,
    keys: Annotated[
        list[str] | None,
        typer.Option("--key", help="checkpoint public key: vkey, vkey file or keys JSON"),
    ] = None,
    witnesses: Annotated[
        list[str] | None,
        typer.Option("--witness", help="a witness's vkey whose cosignature is required"),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Recompute ledger hash chains through the API. Exit 1 when a chain is broken.

    With a pack file: verify it offline (no server, no database) against the signed
    checkpoints in DIR and the log's public keys: every entry's hash and its inclusion in the
    signed Merkle tree, checkpoint signatures and consistency, and that the run is complete."""
    if key is not None and (checkpoints or keys or looks_like_pack(key)):
        verify_offline(Path(key), checkpoints or [], keys or [], witnesses or [], as_json)
        return
    api = session(ctx).api()
    keys = [key] if key else all_use_case_ids(api)
    results = [
        (k, api.get(use_case_path(k, "ledger", "verify"), feature="ledger verification"))
        for k in keys
    ]
    if as_json:
        emit_json(results[0][1] if key else dict(results))
    else:
        render.stdout().print(render.verify_table(results))
    if not all(r.get("ok") for _, r in results):
        raise typer.Exit(EXIT_FAILED)


@audit_app.command("export")
def audit_export(
    ctx: typer.Context,
    use_case: Annotated[str, typer.Option("--use-case", help="use case key or id")],
    out: Annotated[Path, typer.Option("--out", help="where to write the evidence pack JSON")],
) -> None:
    """Write a use case's evidence pack for an auditor. Exit 1 when its chain is broken."""
    pack = session(ctx).api().get(use_case_path(use_case, "evidence-pack"), feature="evidence pack")
    try:
        out.write_text(json.dumps(pack, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise CliError(EXIT_USAGE, f"cannot write {out}: {exc.strerror}") from None
    ledger = pack.get("ledger") or {}
    verdict = ledger.get("verify") or {}
    render.stderr().print(
        f"wrote {out}: {ledger.get('entries', 0)} ledger entries, head "
        f"{str(ledger.get('head_hash') or '')[:16]}…, chain "
        + ("intact" if verdict.get("ok") else f"BROKEN at seq {verdict.get('first_bad_seq')}")
    )
    if not verdict.get("ok"):
        raise typer.Exit(EXIT_FAILED)


# --------------------------------------------------------------------------- flow


Since = Annotated[
    str | None, typer.Option(help="runs started at or after (ISO-8601, e.g. 2026-11-01)")
]
Until = Annotated[str | None, typer.Option(help="runs started before (ISO-8601)")]
TierFilter = Annotated[str | None, typer.Option("--tier", help="low, medium or high")]


def flow_params(since: str | None, until: str | None, tier: str | None, **extra: Any) -> dict:
    return {
        "since": since,
        "until": until,
        "tier": enum_value(RiskTier, tier, "risk tier") if tier else None,
        **extra,
    }


@app.command()
def metrics(
    ctx: typer.Context,
    since: Since = None,
    until: Until = None,
    tier: TierFilter = None,
    as_json: JsonFlag = False,
) -> None:
    """Flow metrics: lead time, time per stage, gate waits, rework, rejection/expiry/SLA rates."""
    data = (
        session(ctx)
        .api()
        .get("/v1/metrics/flow", params=flow_params(since, until, tier), feature="flow metrics")
    )
    if as_json:
        emit_json(data)
    else:
        render.stdout().print(render.metrics_view(data))


@app.command()
def report(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write")] = Path(
        "report.html"
    ),
    since: Since = None,
    until: Until = None,
    tier: TierFilter = None,
    title: Annotated[str, typer.Option(help="page title")] = "ReleaseGate flow report",
) -> None:
    """One self-contained HTML page of the flow metrics, with charts (no network needed)."""
    from services.report import render_report

    api = session(ctx).api()
    data = api.get(
        "/v1/metrics/flow",
        params=flow_params(since, until, tier, detail="true"),
        feature="flow metrics",
    )
    page = render_report(data, title=title, source=api.base_url)
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise CliError(EXIT_USAGE, f"cannot write {out}: {exc.strerror}") from None
    render.stderr().print(f"wrote {out} ({data.get('runs', 0)} runs)")


# --------------------------------------------------------------------------- governed exceptions

waiver_app = typer.Typer(
    cls=ReleaseGateGroup,
    help="Governed exceptions: ask for one, grant or refuse it, list them.",
    no_args_is_help=True,
)
app.add_typer(waiver_app, name="waiver")


def waiver_line(w: dict[str, Any]) -> str:
    req = w.get("requirement") or {}
    what = req.get("kind", "")
    if req.get("evidence_kind"):
        what += f" {req['evidence_kind']} at {req.get('stage') or req.get('gate')}"
    elif req.get("gate"):
        what += f" of {req['gate']}"
    waiting = f"  waiting on {', '.join(w['pending'])}" if w.get("pending") else ""
    return f"{w.get('id')}  {w.get('status')}  {what}  until {w.get('expires_at')}{waiting}"


def show_waiver(waiver: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(waiver)
    else:
        typer.echo(waiver_line(waiver))


@waiver_app.command("request")
def waiver_request(
    ctx: typer.Context,
    key: Key,
    kind: Annotated[str, typer.Argument(help="evidence, sla or periodic_review")],
    justification: Annotated[str, typer.Option("--justification", "-m", help="why (recorded)")],
    days: Annotated[
        float, typer.Option("--days", min=0.001, help="expires this many days from now")
    ],
    stage: Annotated[str | None, typer.Option(help="the work stage (evidence)")] = None,
    gate: Annotated[str | None, typer.Option(help="the gate (evidence at a gate, sla)")] = None,
    evidence_kind: Annotated[str | None, typer.Option(help="the evidence kind waived")] = None,
    idempotency_key: IdemKey = None,
    as_json: JsonFlag = False,
) -> None:
    """Ask for an exception to a policy requirement (you: delivery lead or technical owner)."""
    from datetime import UTC, datetime, timedelta

    from workflows.model import WaiverKind

    requirement: dict[str, Any] = {"kind": enum_value(WaiverKind, kind, "requirement kind")}
    if stage is not None:
        requirement["stage"] = enum_value(Stage, stage, "stage")
    if gate is not None:
        requirement["gate"] = enum_value(Gate, gate, "gate")
    if evidence_kind is not None:
        requirement["evidence_kind"] = evidence_kind
    body = {
        "requirement": requirement,
        "justification": justification,
        "expires_at": (datetime.now(UTC) + timedelta(days=days)).isoformat(),
    }
    waiver = (
        session(ctx)
        .api()
        .post(
            use_case_path(key, "waivers"),
            json=body,
            headers=idem_headers(idempotency_key),
            feature="governed exceptions",
        )
    )
    show_waiver(waiver, as_json)


def _decide_waiver(
    ctx: typer.Context, key: str, waiver_id: str, verdict: str, comment: str, as_json: bool
) -> None:
    waiver = (
        session(ctx)
        .api()
        .post(
            use_case_path(key, "waivers", segment(waiver_id), "decisions"),
            json={"decision": verdict, "comment": comment},
            feature="governed exceptions",
        )
    )
    show_waiver(waiver, as_json)


WaiverIdArg = Annotated[str, typer.Argument(help="the exception's id, e.g. w-1")]


@waiver_app.command("grant")
def waiver_grant(
    ctx: typer.Context,
    key: Key,
    waiver_id: WaiverIdArg,
    comment: Comment = "",
    as_json: JsonFlag = False,
) -> None:
    """Grant a pending exception (fills your grantor seat)."""
    _decide_waiver(ctx, key, waiver_id, "grant", comment, as_json)


@waiver_app.command("refuse")
def waiver_refuse(
    ctx: typer.Context,
    key: Key,
    waiver_id: WaiverIdArg,
    comment: Annotated[str, typer.Option("--message", "-m", help="why (required)")],
    as_json: JsonFlag = False,
) -> None:
    """Refuse a pending exception (one refusal ends it)."""
    _decide_waiver(ctx, key, waiver_id, "refuse", comment, as_json)


@waiver_app.command("list")
def waiver_list(ctx: typer.Context, key: Key, as_json: JsonFlag = False) -> None:
    """The use case's exceptions: pending, granted, and the latest closed."""
    page = session(ctx).api().get(use_case_path(key, "waivers"), feature="governed exceptions")
    if as_json:
        emit_json(page)
        return
    for w in page.get("items", []):
        typer.echo(waiver_line(w))


if __name__ == "__main__":  # pragma: no cover
    app()
