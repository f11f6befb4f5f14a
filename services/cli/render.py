"""Human-readable output of the CLI (rich tables and panels). ``--json`` bypasses all of this."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from services.flow import human_hours
from workflows.model import Decision, Stage


def row(table: Table, *values: Any) -> None:
    """Add a row of data: strings become ``Text`` so brackets in comments or titles are never
    taken for rich markup."""
    table.add_row(
        *(v if isinstance(v, Text) else Text("" if v is None else str(v)) for v in values)
    )


def when(value: Any) -> str:
    """An API timestamp as ``YYYY-MM-DD HH:MM:SS`` UTC (or as given if it is not one)."""
    if not isinstance(value, str):
        return "" if value is None else str(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return parsed.strftime("%Y-%m-%d %H:%M:%S")


def hours(value: Any) -> str:
    return human_hours(float(value)) if isinstance(value, int | float) else "–"


def percent(value: Any) -> str:
    return "–" if not isinstance(value, int | float) else f"{value * 100:.0f}%"


def _rate(rate: dict[str, Any]) -> str:
    return f"{percent(rate.get('rate'))} ({rate.get('numerator', 0)}/{rate.get('denominator', 0)})"


def _stage_style(state: dict[str, Any]) -> str:
    stage = state.get("stage")
    if state.get("closed"):
        return "red" if stage in (Stage.REJECTED, Stage.CANCELLED) else "dim"
    return "green" if stage == Stage.LIVE else "cyan"


def state_panel(state: dict[str, Any]) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    stage = Text(str(state.get("stage", "")), style=_stage_style(state))
    if state.get("closed"):
        stage.append(f"  (closed: {state.get('outcome') or state.get('stage')})", style="dim")
    row(grid, "id", str(state.get("id", "")))
    row(grid, "title", str(state.get("title", "")))
    row(grid, "tier", str(state.get("risk_tier", "")))
    row(grid, "stage", stage)
    row(grid, "round", str(state.get("round", "")))
    gate = state.get("open_gate")
    if gate:
        approvals = [a.get("actor", "") for a in gate.get("approvals", [])]
        waiting = [p for p in gate.get("eligible", []) if p not in approvals]
        row(
            grid,
            "open gate",
            f"{gate.get('gate')}: {len(approvals)}/{gate.get('quorum')} approvals"
            + (f" ({', '.join(approvals)})" if approvals else ""),
        )
        row(grid, "waiting on", ", ".join(waiting) or "–")
        row(grid, "due", when(gate.get("due_at")))
    if state.get("stalled_gate"):
        row(grid, "stalled gate", f"{state['stalled_gate']} expired; reopen or cancel")
    override = state.get("override")
    if override:
        review = override.get("review") or {}
        row(
            grid,
            "break-glass",
            f"{override.get('gate')} overridden by {override.get('by')}; review waiting on "
            f"{', '.join(review.get('pending') or []) or '–'}, due {when(review.get('due_at'))}",
        )
    required = state.get("required_evidence") or []
    row(grid, "evidence needed", ", ".join(required) if required else "–")
    owners = state.get("owners") or {}
    if owners:
        row(
            grid,
            "owners",
            ", ".join(
                f"{role}={','.join(v) if isinstance(v, list) else v}" for role, v in owners.items()
            ),
        )
    policy = state.get("policy") or {}
    if policy:
        row(grid, "policy", f"{policy.get('version')} ({str(policy.get('sha256', ''))[:12]})")
    if state.get("temporal_ui_url"):
        row(grid, "Temporal UI", str(state["temporal_ui_url"]))
    return Panel(grid, title=f"[bold]{state.get('key', '')}[/bold]", expand=False)


def history_table(events: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAVY, show_lines=False)
    for name in ("at", "stage", "rnd", "kind", "actor", "via", "gate", "decision"):
        table.add_column(name, no_wrap=True)
    table.add_column("comment", overflow="fold")
    for e in events:
        comment = str(e.get("comment") or "")
        evidence = e.get("evidence") or []
        if evidence:
            kinds = ", ".join(str(item.get("kind")) for item in evidence)
            comment = f"{comment} [evidence: {kinds}]".strip()
        row(
            table,
            when(e.get("at")),
            str(e.get("stage", "")),
            str(e.get("round", "")),
            str(e.get("kind", "")),
            str(e.get("actor", "")),
            str(e.get("channel", "")),
            str(e.get("gate") or ""),
            str(e.get("decision") or ""),
            comment,
        )
    return table


SHA256_SHOWN = 12  # hex characters of a digest a reader compares by eye


def evidence_table(items: list[dict[str, Any]], title: str) -> Table:
    """Evidence items: kind, name and the first hex of their sha256."""
    table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left")
    for name in ("kind", "name", "sha256"):
        table.add_column(name, overflow="fold")
    for e in items:
        row(
            table,
            e.get("kind", ""),
            e.get("name", ""),
            f"{str(e.get('sha256', ''))[:SHA256_SHOWN]}…",
        )
    if not items:
        row(table, "(no evidence)", "", "")
    return table


def pending_table(items: list[dict[str, Any]]) -> Table:
    table = Table(title="Gates waiting on you", box=box.SIMPLE_HEAVY)
    for name in ("use case", "title", "tier", "gate", "approvals", "round", "due"):
        table.add_column(name, overflow="fold")
    for item in items:
        row(
            table,
            str(item.get("key", "")),
            str(item.get("title", "")),
            str(item.get("risk_tier", "")),
            str(item.get("gate", "")),
            f"{len(item.get('approvals') or [])}/{item.get('quorum') or '?'}",
            str(item.get("round", "")),
            when(item.get("due_at")),
        )
    return table


def use_case_table(items: list[dict[str, Any]]) -> Table:
    table = Table(title="Use cases", box=box.SIMPLE_HEAVY)
    for name in ("use case", "title", "tier", "stage", "gate", "waiting on", "due", "updated"):
        table.add_column(name, overflow="fold")
    for item in items:
        row(
            table,
            str(item.get("key", "")),
            str(item.get("title", "")),
            str(item.get("risk_tier", "")),
            str(item.get("stage", "")) + (" (closed)" if item.get("closed") else ""),
            str(item.get("gate") or ""),
            ", ".join(item.get("pending_approvers") or []),
            when(item.get("due_at")),
            when(item.get("updated_at")),
        )
    return table


def _stats_cells(stats: dict[str, Any]) -> list[str]:
    return [
        str(stats.get("count", 0)),
        hours(stats.get("p50")),
        hours(stats.get("p90")),
        hours(stats.get("mean")),
        hours(stats.get("max")),
    ]


def metrics_view(m: dict[str, Any]) -> Group:
    window = (
        " ".join(f"{name} {when(m.get(name))}" for name in ("since", "until") if m.get(name))
        or "all time"
    )
    if m.get("tier"):
        window += f", tier {m['tier']}"
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    lead = m.get("lead_time_hours") or {}
    rates = m.get("rates") or {}
    rework = m.get("rework") or {}
    row(
        summary,
        "runs",
        f"{m.get('runs', 0)} (live {m.get('reached_live', 0)}, rejected {m.get('rejected', 0)}, "
        f"cancelled {m.get('cancelled', 0)}, in progress {m.get('in_progress', 0)})",
    )
    row(
        summary,
        "lead time scoping→live",
        f"p50 {hours(lead.get('p50'))}, p90 {hours(lead.get('p90'))} over {lead.get('count', 0)}",
    )
    row(
        summary,
        "rework rounds",
        f"{rework.get('total', 0)} total, mean {rework.get('mean') or 0:.2f} per run",
    )
    row(summary, "rejection rate", _rate(rates.get("rejection") or {}))
    row(summary, "expiry rate", _rate(rates.get("expiry") or {}))
    row(summary, "SLA-breach rate", _rate(rates.get("sla_breach") or {}))

    stages = Table(title="Time in each stage", box=box.SIMPLE_HEAVY)
    for name in ("stage", "visits", "p50", "p90", "mean", "max", "open now"):
        stages.add_column(name, justify="left" if name == "stage" else "right")
    for s in m.get("stages") or []:
        row(stages, s["stage"], *_stats_cells(s.get("hours") or {}), str(s.get("open", 0)))

    gates = Table(title="Gate waits", box=box.SIMPLE_HEAVY)
    for name in ("gate", "decided", "p50", "p90", "mean", "max", "SLA breach", "expired"):
        gates.add_column(name, justify="left" if name == "gate" else "right")
    for g in m.get("gates") or []:
        row(
            gates,
            g["gate"],
            *_stats_cells(g.get("wait_hours") or {}),
            _rate(g.get("sla_breach") or {}),
            _rate(g.get("expiry") or {}),
        )

    tiers = Table(title="By tier", box=box.SIMPLE_HEAVY)
    for name in ("tier", "runs", "live", "rejected", "rejection", "rework", "lead p50"):
        tiers.add_column(name, justify="left" if name == "tier" else "right")
    for t in m.get("by_tier") or []:
        row(
            tiers,
            t["tier"],
            str(t.get("runs", 0)),
            str(t.get("reached_live", 0)),
            str(t.get("rejected", 0)),
            _rate(t.get("rejection") or {}),
            str(t.get("rework_total", 0)),
            hours((t.get("lead_time_hours") or {}).get("p50")),
        )

    approvers = Table(title="Decisions per approver", box=box.SIMPLE_HEAVY)
    approvers.add_column("approver", justify="left")
    for name in (*(d.value.replace("_", " ") for d in Decision), "total"):
        approvers.add_column(name, justify="right")
    for a in m.get("approvers") or []:
        row(
            approvers,
            a["actor"],
            *(str(a.get(d.value, 0)) for d in Decision),
            str(a.get("total", 0)),
        )
    return Group(
        Panel(summary, title=f"[bold]Flow metrics[/bold] ({window})", expand=False),
        stages,
        gates,
        tiers,
        approvers,
    )


def verify_table(results: list[tuple[str, dict[str, Any]]]) -> Table:
    table = Table(title="Ledger verification", box=box.SIMPLE_HEAVY)
    for name in ("use case", "entries", "chain", "first bad seq", "reason"):
        table.add_column(name)
    for key, result in results:
        ok = bool(result.get("ok"))
        row(
            table,
            key,
            str(result.get("entries", "")),
            Text("intact", style="green") if ok else Text("BROKEN", style="bold red"),
            "" if result.get("first_bad_seq") is None else str(result["first_bad_seq"]),
            str(result.get("reason") or ""),
        )
    return table


def stdout() -> Console:
    return Console(highlight=False, soft_wrap=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False)
